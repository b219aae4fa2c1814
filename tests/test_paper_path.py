"""The citable path (issue 14): ChestMNIST as real data, no silent protocol change under PROFILE=paper, partial
NIH downloads, the paper-shaped dry run's wiring (configs, overlay, lists) and preflight."""
from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctranscnn.data.errors import DataError
from ctranscnn.data.splits import MissingImagesWarning, load_splits
from ctranscnn.engine.config import ConfigError, load_config
from ctranscnn.report.context import NotebookContext
from test_data_formats import NIH_CLASSES, NIH_ROWS, nih_vector, write_nih

REPO = Path(__file__).resolve().parents[1]


def medmnist_npz(path: Path, px: int, sizes=(("train", 12), ("val", 5), ("test", 7))) -> Path:
    """A file in MedMNIST's exact format: {split}_images uint8 N x H x W, {split}_labels uint8 N x 14."""
    rng = np.random.default_rng(1)
    arrays = {}
    for split, n in sizes:
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, px, px), dtype=np.uint8)
        arrays[f"{split}_labels"] = (rng.random((n, 14)) < 0.3).astype(np.uint8)
    np.savez_compressed(path, **arrays)
    return path


def ctx_for(tmp_path: Path, **params) -> NotebookContext:
    dirs = {k: str(tmp_path / k.replace("_dir", "")) for k in ("runs_dir", "results_dir", "figures_dir")}
    return NotebookContext.from_params(notebook="01_data", data_dir=str(tmp_path / "none"), **dirs, **params)


# ---------------------------------------------------------------- ChestMNIST


def test_chestmnist_release_comes_from_medmnist_info():
    from medmnist.info import INFO

    from ctranscnn.data.chestmnist import official_sizes, release

    info = INFO["chestmnist"]
    assert release(64) == ("chestmnist_64.npz", info["url_64"], info["MD5_64"])
    assert release(28) == ("chestmnist.npz", info["url"], info["MD5"])
    assert official_sizes() == {"train": 78_468, "val": 11_219, "test": 22_433}
    with pytest.raises(ValueError, match="32"):
        release(32)


def test_chestmnist_runs_the_demo_profile_at_the_files_size_on_medmnist_split(tmp_path):
    from ctranscnn.report.plan import row_configs, plan_row

    path = medmnist_npz(tmp_path / "chestmnist_128.npz", 128)
    ctx = ctx_for(tmp_path, chestmnist=str(path))
    assert [(d.name, d.kind, d.image_size) for d in ctx.datasets] == [("chestmnist", "chestmnist", 128)]
    ds = ctx.datasets[0]
    assert "real NIH ChestX-ray14" in ds.label and "128 px" in ds.label
    # split 'paper' (the default) becomes MedMNIST's own split, said loudly as a fallback
    assert ctx.split_for(ds) == "official"
    assert "MedMNIST's own split" in (tmp_path / "results" / "fallbacks.csv").read_text()
    (cfg,) = row_configs(ctx, plan_row(ctx, ds))
    assert (cfg.profile, cfg.data.dataset, cfg.data.split, cfg.data.image_size) == ("demo", "chestmnist", "official", 128)
    assert cfg.model.size == "mini"  # the demo profile's models
    splits = load_splits("chestmnist", path)
    assert {k: len(v) for k, v in splits.items()} == {"train": 12, "val": 5, "test": 7}


def test_chestmnist_data_section_draws_from_the_arrays_and_gradcam_says_why_it_is_skipped(tmp_path):
    from ctranscnn.report.sections import data_section, gradcam_section

    path = medmnist_npz(tmp_path / "chestmnist_64.npz", 64)
    ctx = ctx_for(tmp_path, chestmnist=str(path))
    out = data_section(ctx, ctx.datasets[0], n_samples=4)
    assert out["summary"].set_index("split").loc["total", "images"] == 24
    assert (tmp_path / "figures" / "01_samples_chestmnist.png").stat().st_size > 1000
    assert gradcam_section(ctx, ctx.datasets[0]) is None
    skipped = pd.read_csv(tmp_path / "results" / "skipped.csv")
    assert "no bounding boxes" in skipped.loc[skipped["what"] == "Grad-CAM on chestmnist", "why"].item()


