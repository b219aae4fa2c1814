"""What the numbered notebooks call around the sections: open the context with paths resolved against the
repository (Jupyter starts the kernel in notebooks/), show the plan before training, label the output of runs
trained side by side, show each section output under a heading with sentences from its numbers, and list the
files a notebook wrote.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import pandas as pd

from ctranscnn.report.context import PHANTOMS, DatasetSource, NotebookContext

REPO = Path(__file__).resolve().parents[2]
PATH_PARAMS = ("data_dir", "runs_dir", "results_dir", "figures_dir", "nih_root", "ranzcr_root", "tcmtd_list",
               "authors_lists", "chestmnist")


class NoDataError(FileNotFoundError):
    """No dataset found for a notebook that needs one; the message says which command makes one."""


def repo_root() -> Path:
    """The checkout the package was imported from (where reproduce.sh is), else the working directory."""
    return REPO if (REPO / "reproduce.sh").is_file() else Path.cwd()


def resolve_path(value: str) -> str:
    """A relative path parameter taken from the repository root, as reproduce.sh does ('' stays unset)."""
    if not value:
        return value
    return os.path.normpath(repo_root() / Path(value).expanduser())  # an absolute path stays as it is


def missing_data_message(data_dir: str, profile: str) -> str:
    from ctranscnn.engine.config import PHANTOM_DATA

    phantoms = PHANTOM_DATA[profile]
    if not phantoms:
        return (f"no dataset found: profile {profile} needs real data (set nih_root, ranzcr_root, tcmtd_list or "
                "chestmnist, e.g. NIH_ROOT=/data/nih PROFILE=paper bash reproduce.sh)")
    make = "; ".join(f"python -m ctranscnn phantom {name} --out {data_dir}/{name}-phantom --n {n} --size {size} "
                     f"--seed 0{' ' + flags if flags else ''}" for name, (n, size, flags) in phantoms.items())
    return (f"no dataset found under {data_dir} (looked for {', '.join(PHANTOMS)}). Make the profile's phantom "
            f"data with `PROFILE={profile} NOTEBOOKS=01_data bash reproduce.sh`, or directly: `{make}`")


def open_context(notebook: str, require_data: bool = True, **params: Any) -> NotebookContext:
    """NotebookContext.from_params with every path parameter resolved against the repository root; raises
    NoDataError (naming the command that makes the data) when `require_data` and no dataset is found."""
    params = {k: resolve_path(v) if k in PATH_PARAMS and isinstance(v, str) else v for k, v in params.items()}
    ctx = NotebookContext.from_params(notebook=notebook, **params)
    if require_data and not ctx.datasets:
        raise NoDataError(missing_data_message(params.get("data_dir", resolve_path("data")), ctx.profile))
    return ctx


def shown_path(path: str | Path) -> str:
    """A path as the reader should see it: relative to the repository root when inside it."""
    p = Path(path)
    with contextlib.suppress(ValueError):
        return p.resolve().relative_to(repo_root()).as_posix()
    return str(p)


# ---------------------------------------------------------------- the plan, before training


def run_status(cfg) -> str:
    """What ensure_run will do with `cfg`: 'reused' (finished, same config and data), 'resumed', or 'trained now'."""
    from ctranscnn.report.plan import run_state

    return {"finished": "reused", "started": "resumed"}.get(run_state(cfg), "trained now")


def plan_table(ctx: NotebookContext, notebook: str, runs: list | None = None,
               statuses: dict | None = None) -> pd.DataFrame:
    """One row per table row of the plan: model, dataset, split, seeds, profile, image size, epochs, status.
    `runs` (planned_runs) and `statuses` (run folder -> run_status) are computed here unless given."""
    from ctranscnn.engine.config import resolve_model_name
    from ctranscnn.report.plan import planned_runs

    runs = planned_runs(ctx, notebook) if runs is None else runs
    statuses = statuses if statuses is not None else {p.run_dir: run_status(p.config) for p in runs}
    rows, first = [], {}  # a run serving two rows (e.g. the main row and the split table's patient row) trains once
    for p in runs:
        cfg = p.config
        status = f"same run as '{first[p.run_dir]}'" if p.run_dir in first else statuses[p.run_dir]
        first.setdefault(p.run_dir, p.label)
        rows.append({"row": p.label, "model": resolve_model_name(cfg.model), "dataset": p.dataset, "split": p.split,
                     "seed": p.seed, "profile": cfg.profile, "image size (px)": cfg.data.image_size,
                     "epochs": cfg.schedule.epochs, "status": status})
    if not rows:
        return pd.DataFrame(columns=["row", "model", "dataset", "split", "seeds", "profile", "image size (px)",
                                     "epochs", "status"])
    df = pd.DataFrame(rows)
    keys = ["row", "model", "dataset", "split", "profile", "image size (px)", "epochs"]
    out = df.groupby(keys, sort=False).agg(seeds=("seed", lambda s: ", ".join(map(str, s))),
                                            status=("status", lambda s: ", ".join(sorted(set(s))))).reset_index()
    return out[["row", "model", "dataset", "split", "seeds", "profile", "image size (px)", "epochs", "status"]]


# Settings that say where a run is or who runs it, not what it computes: left out of the recipe diff.
NOT_RECIPE = ("train.out_dir", "train.run_name", "train.progress", "train.seed", "train.device", "data.root",
              "data.lists", "data.cache_dir", "data.dataset", "data.split", "model.name", "profile")


def recipe_diff(cfg) -> pd.DataFrame:
    """The settings of `cfg` that differ from the paper's recipe for the same model and data (profile 'paper')."""
    from ctranscnn.engine.config import load_config, to_dict

    paper = load_config(None, {"profile": "paper", "model.name": cfg.model.name, "data.dataset": cfg.data.dataset,
                               **{f"model.overrides.{k}": v for k, v in cfg.model.overrides.items()}})
    ours, ref = (pd.json_normalize(to_dict(c), sep=".").iloc[0].to_dict() for c in (cfg, paper))
    rows = [{"setting": k, "paper recipe": ref.get(k), "this run": v} for k, v in ours.items()
            if k not in NOT_RECIPE and ref.get(k) != v]
    return pd.DataFrame(rows, columns=["setting", "paper recipe", "this run"])


