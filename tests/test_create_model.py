"""create_model(fast=...): the fast switches are chosen in one place and the model is built once, so a fast and
a faithful model start from the same weights for one seed; for the baselines `fast` and BN folding change nothing."""
from __future__ import annotations

import pytest
import torch

from ctranscnn import create_model
from ctranscnn.models.ctranscnn import FAST_SWITCHES
from ctranscnn.models.folding import fold_for_inference
from ctranscnn.registry import _REGISTRY, fast_switches, register_model


def built(name: str, seed: int = 0, **kwargs) -> tuple[torch.nn.Module, torch.Tensor]:
    """The model and the RNG state after building it (equal states: the same number of draws)."""
    torch.manual_seed(seed)
    model = create_model(name, 5, **kwargs)
    return model, torch.get_rng_state()


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    different = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert different == []


@pytest.mark.parametrize("name", ["ctranscnn_micro", "conformer_micro"])
def test_fast_and_faithful_start_from_the_same_weights(name: str) -> None:
    (plain, rng_plain), (fast, rng_fast) = built(name), built(name, fast=True)
    assert_same_state(plain, fast)
    assert torch.equal(rng_plain, rng_fast)  # built once: the next draws (drop-path masks, data) agree too
    assert not any(getattr(plain.cfg, k) for k in FAST_SWITCHES)
    assert all(getattr(fast.cfg, k) for k in FAST_SWITCHES)
    assert fast_switches(name) == FAST_SWITCHES


def test_overrides_win_over_the_fast_switches() -> None:
    model = create_model("ctranscnn_micro", 5, fast=True, fast_c2t_gate=False, depths=9)
    assert model.cfg.fast_c2t_gate is False and model.cfg.depths == 9
    assert model.cfg.fast_c2t and model.cfg.fast_t2c and model.cfg.fast_attention


@pytest.mark.parametrize("name", ["resnet50_mini", "vit_mini"])
def test_fast_is_a_no_op_for_baselines(name: str) -> None:
    assert fast_switches(name) == {}
    (plain, rng_plain), (fast, rng_fast) = built(name), built(name, fast=True)
    assert type(plain) is type(fast) and repr(plain) == repr(fast)
    assert_same_state(plain, fast)
    assert torch.equal(rng_plain, rng_fast)
    assert fold_for_inference(fast) is fast  # nothing to fold: the very model back, not a copy


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="unknown model 'ctranscnn_huge'.*ctranscnn_micro"):
        create_model("ctranscnn_huge", 5, fast=True)


def test_register_model_records_fast_switches_and_refuses_duplicates() -> None:
    calls = []

    @register_model(fast_switches={"speed": True})
    def _toy_model_for_test(num_classes: int, **overrides) -> torch.nn.Module:
        calls.append(overrides)
        return torch.nn.Linear(2, num_classes)

    try:
        create_model("_toy_model_for_test", 3)
        create_model("_toy_model_for_test", 3, fast=True)
        create_model("_toy_model_for_test", 3, fast=True, speed=False)
        assert calls == [{}, {"speed": True}, {"speed": False}]
        with pytest.raises(ValueError, match="registered twice"):
            register_model(_toy_model_for_test)
    finally:
        _REGISTRY.pop("_toy_model_for_test")
