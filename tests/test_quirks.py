"""The quirks study: the switches behind each quirk, the metric-convention table against hand-computed values and
brute force, and the quirks table from fabricated run folders with known differences."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from ctranscnn import create_model
from ctranscnn.engine.evaluation import predictions_frame
from ctranscnn.losses import BranchLoss, LossConfig
from ctranscnn.metrics import average_precision_ordered, convention_metrics
from ctranscnn.report.claims import FULL, NOT_RESOLVED
from ctranscnn.report.compare import RunComparer
from ctranscnn.report.plan import QUIRKS, Quirk
from ctranscnn.report.quirks import Rescored, conventions_table, quirks_table, scored_runs
from tests.test_claims import fake_run, records

# ---------------------------------------------------------------- the switches


def outputs(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        branches = model.eval().forward_head(model.forward_features(x))
        return {**branches, "fused": model.fuse_logits(branches)}


def step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """One optimizer step on the authors' objective (per-branch losses; the fused score is not trained)."""
    torch.manual_seed(1)  # the same drop-path draws for every variant
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = BranchLoss(LossConfig())(model.train().forward_head(model.forward_features(x)), y)
    loss.backward()
    opt.step()


ACTS_ON = {"attention": "trans", "double_bn2": "cnn"}  # MMAEF's attention is in the transformer branch, MBR in the CNN


