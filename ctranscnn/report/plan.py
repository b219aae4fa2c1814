"""The experiment plan: which runs each notebook needs, and the orchestration that trains the missing ones.

The plan is data. A notebook's tables have rows (`PlanRow`: a model variant on one dataset and split); each
row has seeds (`seeds_for`), and each (row, seed) is one `PlannedRun` with its RunConfig and run folder.
`planned_runs(ctx, notebook)` lists them for notebooks 'train', 'ablation' and 'sota' (Grad-CAM reuses runs
of the comparison: GRADCAM_MODELS are among SOTA_MODELS). Which models and datasets are covered is fixed
here (ABLATION, QUIRKS, SOTA_MODELS, CHEST) and limited per profile (PROFILE_LIMITS, SPLIT_TABLE_LIMIT,
MAX_BOXES, QUIRKS_BY_DEFAULT) so that the demo profile fits its time budget; run sizes themselves are the
profiles of engine.config.

A run's folder name carries the first 10 hex digits of its config hash, so the ablation's "full" row and the
comparison's CTransCNN row (same model, data, seed and profile) are one run. A finished run is reused when
its manifest's config hash and dataset hash equal the current ones; an unfinished one is resumed; a finished
one whose data changed (e.g. regenerated phantoms) is moved aside to `<name>.stale` and retrained.

    python -m ctranscnn.report.plan phantom-args PROFILE    # "NAME N SIZE" per line: the profile's phantoms
"""
from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import yaml

from ctranscnn.data.splits import PATIENT_FRACTIONS
from ctranscnn.engine.config import PHANTOM_DATA, RunConfig, config_hash, load_config, resolve_model_name
from ctranscnn.engine.rundir import FINISHED, RunDir
from ctranscnn.engine.slots import Slot, map_pinned, worker_slots
from ctranscnn.report.context import DatasetSource, NotebookContext

CTRANSCNN = "ctranscnn_tiny"  # the profile's model.size turns it into the mini/micro variant
# The ablation (paper's modules switched off one at a time, then all = Conformer).
ABLATION = {
    "CTransCNN (full)": (CTRANSCNN, {}),
    "w/o MMAEF": (CTRANSCNN, {"mmaef": False}),
    "w/o MBR": (CTRANSCNN, {"mbr": False}),
    "w/o IIM": (CTRANSCNN, {"iim": False}),
    "Conformer (all off)": ("conformer_tiny", {}),
}


class Quirk(NamedTuple):
    """A row of the quirks study: the full model with some of the authors' code quirks fixed."""

    fixed: str  # what is fixed, for the table
    overrides: dict[str, Any]  # CTransCNNConfig switches of the runs the row trains ({}: the full model's runs)
    fusion_weight: float | None  # the test score's CNN weight (None: the runs' own, the authors' 0.9)


# The quirks study (notebook 03, after the ablation): each quirk fixed alone, then all together. fusion_weight only
# changes the test-time score, so its rows rescore the branch logits of trained runs (no run of their own). The
# unused `fc` (keep_unused_fc) changes no output, and a jointly trained fused head is not a switch (README).
QUIRKS = {
    "CTransCNN (full)": Quirk("nothing: the authors' code", {}, None),
    "attention=softmax": Quirk("MMAEF attention is softmax(QK^T / sqrt(d)), not softmax(sigmoid(...))",
                               {"attention": "softmax"}, None),
    "double_bn2=false": Quirk("MBR applies bn2 once, not twice", {"double_bn2": False}, None),
    "fusion_weight=0.5": Quirk("the test score weighs both branches equally, not 0.9 CNN / 0.1 transformer", {},
                               0.5),
    "all fixed": Quirk("all three", {"attention": "softmax", "double_bn2": False}, 0.5),
}
# Whether notebook 03 runs the quirks study when QUIRKS is unset: the demo's 30 minutes cannot hold its extra
# runs (QUIRKS=1 opts in); smoke covers it in CI at minimal sizes; the paper profile is where the answer matters.
QUIRKS_BY_DEFAULT = {"smoke": True, "demo": False, "paper": True}
# The paper's comparison (spec §6.1), paper-size names; profiles pick the size.
SOTA_MODELS = ["resnet34", "resnet50", "resnext50", "seresnet50", "vit", "swin", "conformer_tiny", "convnext",
               "repvgg", "deit", CTRANSCNN]
