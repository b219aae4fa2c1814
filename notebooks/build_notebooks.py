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
chestmnist = ""         # a ChestMNIST .npz (real NIH images, MedMNIST's split; optional)
nih_missing = "error"   # error | skip: skip keeps the listed NIH images present (partial download; NIH_MISSING)
dry_run = False         # with DRY_RUN set: the paper profile plan for a handful of steps (tests the wiring)
quirks = None           # notebook 03's quirks study: True / False (QUIRKS=1 / 0); None: the profile's default
runs_dir = "runs"
results_dir = "results"
figures_dir = "figures"'''


def setup(name: str, require_data: bool = True) -> str:
    return f'''%matplotlib inline
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from ctranscnn.report import sections
from ctranscnn.report.notebook import files_written, open_context, show_plan, show_section

# Relative paths are taken from the repository root, wherever the kernel started (Jupyter: notebooks/).
ctx = open_context(
    "{name}", profile=profile, split=split, seeds=seeds, device=device, data_dir=data_dir,
    nih_root=nih_root, ranzcr_root=ranzcr_root, tcmtd_list=tcmtd_list, authors_lists=authors_lists,
    runs_dir=runs_dir, results_dir=results_dir, figures_dir=figures_dir, chestmnist=chestmnist, dry_run=dry_run,
    nih_missing=nih_missing, quirks=quirks{"" if require_data else ", require_data=False"})
print("datasets:", [d.label for d in ctx.datasets])'''


def show_loop(call: str, keys: str = "") -> str:
    """Loop over datasets calling `call`; every table and figure it returns is shown under its heading, with
    sentences generated from its numbers and the caveats of this data and profile."""
    return f'''for ds in {keys or "ctx.datasets"}:
    display(Markdown(f"### {{ds.label}}"))
    show_section(ctx, ds, {call})
    plt.close("all")  # shown above; keeps memory flat and avoids a second copy at the end of the cell'''


def plan(notebook: str) -> list[nbformat.NotebookNode]:
    """The plan table and the recipe diff, then training (or reuse) of every run, each line labelled by its run."""
    return [
        md("## Plan\nThe runs this notebook needs, with what will happen to each (reused: a finished run with the "
           "same config and data exists; trained now / resumed otherwise), and how one run's configuration "
           "differs from the paper's recipe. Nothing has trained yet."),
        code(f'plan = show_plan(ctx, "{notebook}")'),
        md("## Training\nRuns train side by side where the CPU allows; every line starts with its run's name, and "
           "each finished run prints a one-line summary."),
        code(f'sections.prefetch_runs(ctx, "{notebook}")'),
    ]


FILES = code('display(Markdown("## Files written by this notebook\\n" + files_written(ctx)))')
NAMES_NOTE = ("The KBS article's table and figure numbers were not available to this artifact, so paper items are "
              "named by their content (reference spec §6).")

