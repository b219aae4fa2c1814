"""The final evaluation reuses predictions of weights it already scored: the last epoch's validation pass, and
the best checkpoint's passes when the best epoch is the last. What it writes equals a fresh evaluation of each
checkpoint (ctranscnn.engine.run_eval), and it makes only the passes it needs."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ctranscnn.engine import trainer as T
from ctranscnn.engine.config import load_config
from ctranscnn.engine.evaluation import read_predictions
from ctranscnn.engine.run_eval import evaluate_run
from tests.test_engine_run import CLASSES, make_fixture

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # the 'paper' split's leakage warning


@pytest.mark.parametrize("epochs", [1, 3])
def test_final_evaluation_reuses_scored_weights_with_the_same_outputs(tmp_path, monkeypatch, epochs):
    data = make_fixture(tmp_path / "data", sizes=(48, 32, 32))
    cfg = load_config(None, {"profile": "smoke", "data.dataset": "list", "data.root": str(data),
                             "data.lists": str(data / "lists"), "schedule.epochs": epochs, "train.progress": False,
                             "train.out_dir": str(tmp_path / "runs"), "train.run_name": "r"})
    calls: list[str] = []
    evaluate = T.Trainer.evaluate
    monkeypatch.setattr(T.Trainer, "evaluate", lambda self, split, loader=None: calls.append(split) or
                        evaluate(self, split, loader))
    torch.manual_seed(0)
    run_dir, metrics = T.train(cfg)
    monkeypatch.undo()
    best_is_last = metrics["best"]["epoch"] == epochs
    # fit: one val pass per epoch; then test (and val) of each checkpoint whose weights were not scored yet
    assert calls == ["val"] * epochs + (["test"] if best_is_last else ["val", "test", "test"])
    for which, suffix in (("best", ""), ("last", "_last")):
        for split in ("val", "test"):
            y, p = read_predictions(run_dir / f"predictions_{split}{suffix}.csv", list(CLASSES))
            path, _ = evaluate_run(run_dir, split, which)
            fresh = pd.read_csv(path)
            assert np.array_equal(y, fresh[[f"true_{c}" for c in CLASSES]].to_numpy()), (which, split)
            assert np.allclose(p, fresh[[f"prob_{c}" for c in CLASSES]].to_numpy(), atol=1e-6), (which, split)
    if epochs > 1:
        assert not best_is_last or metrics["best"] == {**metrics["last"], "epoch": metrics["best"]["epoch"]}