# Seeds: the rows the claims rest on (is_claim_row: these models on the ablation's and the split table's
# datasets) get every seed; in these CPU profiles the other rows get one, which is what fits the demo's budget
# (results/runtime/demo_run.md). reproduce.sh's default SEEDS: "0 1 2" (demo, paper), "0 1" (smoke).
DEFAULT_SEEDS = {"smoke": (0, 1), "demo": (0, 1, 2), "paper": (0, 1, 2)}
CLAIM_MODELS = (CTRANSCNN, "conformer_tiny")
ONE_SEED_ELSEWHERE = {"smoke": True, "demo": True, "paper": False}
GRADCAM_MODELS = [CTRANSCNN, "resnet50", "vit"]  # the paper's figure shows at least these three
CHEST = ("nih", "ranzcr", "chestmnist", "cxr14-phantom", "cxr11-phantom")  # the paper compares models on these
# How many chest datasets the ablation and the comparison cover per profile (None: all).
PROFILE_LIMITS = {"smoke": {"ablation": 1, "sota": 1}, "demo": {"ablation": 1, "sota": 1},
                  "paper": {"ablation": None, "sota": None}}
# The split table (leaky image-level split against the patient split): chest datasets covered per profile.
SPLIT_TABLE_LIMIT = {"smoke": 1, "demo": 1, "paper": None}
MAX_BOXES = {"smoke": 16, "demo": 200, "paper": None}  # Grad-CAM localisation scoring cost on CPU
CHECKPOINT = "best"  # tables report the best-validation-mAUC checkpoint; `last` is in metrics.json too
CHECKPOINT_NOTE = "checkpoint: best validation mean AUC (the last-epoch numbers are in each run's metrics.json)"
NOTEBOOKS = ("train", "ablation", "sota")  # the notebooks that train (05 'gradcam' plans a subset of 'sota')
# The paper profile's runs start from the authors' recipe per dataset kind, as written in configs/.
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
PAPER_CONFIGS = {"nih": "paper_nih.yaml", "ranzcr": "paper_ranzcr.yaml", "list": "paper_tcmtd.yaml"}


# ---------------------------------------------------------------- which datasets


def chest_datasets(ctx: NotebookContext, notebook: str, quiet: bool = False) -> list[DatasetSource]:
    """The chest datasets `notebook` ('ablation' | 'sota') covers in this profile; the others are skipped
    (recorded with ctx.skip unless `quiet`)."""
    chest = [d for d in ctx.datasets if d.name in CHEST]
    limit = PROFILE_LIMITS[ctx.profile][notebook]
    for d in chest[limit:] if limit is not None and not quiet else []:
        ctx.skip(f"{notebook} on {d.name}", f"profile {ctx.profile} runs the {notebook} on {limit} dataset(s) only")
    for d in ctx.datasets if not quiet else []:
        if d.name not in CHEST:
            ctx.skip(f"{notebook} on {d.name}", "the paper's ablation and comparison use the chest datasets")
    return chest[:limit] if limit is not None else chest


def split_datasets(ctx: NotebookContext, quiet: bool = False) -> list[DatasetSource]:
    """The chest datasets the split table covers in this profile (the others are skipped, with the reason,
    unless `quiet`)."""
    able = [d for d in ctx.datasets if d.name in CHEST and "patient" in d.splits_available()]
    for d in ctx.datasets if not quiet else []:
        if d not in able:
            ctx.skip(f"split table for {d.name}", f"{d.label} has no patient ids, so no leak-free split to compare")
    limit = SPLIT_TABLE_LIMIT[ctx.profile]
    for d in able[limit:] if limit is not None and not quiet else []:
        ctx.skip(f"split table for {d.name}", f"profile {ctx.profile} runs the split table on {limit} dataset(s) only")
    return able[:limit] if limit is not None else able


def leaky_split(ds: DatasetSource) -> str:
    """The split table's leaky split: the authors' lists where given, else our image-level split."""
    return "paper" if "paper" in ds.splits_available() else "image"


def split_settings(split: str) -> dict[str, Any]:
    """Our image-level split takes the patient split's shares, so the two test sets differ only in leakage
    (at the authors' 90/7/3 a demo test set would hold 72 images)."""
    return {"data.fractions": list(PATIENT_FRACTIONS)} if split == "image" else {}


