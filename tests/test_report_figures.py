"""Figure helpers: PNG + PDF written and non-empty, ROC maths against sklearn, co-occurrence by hand."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from ctranscnn.io import save_figure  # noqa: E402
from ctranscnn.report import figures as F  # noqa: E402

CLASSES = ["Atelectasis", "Effusion", "Mass", "Hernia"]


def _fake_predictions(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, len(CLASSES))) < 0.3).astype(np.uint8)
    y[:, 3] = 0  # Hernia absent: AUC undefined, must be skipped
    score = np.clip(0.6 * y + 0.5 * rng.random(y.shape), 0, 1)
    return y, score


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _assert_saved(paths: dict) -> None:
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths["pdf"].read_bytes()[:5] == b"%PDF-"
    assert all(p.stat().st_size > 1000 for p in paths.values())


def test_save_figure_png_pdf_deterministic(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    first = save_figure(fig, tmp_path / "a" / "line")
    _assert_saved(first)
    pdf = first["pdf"].read_bytes()
    save_figure(fig, tmp_path / "a" / "line")
    assert first["pdf"].read_bytes() == pdf  # no timestamps: reruns do not churn git
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["line.pdf", "line.png"]


def test_macro_roc_matches_sklearn_and_skips_single_class_columns():
    y, score = _fake_predictions()
    fpr, tpr, auc = F.macro_roc(y, score)
    assert auc == pytest.approx(100 * np.mean([roc_auc_score(y[:, c], score[:, c]) for c in range(3)]))
    assert fpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == pytest.approx(1.0)
    assert np.all(np.diff(tpr) >= -1e-12)
    # Trapezoid area under the averaged curve is close to the mean per-class AUC.
    assert 100 * np.trapezoid(tpr, fpr) == pytest.approx(auc, abs=1.5)
    with pytest.raises(ValueError, match="no class"):
        F.macro_roc(np.zeros((5, 2)), np.zeros((5, 2)))


def test_cooccurrence_by_hand():
    labels = np.array([[1, 1, 0], [1, 0, 1], [1, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(F.cooccurrence(labels), [[3, 2, 1], [2, 2, 0], [1, 0, 1]])


def test_every_plot_saves_non_empty_files(tmp_path):
    y, score = _fake_predictions()
    y2, score2 = _fake_predictions(seed=1)
    hist = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [3.0, 2.1, 1.7], "val_mAUC": [55.0, 61.0, 64.0]})
    per_class = pd.DataFrame([[70, 80, 65, np.nan], [72, 78, 69, np.nan]], index=["CTransCNN", "ResNet50"],
                             columns=CLASSES)
    ablation = pd.DataFrame({"variant": ["full", "-MMAEF", "-MBR", "-IIM", "Conformer"],
                             "mAUC": [64.0, 62.5, 61.0, 63.1, 60.2], "mAUC_sd": [0.5, np.nan, 0.4, 0.3, 0.6]})
    prevalence = pd.DataFrame({"train": [30.0, 25.0, 10.0, 0.0], "test": [28.0, 27.0, 9.0, 0.0]}, index=CLASSES)
    images = []
    for i in range(3):
        p = tmp_path / f"img{i}.png"
        Image.fromarray((np.random.default_rng(i).random((64, 48)) * 255).astype(np.uint8)).save(p)
        images.append(p)
    figures = {
        "curves": F.plot_training_curves({"seed0": hist, "seed1": hist.assign(val_mAUC=hist.val_mAUC + 1)},
                                         ["train_loss", "val_mAUC", "absent_column"]),
        "roc_models": F.plot_roc_by_model({"CTransCNN": (y, score), "ResNet50": (y2, score2)}, title="demo"),
        "roc_classes": F.plot_roc_by_class(y, score, CLASSES),
        "radar": F.plot_radar(per_class),
        "ablation": F.plot_bars(ablation, "variant", "mAUC", yerr="mAUC_sd", reference=64.0),
        "cooc": F.plot_cooccurrence(y, CLASSES, conditional=True),
        "prevalence": F.plot_prevalence(prevalence),
        "samples": F.plot_sample_grid(images, ["a", "b", "c"], boxes=[[(5, 5, 20, 10, "Mass")], [], []], ncols=2),
    }
    legend = [t.get_text() for t in figures["roc_models"].axes[0].get_legend().get_texts()]
    assert legend[0] == f"CTransCNN (mean AUC {F.macro_roc(y, score)[2]:.2f})"
    # Hernia has no positives: only three per-class curves.
    assert len(figures["roc_classes"].axes[0].get_legend().get_texts()) == 3
    for name, fig in figures.items():
        _assert_saved(save_figure(fig, tmp_path / "fig" / name, dpi=60))