def test_comparison_table_puts_medmnist_plus_beside_our_run():
    from ctranscnn.report.paper import comparison_table

    ours = pd.DataFrame({"model": ["vit_mini", "resnet50_mini"], "mAUC": [70.0, 72.0]})
    numeric, display = comparison_table(ours, "nih14_subset", "chestmnist (real, 64 px)", medmnist_size=64)
    col = [c for c in display.columns if c.startswith("MedMNIST+")]
    assert len(col) == 1 and "64 px" in col[0] and "3 seeds" in col[0]
    shown = display.set_index("method")[col[0]]
    assert shown["ViT"] == "76.21 (ViT-B/16)"
    assert shown["DenseNet-121"] == "78.70 (DenseNet-121)" and shown["ResNet-18"] == "75.59 (ResNet-18)"
    assert shown["ResNet50"] == "not in MedMNIST+"
    ref = numeric.set_index("method")["medmnist_plus_mAUC"]
    assert ref["DenseNet-121"] == 78.70 and np.isnan(ref["CTransCNN"])
    at224 = comparison_table(ours, "nih14_subset", "x", medmnist_size=224)[0].set_index("method")
    assert at224.loc[["DenseNet-121", "ResNet-18", "ViT"], "medmnist_plus_mAUC"].tolist() == [82.22, 78.96, 80.08]
    # without a ChestMNIST size, the table is as before: no MedMNIST+ rows or column
    plain = comparison_table(ours, "nih14_subset", "x")[1]
    assert "DenseNet-121" not in set(plain["method"]) and not any(c.startswith("MedMNIST+") for c in plain.columns)


# ---------------------------------------------------------------- no silent change of protocol


def test_paper_profile_without_authors_lists_stops_and_says_how_to_fix_it(tmp_path):
    root = write_nih(tmp_path / "nih")
    ctx = ctx_for(tmp_path, profile="paper", nih_root=str(root))
    with pytest.raises(ValueError, match="AUTHORS_LISTS=") as err:
        ctx.split_for(ctx.datasets[0])
    assert "SPLIT=patient" in str(err.value)
    # The demo profile falls back to the leak-free split, loudly: fallbacks.csv, and first in REPORT.md.
    demo = ctx_for(tmp_path, profile="demo", nih_root=str(root))
    assert demo.split_for(demo.datasets[0]) == "patient"
    from ctranscnn.report.assemble import build_report

    report = build_report(tmp_path / "results", tmp_path / "figures", phantom=False).read_text()
    assert report.index("## Protocol fallbacks") < report.index("## 01.")
    assert "nih split 'paper'" in report


def test_metric_convention_per_profile_is_stated_in_footers(tmp_path):
    assert load_config(None, {"profile": "paper"}).eval.single_class == "fifty"
    assert load_config(None, {"profile": "demo"}).eval.single_class == "skip"
    root = write_nih(tmp_path / "nih")
    paper = ctx_for(tmp_path, profile="paper", nih_root=str(root)).provenance()
    demo = ctx_for(tmp_path, profile="demo", nih_root=str(root)).provenance()
    assert any("AUC 50 (the authors' convention)" in n for n in paper.notes)
    assert any("left out of the mean AUC" in n for n in demo.notes)


# ---------------------------------------------------------------- partial NIH download


