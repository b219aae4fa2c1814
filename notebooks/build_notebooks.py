"""Write notebooks/0*_*.ipynb from the cell sources below, so the notebooks stay small, diffable and consistent.

Run `python notebooks/build_notebooks.py` after editing; the logic lives in ctranscnn.report.sections.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

md, code = new_markdown_cell, new_code_cell

HERE = Path(__file__).resolve().parent

PARAMETERS = '''# Parameters (papermill overrides these; reproduce.sh passes them from its environment variables)
profile = "demo"        # smoke | demo | paper
split = "paper"         # paper | official | patient | image; phantoms use 'patient' for 'paper' (no authors' lists)
seeds = [0]
device = "auto"         # auto | cpu | cuda
data_dir = "data"       # phantom datasets live here when no real data is given
nih_root = ""           # real NIH ChestX-ray14 folder (optional)
ranzcr_root = ""        # real RANZCR CLiP folder (optional)
tcmtd_list = ""         # TCMTD list folder (private; optional)
authors_lists = ""      # the authors' split lists (split 'paper' on real data)
runs_dir = "runs"
results_dir = "results"
figures_dir = "figures"'''


def setup(name: str) -> str:
    return f'''%matplotlib inline
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from ctranscnn.report import sections
from ctranscnn.report.context import NotebookContext

ctx = NotebookContext.from_params(
    notebook="{name}", profile=profile, split=split, seeds=seeds, device=device, data_dir=data_dir,
    nih_root=nih_root, ranzcr_root=ranzcr_root, tcmtd_list=tcmtd_list, authors_lists=authors_lists,
    runs_dir=runs_dir, results_dir=results_dir, figures_dir=figures_dir)
print("datasets:", [d.label for d in ctx.datasets])'''


def show_loop(call: str, keys: str = "") -> str:
    """Loop over datasets calling `call`, displaying every table and figure it returns."""
    return f'''for ds in {keys or "ctx.datasets"}:
    display(Markdown(f"### {{ds.label}}"))
    out = {call}
    for key, value in (out or {{}}).items():
        display(Markdown(f"**{{key}}**"), value)
    plt.close("all")  # shown above; keeps memory flat and avoids a second copy at the end of the cell'''


NOTEBOOKS = {
    "01_data": ("Data: statistics, splits, leakage", [
        md("Per dataset: images and patients per split, per-class prevalence, label cardinality, the co-occurrence "
        "heat map, patients shared between splits (leakage), and sample images with their boxes."),
        code(show_loop("sections.data_section(ctx, ds)")),
    ]),
    "02_train": ("Training CTransCNN", [
        md("Trains CTransCNN (the profile's size) on every available dataset, one run per seed; finished runs with "
        "unchanged config and data are reused. Test metrics of the best-validation checkpoint (and the last "
        "epoch), per-class AUC, training curves, ROC curves."),
        code('sections.prefetch_runs(ctx, "train")  # every run of this notebook, side by side where the CPU allows'),
        code(show_loop("sections.train_section(ctx, ds)")),
        md("### Split effect\nThe same model under a leaky image-level split (the authors' `paper` lists on real data; "
        "on phantoms our `image` split, like the authors' protocol) and the leak-free patient-level split, with how many "
        "test images belong to patients seen in training."),
        code(show_loop("sections.split_section(ctx, ds)", "sections.split_datasets(ctx)")),
    ]),
    "03_ablation": ("Ablation: MMAEF, MBR, IIM", [
        md("The full model, each module switched off, and all three off (= Conformer). The full row is the same run "
        "as notebook 02's and 04's CTransCNN row."),
        code('sections.prefetch_runs(ctx, "ablation")'),
        code(show_loop("sections.ablation_section(ctx, ds)", 'sections.chest_datasets(ctx, "ablation")')),
    ]),
    "04_sota": ("Comparison with the paper's ten baselines", [
        md("The ten baselines and CTransCNN under one protocol: mean AUC, mAP, CF1, OF1, per-class AUC, the paper's "
        "published mean AUC beside ours (each column labelled with its data), radar chart, ROC curves, "
        "parameters, GFLOPs and training images/s."),
        code('sections.prefetch_runs(ctx, "sota")'),
        code(show_loop("sections.sota_section(ctx, ds)", 'sections.chest_datasets(ctx, "sota")')),
    ]),
    "05_gradcam": ("Grad-CAM and localisation scores", [
        md("Grad-CAM maps of CTransCNN, ResNet50 and ViT (fused output) on test images, and how well each model's maps "
        "localise findings: pointing game, IoBB and IoU accuracy at several thresholds, mIoU, against boxes of "
        "images outside the training split."),
        code(show_loop("sections.gradcam_section(ctx, ds)", 'sections.chest_datasets(ctx, "sota")')),
    ]),
    "06_report": ("Report", [
        md("Training wall time per run, then `results/REPORT.md` assembled from every table and figure written by "
        "notebooks 01-05."),
        code("display(sections.claims_section(ctx))  # results/tables/06_claims.*: REPORT.md opens with it"),
        code('''display(sections.runs_runtime(ctx))

from ctranscnn.report.assemble import build_report

report = build_report(ctx.results_dir, ctx.figures_dir, phantom=any(d.phantom for d in ctx.datasets))
display(Markdown(report.read_text()))'''),
    ]),
}


def build(name: str, title: str, cells: list[nbformat.NotebookNode]) -> nbformat.NotebookNode:
    nb = new_notebook(metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    })
    params = new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]})
    nb.cells = [new_markdown_cell(f"# {name[:2]}. {title}\n\nPart of the CTransCNN artifact; run all notebooks "
                                  "with `bash reproduce.sh`."), params, new_code_cell(setup(name)), *cells]
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{name}-{i}"  # stable ids: rebuilding gives identical files
    return nb


def main() -> None:
    for name, (title, cells) in NOTEBOOKS.items():
        path = HERE / f"{name}.ipynb"
        nbformat.write(build(name, title, cells), path)
        print(path)


if __name__ == "__main__":
    main()
