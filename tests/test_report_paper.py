"""The paper's published mean AUCs and the comparison table that labels where each number came from."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from ctranscnn.report.paper import PAPER_DATA, PHANTOM_NOTE, comparison_notes, comparison_table, paper_mean_auc


def _spec_table(shared_dir) -> pd.DataFrame:
    """Parse the §6.1 Markdown table of the reference spec."""
    text = (shared_dir / "docs" / "reference_spec.md").read_text()
    section = text[text.index("### 6.1"):text.index("### 6.2")]
    rows = []
    for line in section.splitlines():
        cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"\d+\.\d+", cells[1]):
            rows.append({"method": cells[0], "chestxray11": float(cells[1]), "nih14_subset": float(cells[2])})
    return pd.DataFrame(rows)


def test_paper_numbers_equal_spec_table(shared_dir):
    spec = _spec_table(shared_dir)
    ours = paper_mean_auc()
    assert len(spec) == 11
    pd.testing.assert_frame_equal(ours[["method", "chestxray11", "nih14_subset"]], spec)


def test_paper_numbers_self_consistent():
    paper = paper_mean_auc()
    assert paper["method"].is_unique and paper["model"].is_unique
    # The headline numbers: CTransCNN is best on both datasets.
    best = paper.set_index("method").idxmax()
    assert best["chestxray11"] == best["nih14_subset"] == "CTransCNN"


def test_comparison_table_labels_data_and_explains_missing_cells():
    ours = pd.DataFrame({"model": ["ctranscnn_mini", "resnet50", "ctranscnn_micro"],
                         "method": ["CTransCNN", "ResNet50", "CTransCNN micro"],
                         "mAUC": [61.234, 58.0, 55.5], "mAUC_sd": [1.2, np.nan, 0.1], "n_runs": [2, 1, 2]})
    numeric, display = comparison_table(ours, "nih14_subset", "nih14-phantom", missing={"ViT": "skipped: no time"})
    paper_col = "paper: real NIH ChestX-ray14 subset, 51,759 images"
    assert list(display.columns) == ["method", "our model", paper_col, "this run: nih14-phantom"]
    d = display.set_index("method")
    assert d.loc["CTransCNN", paper_col] == "78.47"
    assert d.loc["CTransCNN", "this run: nih14-phantom"] == "61.23 ± 1.20"
    assert d.loc["ResNet50", "this run: nih14-phantom"] == "58.00"
    assert d.loc["ViT", "this run: nih14-phantom"] == "skipped: no time"
    assert d.loc["DeiT", "this run: nih14-phantom"] == "not run"
    assert d.loc["CTransCNN micro", paper_col] == "not in paper"
    n = numeric.set_index("method")
    assert n.loc["CTransCNN", "ours_n_runs"] == 2 and np.isnan(n.loc["ViT", "ours_mAUC"])
    assert (numeric["ours_data"] == "nih14-phantom").all() and (numeric["paper_data"] == PAPER_DATA["nih14_subset"]).all()
    assert len(display) == 12


def test_comparison_table_maps_registry_names_and_rejects_bad_input():
    ours = pd.DataFrame({"model": ["conformer_tiny", "resnet50_mini", "swin"], "mAUC": [80.0, 70.0, 60.0]})
    d = comparison_table(ours, "chestxray11", "chest11")[1].set_index("method")
    assert d.loc["Conformer", "this run: chest11"] == "80.00" and d.loc["Conformer", "our model"] == "conformer_tiny"
    assert d.loc["ResNet50", "this run: chest11"] == "70.00" and d.loc["Swin Transformer", "this run: chest11"] == "60.00"
    assert len(d) == 11
    with pytest.raises(KeyError, match="paper_dataset"):
        comparison_table(pd.DataFrame({"model": [], "mAUC": []}), "tcmtd", "x")
    with pytest.raises(KeyError, match="mAUC"):
        comparison_table(pd.DataFrame({"model": ["a"]}), "chestxray11", "x")


def test_phantom_note_only_for_phantom_data():
    assert PHANTOM_NOTE in comparison_notes("cxr14-phantom")
    assert PHANTOM_NOTE not in comparison_notes("real NIH, patient split")


def test_every_paper_method_has_a_registered_model_family():
    from ctranscnn import list_models
    from ctranscnn.report.paper import model_family

    families = {model_family(m) for m in list_models()}
    assert set(paper_mean_auc()["model"]) <= families