def test_missing_images_are_one_line_with_the_opt_in(tmp_path):
    root = write_nih(tmp_path / "nih")
    gone = ["00000001_001.png", "00000004_000.png", "00000007_000.png"]
    for path in root.glob("images_*/images/*.png"):
        if path.name in gone:
            path.unlink()
    with pytest.raises(DataError) as err:
        load_splits("nih", root, "patient", fractions=(0.5, 0.25, 0.25))
    (line,) = err.value.problems
    assert "missing image '00000001_001.png' and 2 more (3 of 10 listed images" in line
    assert "data.missing=skip" in line and "NIH_MISSING=skip" in line


@pytest.mark.parametrize("split", ["patient", "official"])
def test_missing_skip_keeps_the_present_images_of_the_full_split(tmp_path, split):
    root = write_nih(tmp_path / "nih")
    gone = {"00000001_001.png", "00000004_000.png", "00000007_000.png"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = load_splits("nih", root, split, fractions=(0.5, 0.25, 0.25))
    for path in root.glob("images_*/images/*.png"):
        if path.name in gone:
            path.unlink()
    with pytest.warns(MissingImagesWarning, match="left out listed images whose files are missing"):
        part = load_splits("nih", root, split, fractions=(0.5, 0.25, 0.25), missing="skip")
    findings = {name: f for name, f, _ in NIH_ROWS}
    for name, s in part.items():
        # membership: the full split's images minus the missing ones (the split does not move)
        assert s.image_ids == [i for i in full[name].image_ids if i not in gone]
        lost = [i for i in full[name].image_ids if i in gone]
        assert s.dropped["images"] == len(lost)
        expected = np.sum([nih_vector(findings[i]) for i in lost], axis=0) if lost else np.zeros(14, int)
        assert [s.dropped["per_class"][c] for c in NIH_CLASSES] == list(expected)
    assert sum(s.dropped["images"] for s in part.values()) == 3


def test_missing_skip_through_config_and_data_check(tmp_path, capsys):
    import json

    from ctranscnn.cli import main

    root = write_nih(tmp_path / "nih")
    next(root.glob("images_*/images/00000004_000.png")).unlink()
    cfg = load_config(None, {"data.missing": "skip"})
    assert cfg.data.missing == "skip"
    with pytest.raises(ConfigError, match="data.missing must be one of"):
        load_config(None, {"data.missing": "ignore"})
    args = ["data", "check", "--dataset", "nih", "--root", str(root), "--split", "patient", "--fractions", "0.5",
            "0.25", "0.25", "--json"]
    assert main(args) == 1
    assert "1 of 10 listed images not found" in json.loads(capsys.readouterr().out)["problems"][0]
    assert main(args + ["--missing", "skip"]) == 0


def test_data_check_reports_dropped_counts(tmp_path, capsys):
    import json

    from ctranscnn.cli import main

    root = write_nih(tmp_path / "nih")
    next(root.glob("images_*/images/00000004_000.png")).unlink()  # Effusion
    assert main(["data", "check", "--dataset", "nih", "--root", str(root), "--split", "patient", "--fractions",
                 "0.5", "0.25", "0.25", "--missing", "skip", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    dropped = {name: s["dropped_missing"] for name, s in report["splits"].items()}
    assert sum(d["images"] for d in dropped.values()) == 1
    assert sum(d["per_class"]["Effusion"] for d in dropped.values()) == 1
    assert any("data.missing=skip" in w for w in report["warnings"])


# ---------------------------------------------------------------- the paper-shaped dry run's wiring


@pytest.fixture
def dry_data(tmp_path_factory):
    """Phantom NIH / RANZCR / TCMTD data in the real layouts, with authors'-format lists (small images)."""
    from ctranscnn.phantom import Cxr14Config, generate_cxr11, generate_cxr14, generate_tongue
    from ctranscnn.report.dryrun import write_authors_lists

    out = tmp_path_factory.mktemp("dry")
    generate_cxr14(out / "nih", n=24, size=32, seed=0, workers=1, cfg=Cxr14Config(abnormal_only=True))
    generate_cxr11(out / "ranzcr", n=24, size=32, seed=0, workers=1)
    generate_tongue(out / "tcmtd", n=16, size=32, seed=0, workers=1)
    for ds in ("nih", "ranzcr"):
        write_authors_lists(ds, out / ds, out / "lists")
    return out


def dry_ctx(tmp_path: Path, dry: Path, **params) -> NotebookContext:
    return ctx_for(tmp_path, profile="paper", nih_root=str(dry / "nih"), ranzcr_root=str(dry / "ranzcr"),
                   tcmtd_list=str(dry / "tcmtd"), authors_lists=str(dry / "lists"), **params)


def test_dry_lists_take_the_real_data_branch_of_split_paper(tmp_path, dry_data):
    from ctranscnn.data.listfile import find_list_files

    ctx = dry_ctx(tmp_path, dry_data)
    assert [d.name for d in ctx.datasets] == ["nih", "ranzcr", "tcmtd"] and not any(d.phantom for d in ctx.datasets)
    assert [ctx.split_for(d) for d in ctx.datasets] == ["paper"] * 3
    assert not (tmp_path / "results" / "fallbacks.csv").exists()
    files = find_list_files(dry_data / "lists" / "chest14")
    assert files["train"].name == "add72_chest14_train_labels.txt"
    first = files["test"].read_text().splitlines()[0]
    assert first.startswith("data/chest14/images/") and not files["test"].read_text().endswith("\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        splits = load_splits("nih", dry_data / "nih", "paper", dry_data / "lists" / "chest14")
        image = load_splits("nih", dry_data / "nih", "image", fractions=(0.5, 0.25, 0.25))
    assert {k: v.image_ids for k, v in splits.items()} == {k: v.image_ids for k, v in image.items()}
    for k in splits:  # the lists' labels are the metadata's
        np.testing.assert_array_equal(splits[k].labels, image[k].labels)


def test_dry_run_uses_paper_configs_full_size_models_and_the_overlay(tmp_path, dry_data):
    from ctranscnn.report.dryrun import DRY_OVERLAY
    from ctranscnn.report.plan import planned_runs

    ctx = dry_ctx(tmp_path, dry_data, dry_run=True)
    runs = planned_runs(ctx, "sota")
    models = {r.model for r in runs}
    assert {"ctranscnn_tiny", "conformer_tiny", "vit", "resnet50"} <= models
    for r in runs:
        c = r.config
        assert (c.profile, c.data.image_size, c.model.size, c.eval.single_class) == ("paper", 224, "", "fifty")
        assert all(getattr(getattr(c, k.split(".")[0]), k.split(".")[1]) == v for k, v in DRY_OVERLAY.items())
        # the paper config's model keywords belong to its model only
        assert c.model.overrides == ({"drop_path_rate": 0.1} if r.model == "ctranscnn_tiny" else {})
    assert "DRY RUN" in ctx.provenance().profile and any("DRY RUN" in n for n in ctx.provenance().notes)


def test_paper_runs_read_configs_paper_yaml(tmp_path, dry_data, monkeypatch):
    import ctranscnn.report.plan as plan

    configs = tmp_path / "configs"
    shutil.copytree(REPO / "configs", configs)
    text = (configs / "paper_nih.yaml").read_text()
    (configs / "paper_nih.yaml").write_text(text.replace("lr: 0.001", "lr: 0.0007"))
    monkeypatch.setattr(plan, "CONFIG_DIR", configs)
    ctx = dry_ctx(tmp_path, dry_data)
    nih, ranzcr = (plan.row_configs(ctx, plan.plan_row(ctx, ds))[0] for ds in ctx.datasets[:2])
    assert nih.optim.lr == 0.0007 and ranzcr.optim.lr == 0.001


def test_a_wrong_model_name_in_a_paper_config_names_the_file(tmp_path, dry_data, monkeypatch):
    import ctranscnn.report.plan as plan

    configs = tmp_path / "configs"
    shutil.copytree(REPO / "configs", configs)
    broken = configs / "paper_ranzcr.yaml"
    broken.write_text(broken.read_text().replace("name: ctranscnn_tiny", "name: ctranscnn_tiyn"))
    monkeypatch.setattr(plan, "CONFIG_DIR", configs)
    ctx = dry_ctx(tmp_path, dry_data, dry_run=True)
    with pytest.raises(ConfigError, match=r"paper_ranzcr\.yaml: model\.name 'ctranscnn_tiyn' is not a registered"):
        plan.planned_runs(ctx, "train")


def test_check_expects_the_paper_profiles_outputs_and_dry_run_marks(tmp_path, capsys):
    from ctranscnn.report.check import PAPER, expected_files, main

    results, figures = tmp_path / "results", tmp_path / "figures"
    files = expected_files(results, figures, *PAPER, preflight=True, quirks=True)  # the paper profile runs quirks
    names = {f.name for f in files}
    assert {"04_comparison_nih.csv", "04_comparison_ranzcr.csv", "03_ablation_ranzcr.md", "05_gradcam_nih.png",
            "02_split_effect_ranzcr.tex", "02_main_results_tcmtd.md", "preflight.md"} <= names
    assert "05_gradcam_ranzcr.png" not in names and "04_comparison_tcmtd.csv" not in names  # no boxes; not chest
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("note: DRY RUN: ...")
    args = ["--results", str(results), "--figures", str(figures), "--profile", "paper", "--dry-run"]
    assert main(args) == 0
    (results / "tables" / "02_runs_nih.md").write_text("a table without the mark")
    assert main(args) == 1
    assert "02_runs_nih.md: not marked as a dry run" in capsys.readouterr().err


# ---------------------------------------------------------------- preflight


def test_preflight_lists_runs_measures_models_and_stops_on_problems(tmp_path, dry_data, monkeypatch):
    import ctranscnn.report.preflight as pf

    ctx = dry_ctx(tmp_path, dry_data)
    ctx.profile = "smoke"  # the smoke profile's micro/mini models at 32 px: a real measurement in seconds
    result = pf.preflight(ctx, warmup=0, repeats=1)
    assert result.ok, result.problems
    assert list(result.data["dataset"]) == ["nih", "ranzcr", "tcmtd"] and (result.data["status"] == "ok").all()
    assert set(result.data["classes"]) == {14, 11, len((dry_data / "tcmtd" / "multi_label_classes.txt").read_text().split())}
    planned = pf.planned(ctx)
    assert len(result.runs) == len(planned) == len({r.run_dir for r in planned})
    assert (result.runs["status"] == "to train").all()
    assert (result.runs["est_s"] > 0).all() and (result.models["step_s"] > 0).all()
    assert len(result.models) == len({pf.model_key(r.config) for r in planned})  # each distinct model once
    assert result.models["model"].is_unique  # ablation variants named by their switches
    assert "ctranscnn_micro (mmaef=False)" in set(result.models["model"])
    text = result.markdown()
    assert "**OK**" in text and "## Planned runs" in text
    from ctranscnn.report.plan import parallel_jobs

    assert result.workers == parallel_jobs(planned[0].config)  # the notebooks' pool: cores // train.cpu_threads
    assert (f"with the {result.workers} runs at once" in text) == (result.workers > 1)
    # Not enough disk, or memory: stop, saying why.
    monkeypatch.setattr(pf, "available_memory_gib", lambda device: 0.0)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(pf.shutil, "disk_usage", lambda path: usage._replace(free=0))
    bad = pf.preflight(ctx, warmup=0, repeats=1)
    assert [p.split(":")[0] for p in bad.problems] == ["disk", "memory"] and "**STOP**" in bad.markdown()


def test_preflight_makespan_follows_the_pools_order():
    from ctranscnn.report.preflight import makespan

    # Two workers, hand-scheduled: 5|4, then 3 -> the one free at 4 (7), 3 -> at 5 (8), 3 -> at 7 (10).
    assert makespan([5, 4, 3, 3, 3], 2) == 10
    assert makespan([3, 3, 3, 4, 5], 2) == 11  # 3|3, 3 -> 6, 4 -> 7, 5 -> 11: the order matters
    assert makespan([1, 2, 3], 1) == 6 and makespan([1, 2, 3], 5) == 3 and makespan([], 2) == 0


@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux /proc/self/clear_refs")
def test_cpu_peak_memory_counts_from_its_reset():
    from ctranscnn.bench import peak_memory_mb, reset_peak_memory

    reset_peak_memory("cpu")
    base = peak_memory_mb("cpu")
    block = np.ones(300 * 2**20 // 8)  # 300 MiB, touched
    assert peak_memory_mb("cpu") >= base + 290
    del block  # returned to the system (a large block is its own mapping)
    assert peak_memory_mb("cpu") >= base + 290  # a peak stays until reset ...
    reset_peak_memory("cpu")
    assert peak_memory_mb("cpu") < base + 100  # ... which the preflight does before each model


def test_preflight_main_fails_on_data_problems_unless_forced(tmp_path, dry_data, capsys):
    from ctranscnn.report.preflight import main

    broken = tmp_path / "nih"
    shutil.copytree(dry_data / "nih", broken)
    next(broken.glob("images_*/images/*.png")).unlink()
    args = ["--profile", "paper", "--nih-root", str(broken), "--authors-lists", str(dry_data / "lists"),
            "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results")]
    assert main(args) == 1
    out = capsys.readouterr()
    assert "missing image" in out.out and "PREFLIGHT=force" in out.err
    assert "**STOP**" in (tmp_path / "results" / "preflight.md").read_text()
    assert main(args + ["--force"]) == 0


def test_run_manifest_records_what_missing_skip_left_out(tmp_path):
    import json

    from ctranscnn.engine.trainer import train
    from ctranscnn.phantom import generate_cxr14

    root = tmp_path / "nih"
    generate_cxr14(root, n=60, size=32, seed=0, workers=1)
    gone = sorted(root.glob("images_*/images/*.png"))[::10]
    for path in gone:
        path.unlink()
    cfg = load_config(None, {"profile": "smoke", "data.dataset": "nih", "data.root": str(root), "data.split": "patient",
                             "data.missing": "skip", "schedule.epochs": 1, "train.device": "cpu",
                             "train.out_dir": str(tmp_path / "runs"), "train.progress": False})
    with pytest.warns(MissingImagesWarning):
        run_dir, _ = train(cfg)
    dataset = json.loads((run_dir / "manifest.json").read_text())["dataset"]
    assert dataset["missing"] == "skip"
    assert sum(d["images"] for d in dataset["dropped_missing"].values()) == len(gone)


def test_chestmnist_run_trains_on_the_arrays_at_the_files_size(tmp_path):
    import json

    from ctranscnn.engine.trainer import train
    from ctranscnn.report.plan import plan_row, row_configs

    path = medmnist_npz(tmp_path / "chestmnist_64.npz", 64)
    ctx = ctx_for(tmp_path, profile="smoke", chestmnist=str(path))
    (cfg,) = row_configs(ctx, plan_row(ctx, ctx.datasets[0]))
    run_dir, _ = train(cfg)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["config"]["data"]["image_size"] == 64
    assert manifest["dataset"]["sizes"] == {"train": 12, "val": 5, "test": 7}
    assert manifest["classes"] == list(NIH_CLASSES)


def test_dry_run_labels_its_data_as_phantoms(tmp_path, dry_data):
    real = dry_ctx(tmp_path, dry_data)
    dry = dry_ctx(tmp_path, dry_data, dry_run=True)
    assert [d.description for d in real.datasets][0] == "real NIH ChestX-ray14"
    assert all(d.description.startswith("phantom data in the layout of") and "(dry run)" in d.description
               for d in dry.datasets)
