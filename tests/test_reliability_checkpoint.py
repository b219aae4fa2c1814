"""Damaged checkpoints are named errors that say what to do; the sidecar JSON stays valid JSON."""
from __future__ import annotations

import json

import pytest
import torch

from ctranscnn.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


@pytest.fixture()
def checkpoint(tmp_path):
    path = tmp_path / "checkpoints" / "last.pt"
    path.parent.mkdir()
    state = {"step": 3, "epochs_done": 1, "best_epoch": None, "best_val_mauc": float("-inf"), "finished": False}
    save_checkpoint(path, {"model": {"w": torch.arange(4000.0)}, "state": state})
    return path


def test_sidecar_json_is_valid_with_minus_infinity(checkpoint):
    text = checkpoint.with_suffix(".json").read_text()
    info = json.loads(text, parse_constant=lambda c: pytest.fail(f"invalid JSON constant {c}"))
    assert info == {"step": 3, "epochs_done": 1, "best_epoch": None, "best_val_mauc": None, "finished": False}


@pytest.mark.parametrize("keep", [0, 1, 100, 0.5, -1])
def test_truncated_checkpoint_names_the_file_and_what_to_do(checkpoint, keep):
    data = checkpoint.read_bytes()
    assert load_checkpoint(checkpoint)["state"]["step"] == 3
    cut = int(len(data) * keep) if isinstance(keep, float) else keep if keep >= 0 else len(data) + keep
    checkpoint.write_bytes(data[:cut])
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(checkpoint)
    message = str(e.value)
    assert message.startswith(f"{checkpoint}: damaged or truncated checkpoint ({cut:,} bytes; ")
    assert "\n" not in message and "--checkpoint best|last" in message and "--restart" in message


def test_other_torch_file_is_not_a_run_checkpoint(tmp_path):
    torch.save({"w": torch.zeros(2)}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match=r"x\.pt: not a ctranscnn run checkpoint \(format None"):
        load_checkpoint(tmp_path / "x.pt")
    with pytest.raises(FileNotFoundError, match=r"y\.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "y.pt")
