"""Evaluate a finished run on one split, from the run folder alone (plus the data it names)."""
from __future__ import annotations

from pathlib import Path

from ctranscnn.engine.config import UNHASHED, ConfigError, set_key
from ctranscnn.engine.distributed import Dist
from ctranscnn.engine.evaluation import predict, predictions_frame, sigmoid, split_metrics, write_predictions
from ctranscnn.engine.inference import load_run
from ctranscnn.engine.trainer import data_hashes, load_data, write_json


def evaluate_run(run_dir: str | Path, split: str = "test", which: str = "best",
                 overrides: dict | None = None) -> tuple[Path, dict]:
    """Predictions and metrics of `split` with checkpoint `which`; thresholds tuned on the run's validation
    predictions are applied too when they exist. Writes evaluation/<which>_<split>.{csv,json}."""
    import torch

    from ctranscnn.data.dataset import ImageDataset, build_loader

    run = load_run(run_dir, which)
    bad = sorted(set(overrides or {}) - set(UNHASHED))
    if bad:
        raise ConfigError(f"evaluate may change only {', '.join(UNHASHED)}; not {', '.join(bad)}")
    for key, value in (overrides or {}).items():
        set_key(run.cfg, key, value, "--set")
    splits = load_data(run.cfg)
    if data_hashes(splits)[split] != run.checkpoint["split_hashes"][split]:
        raise ConfigError(f"the {split} split read from {run.cfg.data.root} differs from the one the run used")
    records = splits[split]
    dataset = ImageDataset(records, run.preprocess, train=False)
    loader = build_loader(dataset, run.cfg.eval.batch_size, shuffle=False, num_workers=run.cfg.data.num_workers)
    outputs = predict(run.model, loader, len(records), torch.device("cpu"), Dist())
    probs = sigmoid(outputs["fused"])
    try:
        tuned = run.thresholds("tuned")
    except (FileNotFoundError, KeyError):
        tuned = None
    metrics = split_metrics(records.labels, probs, run.cfg.eval.single_class, run.cfg.eval.threshold, tuned,
                            run.cfg.eval.n_boot, seed=run.cfg.train.seed)
    out = Path(run_dir) / "evaluation" / f"{which}_{split}"
    write_predictions(predictions_frame(records, outputs), out.with_suffix(".csv"))
    write_json(out.with_suffix(".json"), metrics)
    return out.with_suffix(".csv"), metrics
