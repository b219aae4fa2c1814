"""Seeds per plan row: the claim rows get every seed (SEEDS), the other rows one in the CPU profiles."""
from __future__ import annotations

from pathlib import Path

import pytest

from ctranscnn.phantom import generate_cxr14, generate_tongue
from ctranscnn.report import plan
from ctranscnn.report.context import NotebookContext


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    generate_cxr14(root / "cxr14-phantom", n=60, size=32, seed=0, workers=1)
    generate_tongue(root / "tongue-phantom", n=20, size=32, seed=0, workers=1)
    return root


def context(tmp_path: Path, data_dir: Path, profile: str, seeds: list[int]) -> NotebookContext:
    return NotebookContext.from_params(notebook="02_train", profile=profile, split="paper", seeds=seeds,
                                       data_dir=str(data_dir), results_dir=str(tmp_path / "results"),
                                       figures_dir=str(tmp_path / "figures"), runs_dir=str(tmp_path / "runs"))


def seeds_by_row(ctx: NotebookContext, notebook: str) -> dict[tuple[str, str, str, str], list[int]]:
    """Seeds of each (dataset, model, split, overrides); rows of two tables that are one run count once."""
    out: dict[tuple[str, str, str, str], set[int]] = {}
    for r in plan.planned_runs(ctx, notebook):
        key = (r.dataset, r.model, r.split, ",".join(f"{k}={v}" for k, v in sorted(r.overrides.items())))
        out.setdefault(key, set()).add(r.seed)
    return {key: sorted(seeds) for key, seeds in out.items()}


@pytest.mark.parametrize("profile", ["demo", "smoke"])
def test_claim_rows_get_every_seed_the_others_the_first(tmp_path, data_dir, profile):
    ctx = context(tmp_path, data_dir, profile, [4, 7, 9])
    train = seeds_by_row(ctx, "train")
    assert train[("cxr14-phantom", plan.CTRANSCNN, "patient", "")] == [4, 7, 9]  # main row = split table's
    assert train[("cxr14-phantom", plan.CTRANSCNN, "image", "")] == [4, 7, 9]  # the leaky side too
    assert train[("tongue-phantom", plan.CTRANSCNN, "paper", "")] == [4]  # not a claim dataset
    ablation = seeds_by_row(ctx, "ablation")
    assert len(ablation) >= len(plan.ABLATION)
    assert all(seeds == [4, 7, 9] for seeds in ablation.values())  # every variant, Conformer included
    sota = seeds_by_row(ctx, "sota")
    for (ds, model, split, _), seeds in sota.items():
        assert seeds == ([4, 7, 9] if model in plan.CLAIM_MODELS else [4]), model
    assert sum(seeds == [4] for seeds in sota.values()) == len(plan.SOTA_MODELS) - 2


def test_paper_profile_gives_every_row_every_seed(tmp_path, data_dir):
    ctx = context(tmp_path, data_dir, "demo", [0, 1])
    tongue = next(d for d in ctx.datasets if d.name == "tongue-phantom")
    row = plan.plan_row(ctx, tongue, "resnet50")
    assert plan.seeds_for(ctx, row) == [0]
    ctx.profile = "paper"
    assert plan.seeds_for(ctx, row) == [0, 1]


def test_seed_policy_records_no_skips(tmp_path, data_dir):
    ctx = context(tmp_path, data_dir, "demo", [0, 1, 2])
    before = list(ctx.skipped)
    for ds in ctx.datasets:
        plan.seeds_for(ctx, plan.plan_row(ctx, ds, "resnet50", split="patient"))
    assert ctx.skipped == before


def test_gradcam_plans_the_first_seed_of_its_models_among_the_comparison_runs(tmp_path, data_dir):
    ctx = context(tmp_path, data_dir, "demo", [4, 7, 9])
    gradcam = plan.planned_runs(ctx, "gradcam")
    sota = {r.run_dir for r in plan.planned_runs(ctx, "sota")}
    assert {r.run_dir for r in gradcam} <= sota  # notebook 05 trains nothing of its own
    assert sorted((r.dataset, r.model, r.seed) for r in gradcam) == sorted(
        (ds.name, m, 4) for ds in plan.chest_datasets(ctx, "sota") for m in plan.GRADCAM_MODELS)
