"""Sample grids of a written phantom (read back from disk, so the figure shows what loaders see); saving them is
`ctranscnn.io.save_figure`'s job."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


def _samples(root: Path, dataset: str, n: int, seed: int) -> list[tuple[Path, str, list[tuple]]]:
    """(image path, caption, boxes) for up to n images, preferring images with boxes/labels."""
    rng = np.random.default_rng(seed)
    if dataset == "cxr14":
        entry = pd.read_csv(root / "Data_Entry_2017.csv")
        boxes = pd.read_csv(root / "BBox_List_2017.csv")
        abnormal = entry[entry["Finding Labels"] != "No Finding"]
        pick = pd.concat([entry[entry["Finding Labels"] == "No Finding"].head(1),
                          abnormal.sample(min(n - 1, len(abnormal)), random_state=seed)]).head(n)
        paths = {p.name: p for p in root.glob("images_*/images/*.png")}
        return [(paths[r["Image Index"]], r["Finding Labels"].replace("|", "\n"),
                 boxes[boxes["Image Index"] == r["Image Index"]].iloc[:, 1:6].values.tolist())
                for _, r in pick.iterrows()]
    if dataset == "cxr11":
        table = pd.read_csv(root / "train.csv")
        classes = table.columns[1:-1]
        pick = table.iloc[rng.choice(len(table), size=min(n, len(table)), replace=False)]
        return [(root / "train" / f"{r.StudyInstanceUID}.jpg",
                 "\n".join(c for c in classes if r[c]), []) for _, r in pick.iterrows()]
    if dataset == "tongue":
        classes = (root / "multi_label_classes.txt").read_text().split("\n")
        lines = (root / "tongue_train.txt").read_text().split("\n")
        out = []
        for line in [lines[i] for i in rng.choice(len(lines), size=min(n, len(lines)), replace=False)]:
            rel, vec = line.split("\t")
            out.append((root / rel, ", ".join(c for c, v in zip(classes, vec.split(",")) if v == "1"), []))
        return out
    raise ValueError(f"unknown phantom {dataset!r}; expected cxr14, cxr11 or tongue")


def plot_samples(root: Path, dataset: str, n: int = 12, cols: int = 4, seed: int = 0):
    """A matplotlib Figure: n samples of the phantom at `root` with their labels (and boxes for cxr14)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    samples = _samples(Path(root), dataset, n, seed)
    rows = -(-len(samples) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (path, caption, boxes) in zip(axes.flat, samples):
        image = np.asarray(Image.open(path))
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
        for label, x, y, w, h in boxes:
            ax.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, edgecolor="tab:red", linewidth=1.2))
            ax.text(x, y - 1, label, color="tab:red", fontsize=6, va="bottom")
        ax.set_title(caption, fontsize=7)
    fig.suptitle(f"{dataset} phantom ({Path(root).name})", fontsize=9)
    fig.tight_layout()
    return fig