# ---------------------------------------------------------------- rows, seeds, runs


@dataclass(frozen=True)
class PlanRow:
    """One row of a notebook's table: a model (variant) on one dataset and split, over `seeds_for` seeds."""

    dataset: DatasetSource
    model: str
    split: str
    overrides: Mapping[str, Any] = field(default_factory=dict)  # model factory keywords, e.g. {mmaef: False}


@dataclass(frozen=True)
class PlannedRun:
    """One training run of the plan: which notebook row it serves, its seed, config and run folder."""

    notebook: str  # train | ablation | sota
    label: str  # the row's name in its table ("CTransCNN (full)", "resnet50", "split table: image", ...)
    dataset: str  # DatasetSource.name
    model: str  # as planned (paper-size name; config.model.size picks the profile's size)
    overrides: Mapping[str, Any]
    split: str
    seed: int
    config: RunConfig
    run_dir: Path


def plan_row(ctx: NotebookContext, ds: DatasetSource, model: str = CTRANSCNN, split: str | None = None,
             overrides: Mapping[str, Any] | None = None) -> PlanRow:
    """The row of `model` on `ds`; `split` defaults to the context's split for `ds` (recording any fallback)."""
    return PlanRow(ds, model, split or ctx.split_for(ds), dict(overrides or {}))


def is_claim_row(ctx: NotebookContext, row: PlanRow) -> bool:
    """Whether `row` is one the claims rest on: CTransCNN (any ablation variant or split) or Conformer on a
    dataset of the ablation or of the split table."""
    claim_sets = {d.name for d in chest_datasets(ctx, "ablation", quiet=True) + split_datasets(ctx, quiet=True)}
    return row.model in CLAIM_MODELS and row.dataset.name in claim_sets


def seeds_for(ctx: NotebookContext, row: PlanRow) -> list[int]:
    """The seeds of `row`: the context's seeds (SEEDS) for the claim rows (is_claim_row), and in the profiles of
    ONE_SEED_ELSEWHERE only the first of them for every other row (baselines, the other datasets' main rows).
    It depends on the row only (not on the notebook), since notebooks share runs."""
    if ONE_SEED_ELSEWHERE[ctx.profile] and not is_claim_row(ctx, row):
        return list(ctx.seeds[:1])
    return list(ctx.seeds)


def run_config(ctx: NotebookContext, ds: DatasetSource, model: str, seed: int, split: str,
               overrides: Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None) -> RunConfig:
    """The engine config of one run: the profile's sizes, this dataset, model overrides (e.g. mmaef=False) and
    `extra` engine settings (e.g. data.fractions)."""
    sets: dict[str, Any] = {
        "profile": ctx.profile, "model.name": model, "data.dataset": ds.kind, "data.root": str(ds.root),
        "data.lists": str(ds.lists or ""), "data.split": split, "train.seed": seed, "train.device": ctx.device,
        "train.out_dir": str(ctx.runs_dir), "train.progress": False, **(extra or {}),
    }
    if ds.missing != "error":
        sets["data.missing"] = ds.missing
    if ds.image_size is not None:  # ChestMNIST runs at its file's size (28 px up to 32, the smallest our models take)
        sets["data.image_size"] = max(ds.image_size, 32)
    base = paper_config(ds) if ctx.profile == "paper" else None
    if base is not None and model != paper_model(base):
        sets["model.overrides"] = {}  # the file's model keywords (e.g. drop_path_rate) are its model's, not theirs
    if ctx.dry_run:
        from ctranscnn.report.dryrun import DRY_OVERLAY

        sets |= DRY_OVERLAY  # a handful of steps of the paper profile's runs (DRY_RUN=1)
    sets |= {f"model.overrides.{k}": v for k, v in (overrides or {}).items()}
    cfg = load_config(base, sets)
    variant = "".join(f"-{k}={v}" for k, v in sorted((overrides or {}).items()))  # readable; the hash decides
    cfg.train.run_name = (f"{ds.name}_{resolve_model_name(cfg.model)}{variant}_{split}_{ctx.profile}_s{seed}_"
                          f"{config_hash(cfg)[:10]}")
    return cfg


