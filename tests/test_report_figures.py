"""Figure helpers: PNG + PDF written and non-empty, ROC maths against sklearn, co-occurrence by hand."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.metrics import average_precision_score, roc_auc_score  # noqa: E402

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
    legend = [t.get_text() for t in figures["roc_models"].legends[0].get_texts()]
    assert legend[0] == f"CTransCNN (AUC {F.macro_roc(y, score)[2]:.2f}, AP {F.macro_pr(y, score)[2]:.2f})"
    # Hernia has no positives: only three per-class curves, and it is named as not scorable.
    assert len(figures["roc_classes"].legends[0].get_texts()) == 3
    assert any("not scorable" in t.get_text() and "Hernia" in t.get_text() for t in figures["roc_classes"].texts)
    for name, fig in figures.items():
        assert fig.get_figwidth() in (F.COLUMN, F.DOUBLE), f"{name}: not a paper column wide"
        if name != "samples":
            _assert_labelled_and_legend_outside(fig)
    for name, fig in figures.items():
        _assert_saved(save_figure(fig, tmp_path / "fig" / name, dpi=60))


# Every registered family at the demo's size, as the comparison notebook names them.
SOTA = ["resnet34_mini", "resnet50_mini", "resnext50_mini", "seresnet50_mini", "vit_mini", "swin_mini",
        "conformer_mini", "convnext_mini", "repvgg_mini", "deit_mini", "ctranscnn_mini"]


def _assert_labelled_and_legend_outside(fig) -> None:
    """Every data axes has both axis labels (polar: the radial one) and no legend box overlaps any data axes."""
    fig.canvas.draw()
    data_axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    for ax in data_axes:
        assert ax.get_ylabel(), f"{ax.get_title()!r}: y axis unlabelled"
        assert ax.name == "polar" or ax.get_xlabel(), f"{ax.get_title()!r}: x axis unlabelled"
    legends = list(fig.legends) + [ax.get_legend() for ax in data_axes if ax.get_legend() is not None]
    renderer = fig.canvas.get_renderer()
    for legend in legends:
        box = legend.get_window_extent(renderer)
        assert not any(box.overlaps(ax.get_window_extent(renderer)) for ax in data_axes), "legend over the data"


def _line_styles(ax) -> list[tuple]:
    return [(matplotlib.colors.to_hex(line.get_color()), line.get_marker()) for line in ax.get_lines()
            if line.get_label() and not line.get_label().startswith("_")]


def test_palette_gives_every_model_its_own_colour_and_marker_in_every_figure():
    styles = F.palette(SOTA)
    colours = {matplotlib.colors.to_hex(s["color"]) for s in styles.values()}
    assert len(colours) == len(SOTA) and len({s["marker"] for s in styles.values()}) == len(SOTA)
    # The same model has the same style in a figure with fewer models, under its other sizes, and as an
    # ablation label; names that are no model (seeds, variants) get colours of their own, distinct too.
    assert F.palette(["vit_mini", "ctranscnn_mini"])["vit_mini"] == styles["vit_mini"]
    assert F.palette(["resnet50"])["resnet50"] == styles["resnet50_mini"]
    mixed = F.palette(["CTransCNN (full)", "w/o MMAEF", "w/o MBR", "w/o IIM", "Conformer (all off)"])
    assert mixed["CTransCNN (full)"] == styles["ctranscnn_mini"]
    assert mixed["Conformer (all off)"] == styles["conformer_mini"]
    assert len({matplotlib.colors.to_hex(s["color"]) for s in mixed.values()}) == 5
    seeds = F.palette([f"seed {i}" for i in range(20)])
    assert len({matplotlib.colors.to_hex(s["color"]) for s in seeds.values()}) == 20
    # Two labels of one family in one figure still differ.
    twins = F.palette(["ctranscnn_mini", "CTransCNN (full)"])
    assert twins["ctranscnn_mini"]["color"] != twins["CTransCNN (full)"]["color"]


def test_roc_pr_by_model_eleven_distinct_lines_and_pr_against_sklearn():
    rng = np.random.default_rng(3)
    preds = {name: _fake_predictions(seed=i) for i, name in enumerate(SOTA)}
    fig = F.plot_roc_by_model(preds, title="cxr14-phantom, profile demo")
    roc_ax, pr_ax = fig.axes
    for ax in (roc_ax, pr_ax):
        styles = _line_styles(ax)
        assert len(styles) == len(SOTA) and len({c for c, _ in styles}) == len(SOTA)
        assert len({m for _, m in styles}) == len(SOTA)
    assert _line_styles(roc_ax) == _line_styles(pr_ax)  # one palette across the two panels
    assert fig.get_suptitle() == "cxr14-phantom, profile demo"
    _assert_labelled_and_legend_outside(fig)
    y, score = _fake_predictions()
    recall, precision, ap = F.macro_pr(y, score)
    assert ap == pytest.approx(100 * np.mean([average_precision_score(y[:, c], score[:, c]) for c in range(3)]))
    assert recall[0] == 0 and recall[-1] == 1 and np.all((0 <= precision) & (precision <= 1))
    # Perfect scores: precision 1 at every recall.
    perfect = F.macro_pr(y[:, :3], y[:, :3].astype(float) + 0.01 * rng.random((len(y), 3)))
    assert perfect[2] == pytest.approx(100.0) and np.allclose(perfect[1], 1.0)


def test_radar_marks_unscorable_classes_instead_of_drawing_them_at_the_centre():
    rng = np.random.default_rng(0)
    per_class = pd.DataFrame(60 + 30 * rng.random((len(SOTA), len(CLASSES))), index=SOTA, columns=CLASSES)
    per_class["Hernia"] = np.nan  # no positive test image
    fig = F.plot_radar(per_class, title="Per-class AUC")
    ax = fig.axes[0]
    model_lines = [line for line in ax.get_lines() if line.get_label() in SOTA]
    assert len(model_lines) == len(SOTA)
    styles = _line_styles(ax)
    assert len({c for c, _ in styles}) == len(SOTA) and len({m for _, m in styles}) == len(SOTA)
    for line in model_lines:
        r = np.asarray(line.get_ydata(), dtype=float)
        assert np.isnan(r[3]) and np.isfinite(r[:3]).all()  # a gap, not a point at the centre
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert "not scorable" in ticks[3] and "not scorable" not in "".join(ticks[:3])
    assert "AUC" in ax.get_ylabel()
    assert ax.get_ylim()[0] >= 60 - 10  # the scale starts near the lowest real AUC, not at a filler value
    _assert_labelled_and_legend_outside(fig)


def test_training_curves_and_bars_name_their_axes_and_runs():
    hist = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [3.0, 2.1, 1.7], "val_mAUC": [55.0, 61.0, 64.0],
                         "lr": [1e-4, 5e-5, 1e-5]})
    fig = F.plot_training_curves({f"seed {i}": hist + i for i in range(3)}, ["train_loss", "val_mAUC", "lr"],
                                 title="cxr14-phantom, profile smoke")
    assert [ax.get_ylabel() for ax in fig.axes] == ["training loss (per image)", "validation mean AUC (%)",
                                                     "learning rate"]
    assert all(ax.get_xlabel() == "epoch" for ax in fig.axes)
    assert len({c for c, _ in _line_styles(fig.axes[0])}) == 3
    assert fig.get_suptitle() == "cxr14-phantom, profile smoke"
    bars = F.plot_bars(pd.DataFrame({"variant": ["CTransCNN (full)", "w/o MBR"], "mAUC": [70.0, 68.0]}),
                       "variant", "mAUC", ylabel="test mean AUC (%)", title="t")
    colours = [matplotlib.colors.to_hex(p.get_facecolor()) for p in bars.axes[0].patches]
    assert len(set(colours)) == 2
    assert colours[0] == matplotlib.colors.to_hex(F.palette(["ctranscnn_mini"])["ctranscnn_mini"]["color"])
