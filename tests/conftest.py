"""Shared test fixtures. Tests that read ../shared (reference material) skip cleanly without it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CTRANSCNN_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"reference material not found at {SHARED} (set CTRANSCNN_SHARED)")
    return SHARED


# Test models are tiny and overhead-bound: one intra-op thread is faster than two, and stays fast when
# several test processes (subprocess CLIs, torchrun workers) share the 2 CI cores.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
