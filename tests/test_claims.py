"""The claims table from fabricated run folders (written with the engine's own writers) with known differences."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ctranscnn.data.records import LabelledImages
from ctranscnn.engine.config import load_config
from ctranscnn.engine.evaluation import predictions_frame, split_metrics
from ctranscnn.engine.rundir import RunDir
from ctranscnn.engine.trainer import TrainState
from ctranscnn.report.claims import (CONTRADICTED, FULL, NOT_RESOLVED, SUPPORTED, ablation_claims, claims_table,
                                     comparison_claims, split_claim)
from ctranscnn.report.compare import RunComparer, difference_columns, difference_frame

CLASSES = ["Atelectasis", "Effusion", "Nodule"]


def records(split: str, n: int, seed: int, classes: list[str] = CLASSES) -> LabelledImages:
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, len(classes))) < np.linspace(0.3, 0.1, len(classes))).astype(np.uint8)
    ids = [f"{split}{seed}_{i:04d}.png" for i in range(n)]
    return LabelledImages("fake", split, classes, ids, [Path(i) for i in ids], labels, [f"p{i}" for i in range(n)])


def fake_run(folder: Path, model: str, seed: int, test: LabelledImages, signal: float,
             base: np.ndarray | None = None, noise: float = 1.0, cfg=None, splits=None) -> RunDir:
    """A finished run folder whose test logits are signal * label (or `base`) + noise (seeded by the folder name);
    `cfg` and `splits` default to a smoke config and made-up train/val splits."""
    rng = np.random.default_rng([seed, sum(map(ord, folder.name))])
    base = signal * test.labels if base is None else base
    logits = (base + noise * rng.normal(size=test.labels.shape)).astype(np.float32)
    cfg = cfg or load_config(None, {"profile": "smoke", "model.name": model, "train.seed": seed,
                                    "train.run_name": folder.name})
    run = RunDir(folder)
    run.path.mkdir(parents=True)
    run.write_predictions(predictions_frame(test, {"cnn": logits, "fused": logits}), "test")
    probs = 1 / (1 + np.exp(-logits.astype(np.float64)))
    scores = split_metrics(test.labels, probs, cfg.eval.single_class)
    metrics = {"best": {"epoch": 2, "val": scores, "test": scores}}  # val: not read here
    run.write_metrics(metrics)
    splits = splits or {"train": records("train", 64, 99), "val": records("val", 32, 98), "test": test}
    run.write_manifest("finished", cfg, model, test.classes, splits, {k: v.sha256() for k, v in splits.items()},
                       "CPU (fake)", TrainState(epochs_done=2), metrics)
    return RunDir(run.path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    test, leaky_test = records("test", 400, 0), records("test", 350, 1)
    made = {}
    for variant, model, signal in ((FULL, "ctranscnn_micro", 1.5), ("w/o MBR", "ctranscnn_micro", 0.4),
                                   ("w/o IIM", "ctranscnn_micro", 1.5), ("w/o MMAEF", "ctranscnn_micro", 3.0)):
        made[variant] = [fake_run(root / f"{variant.replace('/', '').replace(' ', '_')}_s{s}", model, s, test, signal)
                         for s in (0, 1, 2)]
    full_logits = made[FULL][1].predictions()[1]  # a one-seed baseline close to one of the full model's seeds
    made["resnet50"] = [fake_run(root / "resnet50_s0", "resnet50_mini", 0, test, 0,
                                 np.log(full_logits / (1 - full_logits)), noise=0.3)]
    made["vit"] = [fake_run(root / "vit_s0", "vit_mini", 0, test, 0.2)]
    made["leaky"] = [fake_run(root / f"leaky_s{s}", "ctranscnn_micro", s, leaky_test, 3.0) for s in (0, 1, 2)]
    return made


def test_claims_table_verdicts(runs):
    data = "fake-phantom (fabricated)"
    ablation = {k: runs[k] for k in (FULL, "w/o MMAEF", "w/o MBR", "w/o IIM")}
    sota = {"ctranscnn": runs[FULL], "resnet50": runs["resnet50"], "vit": runs["vit"]}
    claims = (comparison_claims(data, sota, "ctranscnn") + ablation_claims(data, ablation)
              + [split_claim(data, runs["leaky"], runs[FULL])])
    comparer = RunComparer()
    numeric, display = claims_table(claims, comparer)
    verdicts = dict(zip(numeric["claim"], numeric["verdict"]))
    assert verdicts == {
        "CTransCNN beats resnet50_mini": NOT_RESOLVED,  # a noisy copy of one of its seeds
        "CTransCNN beats vit_mini": SUPPORTED,  # 1.5 vs 0.2
        "MMAEF improves the full model (removing it lowers mean AUC)": CONTRADICTED,  # "removing" it helps
        "MBR improves the full model (removing it lowers mean AUC)": SUPPORTED,
        "IIM improves the full model (removing it lowers mean AUC)": NOT_RESOLVED,  # same signal, other noise
        "An image-level split inflates test AUC (vs a patient-level split)": SUPPORTED,
    }
    assert comparer.n_boot == 50  # the smoke profile's eval.n_boot
    # the measurement is the difference of the tables' numbers (mean over seeds of metrics.json's test mAUC)
    mean = lambda rs, m: np.mean([r.test_metrics()[m] for r in rs])  # noqa: E731
    row = numeric.set_index("claim").loc["MBR improves the full model (removing it lowers mean AUC)"]
    for m in ("mAUC", "mAP"):
        assert row[f"{m} diff"] == pytest.approx(mean(runs[FULL], m) - mean(runs["w/o MBR"], m), rel=1e-9)
        assert row[f"{m} diff lo"] < row[f"{m} diff"] < row[f"{m} diff hi"]
    assert row["seeds"] == "3 vs 3" and row["test images"] == "400"
    assert row["budget"] == "profile smoke: 2 epochs at 32 px, 64 train / 400 test images"
    split = numeric.iloc[-1]
    assert split["source"] == "ours" and split["test images"] == "350 vs 400 (different test sets)"
    assert numeric.iloc[0]["seeds"] == "3 vs 1"
    assert list(display.columns) == ["claim", "source", "mAUC diff [95% CI]", "mAP diff [95% CI]",
                                     "mAUC diff: seeds mean ± sd", "seeds", "test images", "data", "budget",
                                     "verdict"]
    again, _ = claims_table(claims, RunComparer())  # same resample streams: a rerun gives the same CIs
    assert again.equals(numeric)


def test_compare_pairs_runs_on_the_same_test_images(runs, tmp_path):
    comparer = RunComparer(n_boot=100)
    same = comparer.compare(runs[FULL], runs["w/o IIM"])
    assert same["mAUC"].paired and same["mAUC"].seeds_a == (0, 1, 2) and len(same["mAUC"].seed_diffs) == 3
    other = comparer.compare(runs["leaky"], runs[FULL])
    assert not other["mAUC"].paired
    # the full model's replicates are computed once and shared by both comparisons
    assert len(comparer._replicates) == 9 and len(comparer._counts) == 2
    numeric, display = difference_columns(same, "minus full")
    assert display["CI excludes 0 (mAUC, mAP)"] in {"no, no", "no, yes (+)", "no, yes (-)"}
    assert display["mAUC minus full: seeds mean ± sd"].count("±") == 1
    assert numeric["mAUC minus full"] == same["mAUC"].diff and numeric["mAP minus full lo"] == same["mAP"].lo
    groups = {k: runs[k] for k in (FULL, "w/o MBR", "w/o IIM")} | {"resnet50": runs["resnet50"]}
    num, disp = difference_frame(groups, FULL, comparer, "minus full")
    assert list(num.index) == list(groups) and list(disp["seeds"]) == [3, 3, 3, 1]
    assert list(disp.columns) == ["mAUC minus full [95% CI]", "mAUC minus full: seeds mean ± sd",
                                  "mAP minus full [95% CI]", "mAP minus full: seeds mean ± sd",
                                  "CI excludes 0 (mAUC, mAP)", "seeds"]
    d = same["mAUC"]
    assert display["mAUC minus full: seeds mean ± sd"] == f"{d.diff:+.2f} ± {np.std(d.seed_diffs, ddof=1):.2f}"
    assert d.diff == pytest.approx(np.mean(d.seed_diffs), rel=1e-12)
    assert disp.loc[FULL, "CI excludes 0 (mAUC, mAP)"] == "reference" and np.isnan(num.loc[FULL, "mAUC minus full"])
    assert disp.loc["w/o MBR", "CI excludes 0 (mAUC, mAP)"] == "yes (-), yes (-)"
    assert num.loc["w/o IIM", "mAUC minus full"] == pytest.approx(-same["mAUC"].diff, rel=1e-12)
    with pytest.raises(ValueError, match="different test sets"):
        comparer.compare(runs[FULL] + runs["leaky"][:1], runs["w/o IIM"])
    # one comparer serves several datasets (the claims table of the paper profile), each comparison within one
    other_classes = [fake_run(tmp_path / f"tongue_s{s}", "ctranscnn_micro", s, records("test", 120, 7, ["a", "b"]), 1.0)
                     for s in (0, 1)]
    assert comparer.compare(other_classes[:1], other_classes[1:])["mAUC"].paired
    with pytest.raises(ValueError, match="differ in eval.single_class or classes"):
        comparer.compare(runs[FULL], other_classes)


def test_report_opens_with_the_claims_table(tmp_path):
    from ctranscnn.report.assemble import build_report

    tables = tmp_path / "results" / "tables"
    tables.mkdir(parents=True)
    (tables / "06_claims.md").write_text("**claims**\n\n| claim | verdict |\n")
    (tables / "02_main_results_x.md").write_text("**main**\n")
    text = build_report(tmp_path / "results", tmp_path / "figures").read_text()
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings[0] == "## Claims: what this run supports"
    assert text.count("| claim | verdict |") == 1 and text.index("**claims**") < text.index("**main**")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::ctranscnn.data.splits.LeakageWarning")  # the split claim's image split
def test_claims_section_reads_the_planned_runs(tmp_path):
    """06's claims table, and the ablation and models tables, over the smoke plan with every planned run
    fabricated where the plan puts it (real test records of a tiny phantom, so the runs are what ensure_run
    reuses: nothing trains); a missing run skips its claims."""
    from ctranscnn.engine.setup import load_data
    from ctranscnn.phantom import generate_cxr14
    from ctranscnn.report import plan, sections
    from ctranscnn.report.context import NotebookContext
    from ctranscnn.report.tables import read_table

    generate_cxr14(tmp_path / "data" / "cxr14-phantom", n=80, size=32, seed=0, workers=1)
    ctx = NotebookContext.from_params(notebook="06_report", profile="smoke", seeds=[0], data_dir=str(tmp_path / "data"),
                                      runs_dir=str(tmp_path / "runs"), results_dir=str(tmp_path / "results"),
                                      figures_dir=str(tmp_path / "figures"))
    planned = {p.run_dir: p for nb in ("train", "ablation", "sota") for p in plan.planned_runs(ctx, nb)}
    for path, p in planned.items():
        splits = load_data(p.config)
        signal = 2.0 if p.model == plan.CTRANSCNN and not p.overrides else 1.0
        fake_run(path, p.config.model.name, p.seed, splits["test"], signal, cfg=p.config, splits=splits)
    display = sections.claims_section(ctx)
    numeric, footer = read_table(tmp_path / "results" / "tables" / "06_claims.csv")
    n_baselines = len(plan.SOTA_MODELS) - 1
    assert len(display) == len(numeric) == n_baselines + 3 + 1  # baselines, three modules, the split effect
    assert set(numeric["verdict"]) <= {SUPPORTED, CONTRADICTED, NOT_RESOLVED}
    assert numeric["data"].str.startswith("cxr14-phantom").all() and numeric["budget"].str.contains("smoke").all()
    assert "verdict on the mean-AUC CI" in "; ".join(footer.values())
    assert {"06_claims.md", "06_claims.tex"} <= {f.name for f in (tmp_path / "results" / "tables").iterdir()}

    # the ablation and models tables of notebooks 03 and 04 reuse the same runs and carry the paired differences
    ds = ctx.datasets[0]
    tables = tmp_path / "results" / "tables"
    cases = (("03_ablation", sections.ablation_section, "03_ablation", FULL, "minus full"),
             ("04_sota", sections.sota_section, "04_models", None, "minus CTransCNN"))
    for notebook, section, stem, ref, name in cases:
        ctx.notebook = notebook
        section(ctx, ds)
        table, footer = read_table(tables / f"{stem}_{ds.name}.csv")
        key = "variant" if ref else "model"
        ref = ref or next(m for m in table["model"] if m.startswith("ctranscnn"))
        others = table[table[key] != ref]
        assert table[f"mAUC {name}"].isna().tolist() == (table[key] == ref).tolist()
        assert (others[f"mAUC {name} lo"] <= others[f"mAUC {name}"]).all()
        assert (others[f"mAP {name} hi"] >= others[f"mAP {name}"]).all() and (table["seeds"] == 1).all()
        md = (tables / f"{stem}_{ds.name}.md").read_text()
        assert "| reference |" in md and f"mAUC {name} [95% CI]" in md and "CI excludes 0 (mAUC, mAP)" in md
        assert "bootstrap over test images" in "; ".join(footer.values())
    comparison = (tables / f"04_comparison_{ds.name}.md").read_text()
    assert "mAUC minus CTransCNN [95% CI]" in comparison and "| reference |" in comparison
    ctx.notebook = "06_report"

    # a missing ablation run: the three module claims are skipped with the reason, the others stay
    victim = next(p.run_dir for p in planned.values() if p.overrides.get("mbr") is False)
    victim.rename(victim.with_name("gone"))
    assert len(sections.claims_section(ctx)) == n_baselines + 1
    assert "claims: ablation on cxr14-phantom" in (tmp_path / "results" / "skipped.csv").read_text()
