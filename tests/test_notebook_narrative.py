"""Notebook helpers: sentences from hand-made tables (hand-computed margins and CI verdicts), caveats, the recipe
diff against the paper profile, labelled output of parallel runs, and path resolution from any working directory."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctranscnn.report import narrative as N
from ctranscnn.report import notebook as NB
from ctranscnn.report.progress import _Prefixed, labelled_output

REPO = Path(__file__).resolve().parents[1]


def test_ranking_margin_and_verdict_from_bootstrap_cis():
    df = pd.DataFrame({"model": ["a", "b", "c"], "mAUC": [70.0, 75.5, 60.25],
                       "mAUC_ci_lo": [66.0, 73.0, 55.0], "mAUC_ci_hi": [74.0, 78.0, 65.0]})
    text = N.ranking(df)
    assert text.startswith("b has the highest test mean AUC (75.50%), 5.50 points above a (70.00%)")
    assert "the lowest is c (60.25%), 15.25 points below the top" in text
    assert "overlap, so the order of the two is not resolved" in text  # 73.0 <= 74.0
    apart = df.assign(mAUC_ci_lo=[66.0, 74.5, 55.0])
    assert "do not overlap, so the order of the two is resolved" in N.ranking(apart)


def test_ranking_uses_paired_ci_then_sd_then_says_it_cannot_tell():
    # report.compare's columns: '<metric> minus <reference>' with ' lo' and ' hi'; the reference row has none.
    paired = pd.DataFrame({"model": ["a", "b"], "mAUC": [80.0, 78.0], "mAUC minus b": [2.0, np.nan],
                           "mAUC minus b lo": [0.4, np.nan], "mAUC minus b hi": [3.6, np.nan]})
    assert ("paired difference of a to the reference row (minus b) is +2.00 points: its 95% CI [+0.40, +3.60] "
            "excludes 0") in N.ranking(paired)
    flipped = paired.assign(mAUC=[78.0, 80.0], **{"mAUC minus b": [-2.0, np.nan], "mAUC minus b lo": [-3.6, np.nan],
                                                    "mAUC minus b hi": [0.4, np.nan]})
    assert "of a to the reference row (minus b) is -2.00 points: its 95% CI [-3.60, +0.40] includes 0" \
        in N.ranking(flipped)
    assert "includes 0" in N.resolved(-0.1, 3.0) and "excludes 0" in N.resolved(-3.0, -0.1)
    sd = pd.DataFrame({"model": ["a", "b"], "mAUC": [80.0, 79.0], "mAUC_sd": [1.5, 0.5]})
    assert "larger sd over seeds of the two is 1.50 points, more than the margin" in N.ranking(sd)
    bare = pd.DataFrame({"model": ["a", "b"], "mAUC": [80.0, 79.0]})
    assert "no CI and one run per row" in N.ranking(bare)
    assert N.ranking(bare.iloc[:1]) == "a has the highest test mean AUC (80.00%)."


def test_describers_on_hand_made_tables():
    summary = pd.DataFrame({"split": ["train", "val", "test", "total"], "images": [70, 10, 20, 100],
                            "patients": [7, 1, 2, 10], "labels_per_image": [1.0, 1.0, 1.0, 1.0],
                            "images_without_label": [7, 1, 2, 10]})
    assert N.describe("summary", summary) == ("100 images (train 70, val 10, test 20) of 10 patients; 1.00 labels "
                                              "per image on average, 10% with no finding.")
    ablation = pd.DataFrame({"variant": ["CTransCNN (full)", "w/o MMAEF", "w/o MBR"], "mAUC": [80.0, 77.0, 79.0]})
    text = N.describe("ablation", ablation)
    assert "against it: w/o MMAEF -3.00, w/o MBR -1.00 points" in text and "Removing MMAEF costs the most" in text
    per_class = pd.DataFrame({"class": ["x", "y", "z"], "AUC": [91.0, np.nan, 55.5]})
    assert N.describe("per_class", per_class) == ("Per class, x is detected best (AUC 91.00%) and z worst (55.50%). "
                                                  "Not scorable on this test set (one label value only): y.")
    assert N.describe("no such key", summary) == "" and N.describe("summary", None) == ""


def test_caveats_name_data_budget_token_grid_and_seeds():
    demo = N.caveats(True, "demo", 64, 8, 1200, "ctranscnn_mini", [0])
    assert any("Synthetic" in c for c in demo) and any("8 epochs" in c and "64 px" in c for c in demo)
    assert any("4 x 4 token grid" in c for c in demo)  # 64 px: /4 stem, then /4 tokens (config docstring)
    assert any("One seed" in c for c in demo)
    paper = N.caveats(False, "paper", 224, 300, 0, "ctranscnn_tiny", [0, 1, 2])
    assert paper == []
    assert N.caveats(True, "demo", 64, 8, 1200, "ctranscnn_mini", [0], trained=False) == [demo[0]]


def test_recipe_diff_lists_what_the_profile_changed():
    from ctranscnn.engine.config import PROFILES, load_config

    cfg = load_config(None, {"profile": "demo", "model.name": "ctranscnn_tiny", "train.seed": 3})
    diff = NB.recipe_diff(cfg).set_index("setting")
    demo = PROFILES["demo"]  # what the demo profile sets over the authors' defaults (224 px, 300 epochs)
    assert diff.loc["data.image_size"].tolist() == [224, demo["data.image_size"]]
    assert diff.loc["schedule.epochs"].tolist() == [300, demo["schedule.epochs"]]
    assert diff.loc["model.size", "this run"] == demo["model.size"]
    assert set(diff.index) <= set(demo) | {"eval.single_class"}  # nothing else differs
    assert "train.seed" not in diff.index and "data.split" not in diff.index
    assert NB.recipe_diff(load_config(None, {"profile": "paper"})).empty


def test_labelled_output_prefixes_every_line():
    out = io.StringIO()
    stream = _Prefixed(out, "[run] ")
    stream.write("epoch 1\nepo")
    stream.write("ch 2\n")
    stream.write("tail")
    stream.flush()
    assert out.getvalue() == "[run] epoch 1\n[run] epoch 2\n[run] tail\n"


def test_labelled_output_context(capsys):
    with labelled_output("cxr14_resnet50_s0"):
        print("epoch 1/2  loss 0.5")
    assert capsys.readouterr().out == "[cxr14_resnet50_s0] epoch 1/2  loss 0.5\n"


def test_paths_resolve_against_the_repository_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # like Jupyter starting the kernel in notebooks/
    assert NB.resolve_path("data") == str(REPO / "data")
    assert NB.resolve_path(str(tmp_path / "x")) == str(tmp_path / "x") and NB.resolve_path("") == ""
    empty = tmp_path / "nothing"
    empty.mkdir()
    rel = os.path.relpath(empty, REPO)
    with pytest.raises(NB.NoDataError, match="python -m ctranscnn phantom cxr14 --out .* --n 240 --size 64"):
        NB.open_context("01_data", profile="smoke", data_dir=rel, results_dir=str(tmp_path / "results"))
    ctx = NB.open_context("06_report", require_data=False, profile="smoke", data_dir=rel,
                          results_dir=str(tmp_path / "results"), figures_dir="figures")
    assert ctx.datasets == [] and ctx.figures_dir == REPO / "figures"


def test_figure_captions_from_file_names():
    assert NB.figure_caption("04_roc_models_cxr14-phantom").startswith("Macro-average ROC and precision-recall")
    assert NB.figure_caption("04_roc_models_cxr14-phantom").endswith(": cxr14-phantom")
    assert NB.figure_caption("02_roc_nih") == "CTransCNN ROC curve per class (paper: ROC figure): nih"
    assert NB.figure_caption("05_gradcam_cxr11-phantom").startswith("Grad-CAM maps of CTransCNN, ResNet50 and ViT")
    assert NB.figure_caption("09_unknown_x") == "09_unknown_x"


def test_report_lists_every_figure_with_its_caption(tmp_path):
    from ctranscnn.report.assemble import build_report

    (tmp_path / "results" / "tables").mkdir(parents=True)
    (tmp_path / "figures").mkdir()
    for stem in ("02_training_curves_nih", "04_radar_nih"):
        (tmp_path / "figures" / f"{stem}.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    text = build_report(tmp_path / "results", tmp_path / "figures").read_text()
    assert "![Radar chart of per-class AUC, every model (paper: radar figure): nih](../figures/04_radar_nih.png)" in text
    assert "_Figure: Training curves, loss, validation mean AUC, learning rate (beyond the paper): nih." in text


def test_radar_sentence_counts_wins_and_names_unscorable_classes():
    t = pd.DataFrame({"model": ["a", "b"], "x": [90.0, 80.0], "y": [70.0, 69.0], "z": [60.0, 75.0],
                      "w": [np.nan, np.nan]})
    assert N.describe("fig_radar", t) == ("a has the highest AUC on 2 of 3 scorable classes; the models differ most "
                                          "on z (15.0 points between best and worst) and least on y (1.0). Not "
                                          "scorable on this test set (marked on the chart): w.")


def test_leakage_sentence_on_the_tables_datastats_writes():
    from ctranscnn.report.datastats import leakage_table

    leaky = leakage_table({"patients_shared": {"train-val": 0, "train-test": 3, "val-test": 0},
                           "box_images_in_train": 79})
    assert N.describe_leakage(leaky).startswith("Patients shared between splits: train-test 3")
    clean = leakage_table({"patients_shared": {"train-val": 0, "train-test": 0, "val-test": 0},
                           "box_images_in_train": None})
    assert "leak-free" in N.describe_leakage(clean)
    # a list dataset has no patient ids: the counts are words, not numbers
    unknown = leakage_table({"patients_shared": {"train-val": None, "train-test": None, "val-test": None}})
    assert "no patient ids" in N.describe_leakage(unknown)