def show_plan(ctx: NotebookContext, notebook: str) -> pd.DataFrame:
    """Display the plan table and the recipe diff of its first run; returns the plan."""
    from IPython.display import Markdown, display

    from ctranscnn.engine.config import resolve_model_name
    from ctranscnn.report.plan import planned_runs

    runs = planned_runs(ctx, notebook)
    statuses = {p.run_dir: run_status(p.config) for p in runs}  # each run folder once
    plan = plan_table(ctx, notebook, runs, statuses)
    todo = sum(status in ("trained now", "resumed") for status in statuses.values())
    display(Markdown(f"#### Plan: the runs this notebook needs\n{len(plan)} table row(s), "
                     f"{len({p.run_dir for p in runs})} run(s): {todo} to train or resume now, the others reused "
                     "(finished earlier with the same config and data)."), plan)
    if runs:
        cfg = runs[0].config
        display(Markdown(f"#### Effective configuration of one run ({resolve_model_name(cfg.model)} on "
                         f"{runs[0].dataset}, seed {runs[0].seed}), as its difference from the paper's recipe"),
                recipe_diff(cfg))
    return plan


def files_written(ctx: NotebookContext) -> str:
    """Markdown list of the tables and figures this notebook wrote (its prefix), linked from the notebooks folder."""
    here = Path.cwd()
    lines = []
    for folder, pattern, what in ((ctx.results_dir / "tables", f"{ctx.prefix}_*.csv", "table"),
                                  (ctx.figures_dir, f"{ctx.prefix}_*.png", "figure")):
        for path in sorted(Path(folder).glob(pattern)):
            siblings = [path.with_suffix(s) for s in ((".csv", ".md", ".tex") if what == "table" else (".png", ".pdf"))]
            links = " · ".join(f"[{s.suffix[1:]}]({Path(os.path.relpath(s, here)).as_posix()})"
                               for s in siblings if s.exists())
            lines.append(f"- {what} `{shown_path(path.with_suffix(''))}`: {links}")
    return "\n".join(lines) or "_This notebook wrote no table or figure (see the skipped list above)._"


# ---------------------------------------------------------------- section outputs under named headings

# A section output key -> its heading; "(paper: ...)" names the paper item it regenerates. The KBS article's
# table and figure numbers were not available to us, so items are named by content (spec §6).
HEADINGS = {
    "summary": "Table: images, patients and labels per split",
    "prevalence": "Table: positive images per class and split",
    "cardinality": "Table: images by number of labels",
    "leakage": "Table: patients shared between splits",
    "missing": "Table: listed images left out because their files are missing",
    "fig_prevalence": "Figure: class prevalence per split",
    "fig_cooccurrence": "Figure: label co-occurrence, P(column label | row label)",
    "fig_samples": "Figure: sample training images per class, with their boxes",
    "main": "Table: CTransCNN test metrics, mean AUC, mAP, CP, CR, CF1, OP, OR, OF1 (paper: main results table)",
    "runs": "Table: CTransCNN per run and checkpoint, mean AUC with bootstrap 95% CI",
    "per_class": "Table: CTransCNN per-class test AUC (paper: per-class AUC table)",
    "fig_curves": "Figure: training curves, loss, validation mean AUC, learning rate (beyond the paper)",
    "fig_roc": "Figure: CTransCNN ROC curve per class (paper: ROC figure)",
    "split_effect": "Table: leaky image-level split against the leak-free patient split (beyond the paper)",
    "ablation": "Table: ablation of MMAEF, MBR and IIM (paper: ablation table)",
    "fig_ablation": "Figure: ablation, test mean AUC per variant",
    "quirks": "Table: the full model with each of the authors' code quirks fixed, minus the full model (beyond the "
              "paper)",
    "fig_quirks": "Figure: quirks fixed, difference to the full model with 95% CI",
    "metric_conventions": "Table: the same predictions under the authors' and our evaluation conventions (beyond "
                          "the paper)",
    "models": "Table: every model under one protocol, mean AUC, mAP, CF1, OF1 (paper: comparison table)",
    "comparison": "Table: our mean AUC beside the paper's published numbers (paper: comparison figure legends)",
    "complexity": "Table: parameters, GFLOPs and training throughput (paper: complexity comparison)",
    "fig_radar": "Figure: radar chart of per-class AUC, every model (paper: radar figure)",
    "localisation": "Table: Grad-CAM localisation against held-out boxes (beyond the paper)",
    "figure": "Figure: Grad-CAM maps of CTransCNN, ResNet50 and ViT (paper: Grad-CAM figure)",
}
# Keys whose meaning depends on the notebook.
NOTEBOOK_KEYS = {("04", "fig_roc"): ("Figure: macro-average ROC and precision-recall curves, every model "
                                     "(paper: ROC figure)", "fig_roc_models")}


