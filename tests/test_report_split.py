"""The split table of notebook 02 (leaky image-level split against the patient split) on a tiny phantom, with
fabricated finished runs so that no training happens here (run reuse and training are tested with the engine)."""
from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ctranscnn.data.splits import LeakageWarning, load_splits  # noqa: E402
from ctranscnn.report import sections  # noqa: E402
from ctranscnn.report.context import NotebookContext  # noqa: E402
from ctranscnn.report import plan  # noqa: E402
from tests.test_claims import fake_run, records  # noqa: E402

# split -> (test images, logit signal) of the fabricated runs: the leaky split's runs score clearly higher
FAKE = {"image": (300, 2.5), "patient": (250, 1.0)}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    from ctranscnn.phantom import generate_cxr14
    from ctranscnn.phantom.tongue import generate_tongue

    root = tmp_path_factory.mktemp("data")
    generate_cxr14(root / "cxr14-phantom", n=60, size=32, seed=0, workers=1)
    generate_tongue(root / "tongue-phantom", n=20, size=32, seed=0, workers=1)
    return root


def context(tmp_path: Path, data_dir: Path, profile: str = "demo", split: str = "paper") -> NotebookContext:
    return NotebookContext.from_params(notebook="02_train", profile=profile, split=split, seeds=[0, 1],
                                       data_dir=str(data_dir), results_dir=str(tmp_path / "results"),
                                       figures_dir=str(tmp_path / "figures"), runs_dir=str(tmp_path / "runs"))


def test_phantoms_use_the_patient_split_unless_told_otherwise(tmp_path, data_dir):
    ctx = context(tmp_path, data_dir)
    cxr14, tongue = ctx.datasets
    assert ctx.split_for(cxr14) == "patient"  # SPLIT=paper: no authors' lists for a phantom -> leak-free
    assert ctx.split_for(tongue) == "paper"  # the tongue phantom ships its own lists
    assert context(tmp_path, data_dir, split="image").split_for(cxr14) == "image"
    assert "leak-free 'patient' split" in (tmp_path / "results" / "fallbacks.csv").read_text()  # a protocol change


def test_split_table_compares_image_and_patient_split(tmp_path, data_dir, monkeypatch):
    ctx = context(tmp_path, data_dir)
    asked, made = [], {}

    def train_runs(ctx_, ds, model=sections.CTRANSCNN, split=None, overrides=None):
        asked.append((ds.name, model, split))
        n, signal = FAKE[split]
        test = records("test", n, seed=n)  # the two splits' test sets are different images
        made[split] = [fake_run(tmp_path / f"{split}_s{s}", "ctranscnn_mini", s, test, signal) for s in ctx_.seeds]
        return made[split]

    monkeypatch.setattr(sections, "train_runs", train_runs)
    chosen = sections.split_datasets(ctx)
    assert [d.name for d in chosen] == ["cxr14-phantom"]  # the tongue phantom has no patients
    out = sections.split_section(ctx, chosen[0])
    assert asked == [("cxr14-phantom", sections.CTRANSCNN, "image"), ("cxr14-phantom", sections.CTRANSCNN, "patient")]

    stem = tmp_path / "results" / "tables" / "02_split_effect_cxr14-phantom"
    numeric = pd.read_csv(f"{stem}.csv", comment="#").set_index("split")
    image, patient = numeric.loc["image-level, like the authors' protocol"], numeric.loc["patient-level (leak-free)"]
    auc = {split: [r.test_metrics()["mAUC"] for r in rs] for split, rs in made.items()}
    assert image["mAUC"] == pytest.approx(np.mean(auc["image"])) and image["n_runs"] == 2
    assert image["mAUC_sd"] == pytest.approx(np.std(auc["image"], ddof=1))
    assert patient["mAUC"] == pytest.approx(np.mean(auc["patient"]))
    gap = np.mean(auc["image"]) - np.mean(auc["patient"])
    assert image["mAUC minus patient-level"] == pytest.approx(gap) and np.isnan(patient["mAUC minus patient-level"])
    assert image["mAUC minus patient-level lo"] > 0 and image["mAUC CI excludes 0"]  # a 2.5 vs 1.0 signal

    # Leak columns, against set intersections of the same splits computed here (smoke/demo caps exceed 60 images).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LeakageWarning)
        for split, row in (("image", image), ("patient", patient)):
            shares = sections.split_settings(split).get("data.fractions")  # image split at the patient shares
            s = load_splits("nih", data_dir / "cxr14-phantom", split, fractions=shares and tuple(shares))
            train, test = set(s["train"].patient_ids), s["test"].patient_ids
            assert row["test patients in train"] == len(set(test) & train)
            assert row["test images of train patients (%)"] == pytest.approx(100 * np.mean([p in train for p in test]))
    assert patient["test patients in train"] == 0 and image["test patients in train"] > 0
    assert sections.split_settings("image") == {"data.fractions": [0.7, 0.1, 0.2]} == {
        "data.fractions": list(sections.PATIENT_FRACTIONS)} and sections.split_settings("patient") == {}

    md = Path(f"{stem}.md").read_text()
    assert "image-level, like the authors' protocol" in md and f"{np.mean(auc['image']):.2f} ± " in md
    assert f"| {gap:+.2f} [" in md and "| reference |" in md and "resampled independently" in md
    assert "split: image vs patient" in md and Path(f"{stem}.tex").stat().st_size > 0
    assert list(out) == ["split_effect"]


def test_split_table_covers_one_dataset_in_demo(tmp_path, data_dir):
    import shutil

    shutil.copytree(data_dir / "cxr14-phantom", tmp_path / "data" / "cxr11-phantom")  # any second chest set
    shutil.copytree(data_dir / "cxr14-phantom", tmp_path / "data" / "cxr14-phantom")
    demo = context(tmp_path, tmp_path / "data")
    assert [d.name for d in sections.split_datasets(demo)] == ["cxr14-phantom"]
    assert "runs the split table on 1 dataset(s) only" in (tmp_path / "results" / "skipped.csv").read_text()
    paper = context(tmp_path / "p", tmp_path / "data", profile="paper")
    assert [d.name for d in sections.split_datasets(paper)] == ["cxr14-phantom", "cxr11-phantom"]


def test_planned_runs_cover_each_notebook(tmp_path, data_dir):
    ctx = context(tmp_path, data_dir)
    n = len(ctx.seeds)
    train = [p.config for p in plan.planned_runs(ctx, "train")]
    got = [(c.data.root.split("/")[-1], c.data.split, c.data.fractions, c.train.seed) for c in train]
    first = ctx.seeds[:1]  # demo: one seed for the rows the claims do not rest on (plan.seeds_for)
    want = [(("cxr14-phantom", "patient", None), ctx.seeds), (("tongue-phantom", "paper", None), first),
            (("cxr14-phantom", "image", (0.7, 0.1, 0.2)), ctx.seeds), (("cxr14-phantom", "patient", None), ctx.seeds)]
    assert got == [w + (seed,) for w, seeds in want for seed in seeds]
    assert train[0].train.run_name == train[2 * n + 1].train.run_name  # the split table reuses notebook 02's main run
    assert [p.config.model.overrides for p in plan.planned_runs(ctx, "ablation")] == [
        ov for _, ov in plan.ABLATION.values() for _ in range(n)]
    assert [p.config.model.name for p in plan.planned_runs(ctx, "sota")] == [
        m for m in plan.SOTA_MODELS for _ in range(n if m in plan.CLAIM_MODELS else 1)]
