"""Acquisition persistence of the cxr14 phantom: a patient's follow-ups share view, positioning and exposure to
NIH's degree (view repeat rate from the real metadata), while every pose field keeps its distribution."""
from __future__ import annotations

import numpy as np
import pytest

from ctranscnn.phantom.common import stream
from ctranscnn.phantom.cxr14 import Cxr14Config, nih_persistence, plan_cxr14
from ctranscnn.phantom.nih_stats import load_tables
from ctranscnn.phantom.thorax import POSE_MEANS, shared_pose, sample_pose


def view_repeat(plan) -> float:
    views, patients = plan["view"].to_numpy(), plan["patient"].to_numpy()
    same = patients[1:] == patients[:-1]
    return float((views[1:] == views[:-1])[same].mean())


def test_persistence_reproduces_nih_view_repeats():
    p = nih_persistence()
    # Oracle: Monte Carlo of the latent-Gaussian view model at that correlation.
    z = np.random.default_rng(0).standard_normal((2, 400_000))
    a, b = z[0], p * z[0] + np.sqrt(1 - p**2) * z[1]
    t = np.quantile(z[0], load_tables().scalars["frac_pa"])
    assert np.mean((a < t) == (b < t)) == pytest.approx(load_tables().scalars["view_repeat_prob"], abs=0.003)
    plan = plan_cxr14(20_000, seed=2)
    assert view_repeat(plan) == pytest.approx(load_tables().scalars["view_repeat_prob"], abs=0.02)
    assert (plan["view"] == "PA").mean() == pytest.approx(load_tables().scalars["frac_pa"], abs=0.02)
    independent = plan_cxr14(20_000, seed=2, cfg=Cxr14Config(persistence=0.0))
    pa = load_tables().scalars["frac_pa"]
    assert view_repeat(independent) == pytest.approx(pa**2 + (1 - pa) ** 2, abs=0.02)
    assert (independent["labels"] == plan["labels"]).all()  # the knob moves acquisitions only


def test_shared_pose_keeps_each_field_and_correlates_follow_ups():
    p, n = 0.7, 4000
    patient = [sample_pose(stream(9, 0, i)) for i in range(n)]
    first = [shared_pose(sample_pose(stream(9, 1, i)), patient[i], p) for i in range(n)]
    second = [shared_pose(sample_pose(stream(9, 2, i)), patient[i], p) for i in range(n)]
    alone = [sample_pose(stream(9, 3, i)) for i in range(n)]
    for name, mean in POSE_MEANS.items():
        x, y, ref = (np.array([getattr(q, name) for q in poses]) for poses in (first, second, alone))
        assert x.mean() == pytest.approx(mean, abs=4 * ref.std() / np.sqrt(n))
        assert x.std() == pytest.approx(ref.std(), rel=0.06)
        assert np.corrcoef(x, y)[0, 1] == pytest.approx(p, abs=0.05)
    assert shared_pose(alone[0], patient[0], 0.0) is alone[0]
    with pytest.raises(ValueError, match="persistence"):
        shared_pose(alone[0], patient[0], 1.5)