NOTEBOOKS = {
    "01_data": ("Data: statistics, splits, leakage", [
        md("## What this notebook reproduces\n- **Paper:** the description of the datasets (images, classes, splits) "
           "in the experimental setup.\n- **Beyond the paper:** patients per split and the patients shared between "
           "splits (leakage), label cardinality and co-occurrence, sample images per class with their boxes.\n\n"
           + NAMES_NOTE),
        md("## Results"),
        code(show_loop("sections.data_section(ctx, ds)")),
        FILES,
    ]),
    "02_train": ("Training CTransCNN", [
        md("## What this notebook reproduces\n- **Paper:** CTransCNN's test results on each dataset, mean AUC, mAP, "
           "CP, CR, CF1, OP, OR, OF1 (main results table), per-class AUC (per-class AUC tables) and ROC curves.\n"
           "- **Beyond the paper:** bootstrap 95% CIs over test images, the last-epoch checkpoint beside the best, "
           "training curves, and what patient leakage does (a leaky image-level split against the leak-free "
           "patient split).\n\n" + NAMES_NOTE),
        *plan("train"),
        md("## Results"),
        code(show_loop("sections.train_section(ctx, ds)")),
        md("## Split effect\nThe same model under a leaky image-level split (the authors' `paper` lists on real "
           "data; on phantoms our `image` split, like the authors' protocol) and the leak-free patient-level split, "
           "with how many test images belong to patients seen in training."),
        code(show_loop("sections.split_section(ctx, ds)", "sections.split_datasets(ctx)")),
        FILES,
    ]),
    "03_ablation": ("Ablation: MMAEF, MBR, IIM", [
        md("## What this notebook reproduces\n- **Paper:** the ablation of CTransCNN's three modules, MMAEF, MBR and "
           "IIM, each switched off in turn (ablation table), with all three off = Conformer.\n- **Beyond the "
           "paper:** the same protocol and data as the comparison; the full row is the same run as notebook 02's "
           "and 04's CTransCNN row. What the authors' code quirks cost (each fixed alone, then all), and what the "
           "evaluation convention alone does to the numbers.\n\n" + NAMES_NOTE),
        *plan("ablation"),
        md("## Results"),
        code(show_loop("sections.ablation_section(ctx, ds)", 'sections.chest_datasets(ctx, "ablation")')),
        md("## What the authors' code quirks cost\nThe full model (the authors' code, quirks included) against the "
           "same model with each quirk fixed alone: `attention=softmax` (MMAEF's attention weights are "
           "softmax(sigmoid(QK^T/sqrt(d))) in their code, near-uniform), `double_bn2=false` (MBR applies the same "
           "`bn2` twice), `fusion_weight=0.5` (the test score weighs the two separately trained branches 0.9/0.1), "
           "then all fixed together; each row minus the full model, paired on the same test images. The "
           "fusion-weight rows rescore the stored branch logits: no retraining. The demo profile runs this study "
           "only with `QUIRKS=1` (extra training runs); smoke and paper run it by default."),
        code(show_loop("sections.quirks_section(ctx, ds)", 'sections.chest_datasets(ctx, "ablation")')),
        md("## The evaluation convention alone\nThe full model's test predictions, unchanged, scored under the two "
           "single-class conventions (`eval.single_class`: `skip`, this artifact's CPU profiles; `fifty`, the "
           "authors') and with three rules for tied scores in AP."),
        code(show_loop("sections.conventions_section(ctx, ds)", 'sections.chest_datasets(ctx, "ablation")')),
        FILES,
    ]),
    "04_sota": ("Comparison with the paper's ten baselines", [
        md("## What this notebook reproduces\n- **Paper:** the comparison with ten baselines (ResNet34/50, ResNeXt50, "
           "SEResNet50, ViT, Swin, Conformer, ConvNeXt, RepVGG, DeiT): mean AUC, mAP, CF1, OF1 (comparison table), "
           "ROC curves with the mean AUC in the legend and radar charts of per-class AUC (comparison figures; their "
           "published mean AUCs are in spec §6.1), parameters and GFLOPs.\n- **Beyond the paper:** the published "
           "mean AUC beside ours (each column labelled with its data), precision-recall curves, training "
           "throughput.\n\n" + NAMES_NOTE),
        *plan("sota"),
        md("## Results"),
        code(show_loop("sections.sota_section(ctx, ds)", 'sections.chest_datasets(ctx, "sota")')),
        FILES,
    ]),
    "05_gradcam": ("Grad-CAM and localisation scores", [
        md("## What this notebook reproduces\n- **Paper:** the Grad-CAM figure of CTransCNN, ResNet50 and ViT on "
           "test images (fused output), each panel with the model's probability for the mapped label.\n- **Beyond "
           "the paper:** how well each model's maps localise findings: pointing game, IoBB and IoU accuracy at "
           "several thresholds, mIoU, against boxes of images outside the training split. It reuses notebook 04's "
           "runs (trained now if missing).\n\n" + NAMES_NOTE),
        *plan("gradcam"),
        md("## Results"),
        code(show_loop("sections.gradcam_section(ctx, ds)", 'sections.chest_datasets(ctx, "sota")')),
        FILES,
    ]),
    "06_report": ("Report", [
        md("## What this notebook does\nTraining wall time per run, then `results/REPORT.md` assembled from every "
           "table and figure written by notebooks 01-05, each figure with its caption."),
        code("display(sections.claims_section(ctx))  # results/tables/06_claims.*: REPORT.md opens with it"),
        code('''display(Markdown("## Training wall time per run"), sections.runs_runtime(ctx))

from ctranscnn.report.assemble import build_report

report = build_report(ctx.results_dir, ctx.figures_dir, phantom=any(d.phantom for d in ctx.datasets),
                      dry_run=ctx.dry_run)
display(Markdown(report.read_text()))'''),
        FILES,
    ]),
}


def build(name: str, title: str, cells: list[nbformat.NotebookNode]) -> nbformat.NotebookNode:
    nb = new_notebook(metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    })
    params = new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]})
    nb.cells = [new_markdown_cell(f"# {name[:2]}. {title}\n\nPart of the CTransCNN artifact; run all notebooks "
                                  "with `bash reproduce.sh`, or this one on its own: it reuses finished runs and "
                                  "trains only what is missing, with the same plan."), params,
                new_code_cell(setup(name, require_data=name != "06_report")), *cells]
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
