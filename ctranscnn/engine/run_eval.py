"""Evaluate a finished run on one split, from the run folder alone (plus the data it names)."""
from __future__ import annotations

from pathlib import Path

from ctranscnn.engine.config import UNHASHED, ConfigError, from_dict, set_key
from ctranscnn.engine.distributed import Dist
from ctranscnn.engine.evaluation import predict, predictions_frame, sigmoid, split_metrics, write_predictions
from ctranscnn.engine.rundir import RunDir
from ctranscnn.engine.setup import load_data, loader_workers, split_hashes
from ctranscnn.io import write_json


def evaluate_run(run_dir: str | Path, split: str = "test", which: str = "best",
                 overrides: dict | None = None) -> tuple[Path, dict]:
    """Predictions and metrics of `split` with checkpoint `which`; thresholds tuned on the run's validation
    predictions are applied too when they exist. Writes evaluation/<which>_<split>.{csv,json}."""
    import torch

    from ctranscnn.data.dataset import ImageDataset, build_loader

    run = RunDir(run_dir)
    model = run.load_model(which)
    ckpt = run.checkpoint(which)
    cfg = from_dict(ckpt["config"], source=str(run.checkpoint_file(which)))
    bad = sorted(set(overrides or {}) - set(UNHASHED))
    if bad:
        raise ConfigError(f"evaluate may change only {', '.join(UNHASHED)}; not {', '.join(bad)}")
    for key, value in (overrides or {}).items():
        set_key(cfg, key, value, "--set")
    if split_hashes(cfg)[split] != ckpt["split_hashes"][split]:
        raise ConfigError(f"the {split} split read from {cfg.data.root} differs from the one the run used")
    records = load_data(cfg)[split]
    dataset = ImageDataset(records, run.preprocess(which), train=False)
    cpu = torch.device("cpu")
    loader = build_loader(dataset, cfg.eval.batch_size, shuffle=False, num_workers=loader_workers(cfg, cpu, dataset))
    outputs = predict(model, loader, len(records), cpu, Dist())
    probs = sigmoid(outputs["fused"])
    try:
        tuned = run.thresholds("tuned", which)
    except (FileNotFoundError, KeyError):
        tuned = None
    metrics = split_metrics(records.labels, probs, cfg.eval.single_class, cfg.eval.threshold, tuned,
                            cfg.eval.n_boot, seed=cfg.train.seed, classes=records.classes)
    csv = run.evaluation_file(split, which, ".csv")
    write_predictions(predictions_frame(records, outputs), csv)
    write_json(run.evaluation_file(split, which, ".json"), metrics)
    return csv, metrics