@pytest.mark.parametrize("label", [k for k in QUIRKS if k != FULL])
def test_each_quirk_switch_builds_trains_and_changes_what_it_should(label):
    q = QUIRKS[label]
    switches = q.overrides | ({} if q.fusion_weight is None else {"fusion_weight": q.fusion_weight})
    torch.manual_seed(0)
    default = create_model("ctranscnn_micro", 3)
    torch.manual_seed(0)
    fixed = create_model("ctranscnn_micro", 3, **switches)
    # no switch adds or removes a parameter: the same initial weights, so any output change is the switch's
    assert {k: v.shape for k, v in fixed.state_dict().items()} == {k: v.shape for k, v in default.state_dict().items()}
    for a, b in zip(default.state_dict().values(), fixed.state_dict().values()):
        assert torch.equal(a, b)
    x, y = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2)), torch.tensor(
        [[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])
    for stage in ("initial", "after one step"):
        before, after = outputs(default, x), outputs(fixed, x)
        assert all(torch.isfinite(v).all() for v in after.values())
        if not q.overrides:  # fusion_weight: the same branch logits, before and after training; only the fused
            assert torch.equal(before["cnn"], after["cnn"]) and torch.equal(before["trans"], after["trans"])  # moves
        elif stage != "initial":  # a training switch changes the branch it acts on (MBR's bn2 starts at zero
            for branch in {ACTS_ON[k] for k in q.overrides}:  # gamma, so doubling it counts only after a step)
                assert not torch.allclose(before[branch], after[branch])
        w = q.fusion_weight if q.fusion_weight is not None else 0.9
        torch.testing.assert_close(after["fused"], w * after["cnn"] + (1 - w) * after["trans"])
        assert not torch.allclose(before["fused"], after["fused"])
        if stage == "initial":
            step(default, x, y)
            step(fixed, x, y)


# ---------------------------------------------------------------- metric conventions


def test_ap_tie_orders_hand_computed():
    """Four tied scores, two positives: one step = precision 2/4 for both; positives first: ranks 1, 2 -> AP 1;
    last: ranks 3, 4 -> (1/3 + 2/4) / 2 = 5/12."""
    y, s = np.array([1, 0, 1, 0]), np.full(4, 0.5)
    assert average_precision_ordered(y, s) == pytest.approx(0.5)
    assert average_precision_ordered(y, s, "optimistic") == pytest.approx(1.0)
    assert average_precision_ordered(y, s, "pessimistic") == pytest.approx(5 / 12)
    assert np.isnan(average_precision_ordered(np.zeros(4), s, "pessimistic"))
    with pytest.raises(ValueError, match="ties must be one of"):
        average_precision_ordered(y, s, "random")


@pytest.mark.parametrize("seed", range(5))
def test_ap_tie_orders_are_the_extremes_over_every_tie_breaking(seed):
    """Brute force: every ranking consistent with the scores (ties in any order), AP of each strict ranking by
    sklearn; optimistic / pessimistic are its max / min, 'step' is sklearn's AP of the tied scores."""
    rng = np.random.default_rng(seed)
    y = np.r_[1, 0, rng.integers(0, 2, 5)]
    s = rng.choice([0.2, 0.5, 0.8], size=len(y))
    aps = [average_precision_score(y[list(p)], -np.arange(len(y))) for p in itertools.permutations(range(len(y)))
           if np.all(np.diff(s[list(p)]) <= 0)]
    assert average_precision_ordered(y, s, "optimistic") == pytest.approx(max(aps))
    assert average_precision_ordered(y, s, "pessimistic") == pytest.approx(min(aps))
    assert average_precision_ordered(y, s) == pytest.approx(average_precision_score(y, s))


# class 0: all four scores tied, two positives (AUC 1/2; AP step 1/2, optimistic 1, pessimistic 5/12);
# class 1: no positive (skip: left out; fifty: AUC 50, AP 0); class 2: one positive ranked first (AUC 1, AP 1).
Y = np.array([[1, 0, 1], [0, 0, 0], [1, 0, 0], [0, 0, 0]])
S = np.array([[0.5, 0.3, 0.9], [0.5, 0.1, 0.1], [0.5, 0.2, 0.2], [0.5, 0.4, 0.3]])
EXPECTED = {"skip": {"mAUC": 75.0, "mAP": 75.0, "mAP ties optimistic": 100.0, "mAP ties pessimistic": 100 * 17 / 24,
                     "classes in mAUC": 2},
            "fifty": {"mAUC": 100 * 2 / 3, "mAP": 50.0, "mAP ties optimistic": 100 * 2 / 3,
                      "mAP ties pessimistic": 100 * 17 / 36, "classes in mAUC": 3}}


def test_convention_metrics_hand_computed():
    got = convention_metrics(Y, S)
    for policy, want in EXPECTED.items():
        assert got[policy] == pytest.approx(want)
    assert got["ties"]["tied positives %"] == pytest.approx(100 * 2 / 3)  # class 0's two of the three positives


def test_conventions_table_against_the_runs_own_convention():
    rng = np.random.default_rng(0)
    other = (Y, np.clip(S + rng.normal(0, 0.01, S.shape), 0, 1))  # a second "seed": no ties left in class 0
    numeric, display = conventions_table([(Y, S), other], used="skip")
    rows = numeric.set_index("used by these runs")
    assert list(numeric["used by these runs"]) == ["yes", "no"]
    second = convention_metrics(*other)
    for policy, key in (("skip", "yes"), ("fifty", "no")):
        for score in ("mAUC", "mAP", "mAP ties pessimistic"):
            assert rows.loc[key, score] == pytest.approx((EXPECTED[policy][score] + second[policy][score]) / 2)
        for score in ("mAUC", "mAP"):
            want = np.mean([EXPECTED[policy][score] - EXPECTED["skip"][score],
                            second[policy][score] - second["skip"][score]])
            assert rows.loc[key, f"{score} minus used"] == pytest.approx(want)
    assert rows.loc["yes", "mAUC minus used"] == 0 and display.loc[1, "classes in mAUC"] == "3"
    assert "±" in display.loc[0, "mAP ties optimistic"]  # the seeds differ: mean ± sd


# ---------------------------------------------------------------- the quirks table


def branch_run(folder, seed, test, cnn_signal, trans_signal):
    """A finished fabricated CTransCNN run with cnn and trans logits (signal * label + noise) and the authors'
    fused score 0.9 cnn + 0.1 trans."""
    rng = np.random.default_rng([seed, sum(map(ord, folder.name))])
    cnn = (cnn_signal * test.labels + rng.normal(size=test.labels.shape)).astype(np.float32)
    trans = (trans_signal * test.labels + rng.normal(size=test.labels.shape)).astype(np.float32)
    fused = (0.9 * cnn + 0.1 * trans).astype(np.float32)
    run = fake_run(folder, "ctranscnn_micro", seed, test, 0.0, base=fused, noise=0.0)
    run.write_predictions(predictions_frame(test, {"cnn": cnn, "trans": trans, "fused": fused}), "test")
    return run


def test_quirks_table_from_fabricated_runs(tmp_path):
    test = records("test", 400, 0)
    signals = {FULL: (1.0, 3.0),  # a strong transformer branch the 0.9/0.1 score mostly ignores
               "attention=softmax": (2.5, 3.0), "double_bn2=false": (1.0, 3.0), "all fixed": (0.2, 0.2)}
    trained = {k: [branch_run(tmp_path / f"{i}_s{s}", s, test, *sig) for s in (0, 1, 2)]
               for i, (k, sig) in enumerate(signals.items())}
    trained["fusion_weight=0.5"] = trained[FULL]  # the plan's fusion row: the full model's own runs
    groups = scored_runs(trained, QUIRKS)
    assert isinstance(groups["fusion_weight=0.5"][0], Rescored) and groups[FULL] == trained[FULL]
    # rescoring at the authors' weight gives back the engine's own fused probabilities
    y, probs = trained[FULL][0].predictions()
    y2, again = Rescored(trained[FULL][0], 0.9).predictions()
    assert np.array_equal(y, y2) and np.allclose(again, probs, rtol=0, atol=1e-6)
    comparer = RunComparer()
    numeric, display = quirks_table(groups, QUIRKS, comparer, FULL)
    verdicts = dict(zip(numeric["quirk"], numeric["verdict"]))
    assert verdicts == {FULL: "reference", "attention=softmax": "helps", "double_bn2=false": NOT_RESOLVED,
                        "fusion_weight=0.5": "helps", "all fixed": "hurts"}
    assert list(numeric["quirk"]) == list(QUIRKS) and (numeric["seeds"] == 3).all()
    row = numeric.set_index("quirk").loc["fusion_weight=0.5"]
    full = [comparer.replicates(r).point["mAUC"] for r in trained[FULL]]
    half = [comparer.replicates(r).point["mAUC"] for r in groups["fusion_weight=0.5"]]
    assert row["mAUC minus full"] == pytest.approx(np.mean(half) - np.mean(full), rel=1e-9)
    assert row["mAUC minus full lo"] < row["mAUC minus full"] < row["mAUC minus full hi"]
    assert row["runs"] == "the full model's runs, rescored at fusion_weight=0.5"
    assert numeric.set_index("quirk").loc["all fixed", "runs"] == "own runs, rescored at fusion_weight=0.5"
    assert display.loc[0, "CI excludes 0 (mAUC, mAP)"] == "reference" and "mAUC minus full [95% CI]" in display


def test_rescoring_needs_both_branch_logits(tmp_path):
    run = fake_run(tmp_path / "resnet_s0", "resnet50_mini", 0, records("test", 50, 0), 1.0)  # cnn logits only
    with pytest.raises(ValueError, match="needs the cnn and trans branch logits"):
        Rescored(run, 0.5).predictions()
    groups = scored_runs({"x": [run]}, {"x": Quirk("nothing", {}, None)})
    assert groups["x"] == [run]


# ---------------------------------------------------------------- the plan and notebook 03's sections


@pytest.mark.slow
def test_quirks_plan_and_sections_over_the_smoke_plan(tmp_path):
    """Smoke runs the study by default (CI covers it), the demo only with QUIRKS=1; its extra runs are the rows with
    training switches (the full and fusion_weight rows reuse the full model's runs). Notebook 03's quirks and
    metric-convention sections over the smoke plan's runs, fabricated where the plan puts them, write the outputs
    report.check expects."""
    from ctranscnn.engine.setup import load_data
    from ctranscnn.phantom import generate_cxr14
    from ctranscnn.report import plan, sections
    from ctranscnn.report.check import expected_files
    from ctranscnn.report.context import NotebookContext
    from ctranscnn.report.tables import read_table

    generate_cxr14(tmp_path / "data" / "cxr14-phantom", n=80, size=32, seed=0, workers=1)

    def context(profile, quirks=None):
        return NotebookContext.from_params(notebook="03_ablation", profile=profile, seeds=[0, 1],
                                           data_dir=str(tmp_path / "data"), runs_dir=str(tmp_path / "runs"),
                                           results_dir=str(tmp_path / "results"),
                                           figures_dir=str(tmp_path / "figures"), quirks=quirks)

    runs = {(profile, quirks): {p.run_dir for p in plan.planned_runs(context(profile, quirks), "ablation")}
            for profile, quirks in (("demo", None), ("demo", True), ("demo", False), ("smoke", None))}
    extra = sum(bool(q.overrides) for q in QUIRKS.values())
    assert len(runs[("demo", True)] - runs[("demo", None)]) == extra * 2  # two seeds
    assert runs[("demo", False)] == runs[("demo", None)]
    assert len(runs[("smoke", None)]) == (len(plan.ABLATION) + extra) * 2

    ctx = context("smoke")
    signals = {(): (1.0, 1.0), (("attention", "softmax"),): (3.0, 3.0)}
    for p in {p.run_dir: p for p in plan.planned_runs(ctx, "ablation")}.values():  # rows share runs
        splits = load_data(p.config)
        cnn, trans = signals.get(tuple(sorted(p.overrides.items())), (1.0, 1.0))
        run = fake_run(p.run_dir, p.config.model.name, p.seed, splits["test"], cnn, cfg=p.config, splits=splits)
        y, probs = run.predictions()
        logit = np.log(probs / (1 - probs)).astype(np.float32)
        rng = np.random.default_rng(p.seed)
        branches = {"cnn": logit, "trans": (trans * y + rng.normal(size=y.shape)).astype(np.float32)}
        run.write_predictions(predictions_frame(splits["test"], branches | {"fused": logit}), "test")
    ds = ctx.datasets[0]
    out = sections.quirks_section(ctx, ds)
    conventions = sections.conventions_section(ctx, ds)
    assert set(out) == {"quirks", "fig_quirks"} and set(conventions) == {"metric_conventions"}
    table, footer = read_table(tmp_path / "results" / "tables" / f"03_quirks_{ds.name}.csv")
    assert list(table["quirk"]) == list(QUIRKS) and (table["seeds"] == 2).all()
    assert set(table["verdict"]) <= {"reference", "helps", "hurts", NOT_RESOLVED}
    assert "no retraining" in "; ".join(footer.values())
    wanted = [f for f in expected_files(tmp_path / "results", tmp_path / "figures", [ds.name], ds.name, quirks=True)
              if f.name.startswith(("03_quirks", "03_metric_conventions"))]
    assert len(wanted) == 2 * 3 + 2 and all(f.stat().st_size > 0 for f in wanted)  # two tables, one figure
    # the demo without QUIRKS=1 skips the study, with the reason
    demo = context("demo")
    assert sections.quirks_section(demo, demo.datasets[0]) is None
    assert "quirks study on cxr14-phantom" in (tmp_path / "results" / "skipped.csv").read_text()


def test_check_expects_the_quirks_outputs_where_the_study_runs(tmp_path, capsys):
    from ctranscnn.report.check import expected_files, main

    results, figures = tmp_path / "results", tmp_path / "figures"
    args = ["--results", str(results), "--figures", str(figures), "--datasets", "a", "--chest", "a"]
    for f in expected_files(results, figures, ["a"], "a"):  # a complete demo tree without the study
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("x")
    assert (results / "tables" / "03_metric_conventions_a.csv").exists()  # no training: always there
    assert main(args) == 0 and main([*args, "--quirks", "0", "--profile", "smoke"]) == 0
    assert main([*args, "--profile", "smoke"]) == 1 and main([*args, "--quirks", "1"]) == 1
    err = capsys.readouterr().err
    assert "03_quirks_a.csv: missing" in err and "03_quirks_a.png: missing" in err


def test_plan_command_takes_quirks_like_reproduce_sh(monkeypatch):
    """`python -m ctranscnn plan` / `grid` read QUIRKS as reproduce.sh does (and --quirks wins)."""
    import argparse

    from ctranscnn.commands.plan import add_plan_arguments

    for env, want in (("1", 1), ("0", 0), ("", None)):
        monkeypatch.setenv("QUIRKS", env)
        p = argparse.ArgumentParser()
        add_plan_arguments(p)
        assert p.parse_args([]).quirks == want
    assert p.parse_args(["--quirks", "1"]).quirks == 1