def heading(prefix: str, key: str) -> tuple[str, str]:
    """(heading, describer key) of section output `key` in notebook `prefix`; unknown keys are spelled out."""
    if (prefix, key) in NOTEBOOK_KEYS:
        return NOTEBOOK_KEYS[(prefix, key)]
    return HEADINGS.get(key, key.replace("fig_", "Figure: ").replace("_", " ")), key


# Figure file name (figures/<prefix>_<name>_<dataset>.png) -> the section output key it was saved from.
FIGURE_KEYS = {"prevalence": "fig_prevalence", "cooccurrence": "fig_cooccurrence", "samples": "fig_samples",
               "training_curves": "fig_curves", "roc": "fig_roc", "roc_models": "fig_roc", "ablation": "fig_ablation",
               "quirks": "fig_quirks",
               "radar": "fig_radar", "gradcam": "figure"}


def figure_caption(stem: str) -> str:
    """The caption of a saved figure, from its file name: the heading it has in its notebook, and its dataset."""
    prefix, _, rest = stem.partition("_")
    for name in sorted(FIGURE_KEYS, key=len, reverse=True):  # 'roc_models' before 'roc'
        if rest.startswith(f"{name}_"):
            title = heading(prefix, FIGURE_KEYS[name])[0].removeprefix("Figure: ")
            return f"{title[:1].upper()}{title[1:]}: {rest[len(name) + 1:]}"
    return stem


def numeric_table(ctx: NotebookContext, ds: DatasetSource, key: str) -> pd.DataFrame | None:
    """The numeric CSV that section output `key` was made from, if the section wrote one."""
    from ctranscnn.report.narrative import DESCRIBERS
    from ctranscnn.report.tables import read_table

    if key not in DESCRIBERS:
        return None
    path = ctx.results_dir / "tables" / f"{ctx.prefix}_{DESCRIBERS[key][0]}_{ds.name}.csv"
    return read_table(path)[0] if path.exists() else None


def dataset_caveats(ctx: NotebookContext, ds: DatasetSource) -> list[str]:
    """The caveats of `ds` under this profile (its CTransCNN run's sizes stand for the notebook's runs); the data
    notebook trains nothing, so only the data caveats apply there."""
    from ctranscnn.engine.config import load_config, resolve_model_name
    from ctranscnn.report.narrative import caveats
    from ctranscnn.report.plan import CTRANSCNN

    from ctranscnn.registry import model_config

    cfg = load_config(None, {"profile": ctx.profile, "model.name": CTRANSCNN})
    size = max(ds.image_size, 32) if getattr(ds, "image_size", None) else cfg.data.image_size
    model = resolve_model_name(cfg.model)
    patch = cfg.model.overrides.get("patch_size", model_config(model).patch_size)
    return caveats(ds.phantom, ctx.profile, size, cfg.schedule.epochs, cfg.data.limit_train, model, ctx.seeds,
                   patch, dry_run=getattr(ctx, "dry_run", False), trained=ctx.prefix != "01")


def show_section(ctx: NotebookContext, ds: DatasetSource, out: dict[str, Any] | None) -> None:
    """Each output under its heading, then the sentences generated from its numbers; the caveats at the end."""
    from IPython.display import Image, Markdown, display

    from ctranscnn.report.narrative import describe

    for key, value in (out or {}).items():
        title, describer = heading(ctx.prefix, key)
        display(Markdown(f"#### {title}: {ds.name}"))
        display(Image(filename=str(value), width=900) if isinstance(value, Path) else value)
        text = describe(describer, numeric_table(ctx, ds, describer))
        if text:
            display(Markdown(text))
    if out:
        display(Markdown("**Caveats.** " + " ".join(dataset_caveats(ctx, ds))))
