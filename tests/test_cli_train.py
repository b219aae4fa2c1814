"""CLI front of the engine: bad arguments end in one clear line naming the problem (SystemExit, no traceback)."""
from __future__ import annotations

from pathlib import Path

import pytest

from ctranscnn.cli import main

REPO = Path(__file__).resolve().parents[1]
PAPER = str(REPO / "configs" / "paper_nih.yaml")


@pytest.mark.parametrize("argv, message", [
    (["train"], "train needs --config FILE"),
    (["train", "--config", PAPER, "--resume", "runs/x"], "drop --config"),
    (["train", "--config", PAPER, "--set", "optim.learningrate=1"], "unknown config key 'optim.learningrate'"),
    (["train", "--config", PAPER, "--set", "seed"], "--set expects key=value"),
    (["train", "--config", PAPER, "--set", "train.device=cpu"], "data.root is empty"),
    (["train", "--resume", "/nonexistent/run"], "/nonexistent/run: no checkpoints/last.pt or config.yaml"),
    (["predict", "--run", "/nonexistent/run", "x.png"], r"/nonexistent/run/checkpoints/best.pt: checkpoint not found"),
    (["predict", "--run", "/nonexistent/run", "--threshold", "high", "x.png"], "--threshold must be a probability in"),
    (["evaluate", "--run", "/nonexistent/run"], "checkpoint not found"),
])
def test_argument_errors_exit_with_a_clear_message(argv, message):
    with pytest.raises(SystemExit, match=message):
        main(argv)