def paper_config(ds: DatasetSource) -> Path | None:
    """configs/paper_<dataset>.yaml, the authors' recipe as a file, that the paper profile's runs of `ds` start
    from (None for sources the paper did not use, e.g. ChestMNIST)."""
    name = PAPER_CONFIGS.get(ds.kind)
    return None if name is None else CONFIG_DIR / name


def paper_model(path: Path) -> str:
    """The model a paper config names (its other rows train the plan's models on the same recipe)."""
    return str(((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("model") or {}).get("name", ""))


def row_configs(ctx: NotebookContext, row: PlanRow) -> list[RunConfig]:
    """One run config per seed of `row`."""
    return [run_config(ctx, row.dataset, row.model, seed, row.split, row.overrides, split_settings(row.split))
            for seed in seeds_for(ctx, row)]


def notebook_rows(ctx: NotebookContext, notebook: str) -> list[tuple[str, PlanRow]]:
    """(label, row) of every table row notebook 'train' | 'ablation' | 'sota' trains (or 'gradcam' reads), in the
    order its sections ask for them."""
    if notebook == "train":
        rows = [("main", plan_row(ctx, ds)) for ds in ctx.datasets]
        rows += [(f"split table: {split}", plan_row(ctx, ds, split=split))
                 for ds in split_datasets(ctx) for split in (leaky_split(ds), "patient")]
    elif notebook == "ablation":
        chest = chest_datasets(ctx, "ablation")
        rows = [(label, plan_row(ctx, ds, m, overrides=ov)) for ds in chest for label, (m, ov) in ABLATION.items()]
        if quirks_on(ctx):  # the quirks study's runs (its full row and fusion_weight rows reuse runs listed here)
            rows += [(f"quirks: {label}", plan_row(ctx, ds, CTRANSCNN, overrides=q.overrides))
                     for ds in chest for label, q in QUIRKS.items()]
    elif notebook == "sota":
        rows = [(m, plan_row(ctx, ds, m)) for ds in chest_datasets(ctx, "sota") for m in SOTA_MODELS]
    elif notebook == "gradcam":  # reads the first seed's runs of notebook 04 (GRADCAM_MODELS are among them)
        rows = [(m, plan_row(ctx, ds, m)) for ds in chest_datasets(ctx, "sota") for m in GRADCAM_MODELS]
    else:
        raise ValueError(f"notebook must be one of {(*NOTEBOOKS, 'gradcam')}, got {notebook!r}")
    return rows


def quirks_on(ctx: NotebookContext) -> bool:
    """Whether notebook 03 runs the quirks study: QUIRKS=1 / QUIRKS=0 (ctx.quirks) or the profile's default."""
    quirks = getattr(ctx, "quirks", None)
    return QUIRKS_BY_DEFAULT[ctx.profile] if quirks is None else bool(quirks)


def planned_runs(ctx: NotebookContext, notebook: str) -> list[PlannedRun]:
    """Every run notebook 'train' | 'ablation' | 'sota' | 'gradcam' uses, row by row, seed by seed (Grad-CAM: the
    first seed only)."""
    seeds = slice(1) if notebook == "gradcam" else slice(None)
    return [PlannedRun(notebook, label, row.dataset.name, row.model, row.overrides, row.split, cfg.train.seed, cfg,
                       RunDir.for_config(cfg).path)
            for label, row in notebook_rows(ctx, notebook) for cfg in row_configs(ctx, row)[seeds]]


# ---------------------------------------------------------------- training what is missing


STALE = ("config changed", "data changed")  # run_state's states of a folder made with other settings


def run_state(cfg: RunConfig) -> str:
    """What `ensure_run` does with `cfg`'s run folder: 'finished' (reused), 'started' (resumed: a manifest not yet
    finished, or only the config.yaml a killed start or `plan --json` left), 'new' (trained from the start), or
    one of STALE (its manifest is of other settings: set aside, retrained). The data's hash is read only for a
    folder whose config matches (once per data setting: it lists every split of the dataset)."""
    from ctranscnn.engine.setup import dataset_hash, split_hashes

    run = RunDir.for_config(cfg)
    if not run.manifest_file.exists():
        return "started" if run.config_file.exists() else "new"
    manifest = run.manifest
    if manifest.get("config_hash") != config_hash(cfg):
        return "config changed"
    if manifest.get("dataset", {}).get("hash") != dataset_hash(split_hashes(cfg)):
        return "data changed"
    return "finished" if manifest.get("status") == FINISHED else "started"


def set_aside(run_dir: Path, why: str) -> Path:
    """Move a run folder made with other settings to `<name>.stale` (replacing an older one), so the run trains
    afresh in its place and nothing of the old one is lost or mixed in."""
    run_dir = Path(run_dir)
    stale = run_dir.with_name(run_dir.name + ".stale")
    print(f"{run_dir}: {why}; moving it to {stale} and retraining")
    shutil.rmtree(stale, ignore_errors=True)
    run_dir.rename(stale)
    return stale


def ensure_run(cfg: RunConfig) -> Path:
    """Folder of a finished run of `cfg`: reused if its config and data are unchanged, else (re)trained."""
    from ctranscnn.engine.slots import launch

    run = RunDir.for_config(cfg)
    state = run_state(cfg)
    if state == "finished":
        print(f"reusing {run.path}")
        return run.path
    if state == "started":
        print(f"resuming {run.path}")
        launch(run.path, overrides={"train.progress": False, "data.root": cfg.data.root, "data.lists": cfg.data.lists})
        return run.path
    if state in STALE:
        set_aside(run.path, state)
    print(f"training {run.path}")
    launch(run.path, cfg)
    return run.path


def parallel_jobs(cfg: RunConfig) -> int:
    """How many runs to train at once: one per worker slot (engine.slots.worker_slots): on N visible GPUs N runs,
    one per GPU (RUN_GPUS=k: N // k DDP runs; all: one); on CPU with a fixed thread count per run, one run per
    group of cores (a run's numbers do not depend on what trains beside it); otherwise one at a time."""
    return len(worker_slots(cfg))


def ensure_run_labelled(cfg: RunConfig) -> Path:
    """`ensure_run` with every line it prints behind the run's label (runs train side by side in worker processes,
    whose lines would interleave), and a one-line summary when it trained or resumed the run."""
    from ctranscnn.report.progress import labelled_output, run_label, run_summary

    manifest = RunDir.for_config(cfg).manifest_file
    before = manifest.stat().st_mtime_ns if manifest.exists() else None
    with labelled_output(run_label(cfg)):
        path = ensure_run(cfg)
        if before is None or (path / manifest.name).stat().st_mtime_ns != before:
            print(run_summary(path))
    return path


def ensure_runs(cfgs: list[RunConfig], jobs: int | None = None, slots: list[Slot] | None = None) -> list[Path]:
    """`ensure_run` for every config, side by side in worker processes pinned to `slots` (default: worker_slots of
    the first config; tests pass faked GPUs), at most `jobs` at once (CPU: `jobs` workers)."""
    unique = list({cfg.train.run_name: cfg for cfg in cfgs}.values())  # one worker per run folder
    if not unique:
        return []
    slots = worker_slots(unique[0]) if slots is None else slots
    if jobs is not None:
        slots = [Slot("cpu")] * jobs if all(s.mode == "cpu" for s in slots) else slots[:jobs]
    done = dict(zip((cfg.train.run_name for cfg in unique), map_pinned(ensure_run_labelled, unique, slots)))
    return [done[cfg.train.run_name] for cfg in cfgs]


def train_runs(ctx: NotebookContext, ds: DatasetSource, model: str = CTRANSCNN, split: str | None = None,
               overrides: Mapping[str, Any] | None = None) -> list[RunDir]:
    """One finished run per seed of the row (trained now or reused)."""
    return [RunDir(path) for path in ensure_runs(row_configs(ctx, plan_row(ctx, ds, model, split, overrides)))]


def prefetch_runs(ctx: NotebookContext, notebook: str) -> None:
    """Train (or reuse) all of a notebook's runs first, side by side where the profile allows (see
    parallel_jobs); the sections then read the finished runs."""
    ensure_runs([p.config for p in planned_runs(ctx, notebook)])


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ctranscnn.report.plan", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("phantom-args", help="'NAME N SIZE [FLAGS]' per line: the profile's phantom data").add_argument(
        "profile", choices=tuple(PHANTOM_DATA))
    args = p.parse_args(argv)
    for name, (n, size, flags) in PHANTOM_DATA[args.profile].items():
        print(name, n, size, flags)
    return 0


if __name__ == "__main__":
    sys.exit(main())
