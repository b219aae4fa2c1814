"""The work of each notebook, one function per (notebook, dataset): compute, write tables and figures, and
return them for display. Notebooks stay thin: parameters, a loop over datasets, and display.

Which runs each notebook needs (models, datasets, per-profile limits) is the plan's (report.plan); the sections
read the finished runs through engine.rundir.RunDir.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from ctranscnn.data.splits import PATIENT_FRACTIONS  # noqa: F401 (notebooks and tests read it here)
from ctranscnn.engine.rundir import FINISHED, RunDir, run_dirs
from ctranscnn.metrics import METRIC_COLUMNS
from ctranscnn.report import claims as C
from ctranscnn.report import datastats
from ctranscnn.report import figures as F
from ctranscnn.report.compare import RunComparer, difference_frame
from ctranscnn.report.context import DatasetSource, NotebookContext
from ctranscnn.report.dryrun import DRY_MAX_BOXES
from ctranscnn.report.paper import MEDMNIST_PLUS_PROTOCOL, MEDMNIST_PLUS_SOURCE, comparison_notes, comparison_table
# The notebooks call the plan's dataset choices and prefetch as sections.*; the sections use the rest.
from ctranscnn.report.plan import (ABLATION, CHECKPOINT, CHECKPOINT_NOTE, CTRANSCNN, GRADCAM_MODELS,  # noqa: F401
                                   MAX_BOXES, QUIRKS, SOTA_MODELS, chest_datasets, leaky_split, plan_row,
                                   planned_runs, prefetch_runs, quirks_on, row_configs, split_datasets,
                                   split_settings, train_runs)
from ctranscnn.report.tables import fmt_ci, fmt_mean_sd, summarise_seeds


# ---------------------------------------------------------------- 01 data


def data_section(ctx: NotebookContext, ds: DatasetSource, n_samples: int = 16) -> dict[str, Any]:
    """Split sizes and patients, prevalence, label cardinality, co-occurrence, leakage, sample grid."""
    from ctranscnn.data.splits import leakage_report, load_splits

    split = ctx.split_for(ds)
    splits = load_splits(ds.kind, ds.root, split, ds.lists, missing=ds.missing)
    prov = ctx.provenance(ds, split)
    out: dict[str, Any] = {
        "summary": datastats.split_summary(splits), "prevalence": datastats.prevalence(splits),
        "cardinality": datastats.cardinality(splits), "leakage": datastats.leakage_table(leakage_report(splits)),
    }
    captions = {"summary": "Images, patients and labels per split", "prevalence": "Positive images per class",
                "cardinality": "Images by number of labels", "leakage": "Patients shared between splits"}
    for key, caption in captions.items():
        ctx.table(out[key], f"{key}_{ds.name}", prov, caption=f"{caption}: {ds.label}, split {split}")
    classes = next(iter(splits.values())).classes
    if any(s.dropped for s in splits.values()):
        out["missing"] = pd.DataFrame({"class": ["all images", *classes]} | {
            name: [s.dropped["images"], *(s.dropped["per_class"][c] for c in classes)] for name, s in splits.items()})
        gone = sum(s.dropped["images"] for s in splits.values())
        ctx.fallback(f"{ds.name}: images missing", f"data.missing=skip left out {gone:,} listed images whose files "
                     f"are missing (table 01_missing_{ds.name})")
        ctx.table(out["missing"], f"missing_{ds.name}", prov, caption=f"Listed images left out because their files "
                  f"are missing (data.missing=skip), per split; rows: all, then positives per class: {ds.label}")
    labels = np.concatenate([s.labels for s in splits.values()])
    pct = out["prevalence"].set_index("class")[[f"{s} %" for s in splits]]
    out["fig_prevalence"] = F.plot_prevalence(pct.rename(columns=lambda c: c[:-2]), title=f"{ds.name}: prevalence")
    out["fig_cooccurrence"] = F.plot_cooccurrence(labels, classes, title=f"{ds.name}: P(column | row)",
                                                  conditional=True)
    out["fig_samples"] = _sample_grid(splits["train"], n_samples)
    for key in ("prevalence", "cooccurrence", "samples"):
        ctx.figure(out[f"fig_{key}"], f"{key}_{ds.name}")
    return out


def _sample_grid(s, n: int):
    """One image per class (one with a box of that class where there is one), then one with no finding, up to `n`;
    each titled with the class it shows and all its labels."""
    boxed = {} if s.boxes is None else s.boxes.groupby("image_id")["label"].agg(set).to_dict()
    order, shown = [], []
    for c, name in enumerate(s.classes):
        have = [i for i in np.flatnonzero(s.labels[:, c] > 0) if i not in order]
        if have:
            order.append(next((i for i in have if name in boxed.get(s.image_ids[i], ())), have[0]))
            shown.append(name)
    empty = np.flatnonzero(s.labels.sum(axis=1) == 0)
    order, shown = (order + [int(empty[0])], shown + ["no finding"]) if empty.size else (order, shown)
    order, shown = order[:n], shown[:n]
    titles = [f"{name}\nlabels: " + (", ".join(np.asarray(s.classes)[s.labels[i] > 0]) or "none")
              for name, i in zip(shown, order)]
    boxes = [[] if s.boxes is None else
             [(b.x, b.y, b.w, b.h, b.label) for b in s.boxes[s.boxes["image_id"] == s.image_ids[i]].itertuples()]
             for i in order]
    return F.plot_sample_grid([s.paths[i] if s.pixels is None else s.pixels[i] for i in order], titles, boxes)


# ---------------------------------------------------------------- 02 train


def _runs_frame(runs: list[RunDir], which: str = CHECKPOINT) -> pd.DataFrame:
    return pd.DataFrame([r.summary_row(which) for r in runs])


def train_section(ctx: NotebookContext, ds: DatasetSource) -> dict[str, Any]:
    """CTransCNN on `ds`: main metrics (mean ± sd over seeds, CI per run), per-class AUC, curves, ROC."""
    split = ctx.split_for(ds)
    runs = train_runs(ctx, ds, split=split)
    prov = ctx.provenance(ds, split, notes=[CHECKPOINT_NOTE, "CI: bootstrap 95% over test images"])
    per_run = pd.concat([_runs_frame(runs, "best"), _runs_frame(runs, "last")], ignore_index=True)
    per_run_display = per_run.assign(mAUC=[fmt_ci(v, lo, hi) for v, lo, hi in
                                           per_run[["mAUC", "mAUC_ci_lo", "mAUC_ci_hi"]].to_numpy()])
    ctx.table(per_run, f"runs_{ds.name}", prov, display=per_run_display.drop(columns=["mAUC_ci_lo", "mAUC_ci_hi"]),
              caption=f"CTransCNN test metrics (%) per run and checkpoint, mean AUC with 95% CI: {ds.label}")
    numeric, display = summarise_seeds(per_run, ["model", "checkpoint"], list(METRIC_COLUMNS))
    ctx.table(numeric, f"main_results_{ds.name}", prov, display=display,
              caption=f"CTransCNN test metrics (%), mean ± sd over {len(runs)} seed(s): {ds.label}")
    per_class = pd.DataFrame({r.seed: r.per_class_auc() for r in runs})
    pc_numeric = pd.DataFrame({"class": per_class.index, "AUC": per_class.mean(axis=1).to_numpy(),
                               "AUC_sd": per_class.std(axis=1, ddof=1).to_numpy()})
    pc_display = pd.DataFrame({"class": per_class.index,
                               "AUC": [fmt_mean_sd(row) for row in per_class.to_numpy()]})
    ctx.table(pc_numeric, f"per_class_auc_{ds.name}", prov, display=pc_display,
              caption=f"CTransCNN per-class test AUC (%): {ds.label}")
    y_true, y_prob = runs[0].predictions()
    out = {"main": display, "per_class": pc_display,
           "fig_curves": F.plot_training_curves({f"seed {r.seed}": r.history for r in runs},
                                                ["train_loss", "val_mAUC", "lr"],
                                                title=f"CTransCNN on {ds.name}, profile {ctx.profile}"),
           "fig_roc": F.plot_roc_by_class(y_true, y_prob, runs[0].classes, title=f"CTransCNN on {ds.name}, "
                                          f"profile {ctx.profile}, seed {runs[0].seed}")}
    ctx.figure(out["fig_curves"], f"training_curves_{ds.name}")
    ctx.figure(out["fig_roc"], f"roc_{ds.name}")
    return out



# The split table: a leaky image-level split (the authors' lists where given, else our image split) against the
# leak-free patient split, on the first chest datasets that have both (report.plan.split_datasets).
SPLIT_LABELS = {"paper": "paper: the authors' lists (image-level)", "image": "image-level, like the authors' protocol",
                "patient": "patient-level (leak-free)"}


def leak_share(splits: dict) -> tuple[int, float]:
    """Test patients who also have training images, and the share (%) of test images that belong to them."""
    train = set(splits["train"].patient_ids or ())
    test = splits["test"].patient_ids or ()
    in_train = [p in train for p in test]
    return len(set(test) & train), 100.0 * float(np.mean(in_train)) if in_train else float("nan")


def split_table(runs: dict[str, list[RunDir]], leaks: dict[str, tuple[int, float]],
                comparer: RunComparer) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(numeric, display) of the split table: one row per split (mean ± sd over seeds), the leak it has, and the
    difference in mAUC and mAP to the patient-level row with its 95% CI (the two test sets are different images:
    resampled independently)."""
    rows = [r.summary_row() | {"split": SPLIT_LABELS[split], "test patients in train": leaks[split][0],
                               "test images of train patients (%)": leaks[split][1]}
            for split, rs in runs.items() for r in rs]
    by = ["model", "split", "test patients in train", "test images of train patients (%)"]
    numeric, display = summarise_seeds(pd.DataFrame(rows), by, list(METRIC_COLUMNS))
    groups = {SPLIT_LABELS[split]: rs for split, rs in runs.items()}
    diff_numeric, diff_display = difference_frame(groups, SPLIT_LABELS["patient"], comparer, "minus patient-level")
    numeric, display = numeric.join(diff_numeric, on="split"), display.join(diff_display, on="split")
    display["test images of train patients (%)"] = [f"{v:.1f}" for v in numeric["test images of train patients (%)"]]
    return numeric, display


def split_section(ctx: NotebookContext, ds: DatasetSource) -> dict[str, Any] | None:
    """The same model under a leaky image-level split and the leak-free patient split: what leakage does."""
    from ctranscnn.data.splits import LeakageWarning
    from ctranscnn.engine.setup import load_data

    have = ds.splits_available()
    if "patient" not in have:
        ctx.skip(f"split table for {ds.name}", f"{ds.label} has no patient ids, so no leak-free split to compare")
        return None
    leaky = leaky_split(ds)
    runs, leaks = {}, {}
    for split in (leaky, "patient"):
        runs[split] = train_runs(ctx, ds, split=split)
        with warnings.catch_warnings():  # the leak is the point here, and is reported in the table
            warnings.simplefilter("ignore", LeakageWarning)
            leaks[split] = leak_share(load_data(row_configs(ctx, plan_row(ctx, ds, split=split))[0]))
    comparer = RunComparer()
    numeric, display = split_table(runs, leaks, comparer)
    shares = "the authors' lists" if leaky == "paper" else "image-level, at the patient split's shares"
    prov = ctx.provenance(ds, f"{leaky} vs patient", notes=[CHECKPOINT_NOTE, f"{leaky} split: {shares}; patient "
                          f"split: 70/10/20; profile {ctx.profile}'s data.limit_* caps (0: none) apply to both",
                          "differences: each split minus the patient-level split (different test images: "
                          "resampled independently)", comparer.note()])
    ctx.table(numeric, f"split_effect_{ds.name}", prov, display=display,
              caption=f"What patient leakage does: CTransCNN test metrics (%) under a leaky image-level split and "
                      f"a patient-level split: {ds.label}")
    return {"split_effect": display}


# ---------------------------------------------------------------- 03 ablation


def ablation_section(ctx: NotebookContext, ds: DatasetSource) -> dict[str, Any]:
    """Full model, each module switched off, all off (= Conformer): table and bar chart."""
    split = ctx.split_for(ds)
    runs = {variant: train_runs(ctx, ds, model, split, overrides) for variant, (model, overrides) in ABLATION.items()}
    rows = [r.summary_row() | {"variant": variant} for variant, rs in runs.items() for r in rs]
    numeric, display = summarise_seeds(pd.DataFrame(rows), ["variant", "model"], list(METRIC_COLUMNS))
    comparer = RunComparer()
    diff_numeric, diff_display = difference_frame(runs, C.FULL, comparer, "minus full")
    numeric, display = numeric.join(diff_numeric, on="variant"), display.join(diff_display, on="variant")
    prov = ctx.provenance(ds, split, notes=[CHECKPOINT_NOTE, "differences: each variant minus the full model, paired "
                                            "on the same test images", comparer.note()])
    ctx.table(numeric, f"ablation_{ds.name}", prov, display=display,
              caption=f"Ablation of MMAEF, MBR and IIM: test metrics (%): {ds.label}")
    fig = F.plot_bars(numeric, "variant", "mAUC", yerr="mAUC_sd", ylabel="test mean AUC (%)",
                      title=f"Ablation on {ds.name}, profile {ctx.profile}",
                      reference=float(numeric["mAUC"].iloc[0]), reference_label="full model")
    ctx.figure(fig, f"ablation_{ds.name}")
    return {"ablation": display, "fig_ablation": fig}


def quirks_section(ctx: NotebookContext, ds: DatasetSource) -> dict[str, Any] | None:
    """What the authors' code quirks cost (report.quirks): the full model with each quirk fixed alone and all
    together, each minus the full model with its CI and verdict; table and forest plot. Skipped (with the reason)
    where the profile leaves the study out (demo without QUIRKS=1)."""
    from ctranscnn.report import quirks as Q

    if not quirks_on(ctx):
        ctx.skip(f"quirks study on {ds.name}", f"profile {ctx.profile} runs it only with QUIRKS=1 (it trains "
                 f"{sum(bool(q.overrides) for q in QUIRKS.values())} more runs per seed)")
        return None
    split = ctx.split_for(ds)
    trained = {label: train_runs(ctx, ds, CTRANSCNN, split, q.overrides) for label, q in QUIRKS.items()}
    comparer = RunComparer()
    numeric, display = Q.quirks_table(Q.scored_runs(trained, QUIRKS), QUIRKS, comparer, C.FULL)
    prov = ctx.provenance(ds, split, notes=[CHECKPOINT_NOTE, *Q.quirks_notes(comparer)])
    ctx.table(numeric, f"quirks_{ds.name}", prov, display=display,
              caption=f"What the authors' code quirks cost: the full model with each fixed, test metrics (%) and "
                      f"differences to the full model: {ds.label}")
    fig = F.plot_differences(numeric, "quirk", Q.DIFF, title=f"Quirk fixed minus full model (95% CI)\n"
                             f"{ds.name}, profile {ctx.profile}")
    ctx.figure(fig, f"quirks_{ds.name}")
    return {"quirks": display, "fig_quirks": fig}


def conventions_section(ctx: NotebookContext, ds: DatasetSource) -> dict[str, Any]:
    """The metrics quirk alone: the full model's test predictions scored under both single-class policies and
    three tie rules for AP (report.quirks.conventions_table); no retraining."""
    from ctranscnn.report import quirks as Q

    split = ctx.split_for(ds)
    runs = train_runs(ctx, ds, split=split)  # the ablation's full row: finished by then
    used = runs[0].manifest["config"]["eval"]["single_class"]
    numeric, display = Q.conventions_table([r.predictions() for r in runs], used)
    ctx.table(numeric, f"metric_conventions_{ds.name}", ctx.provenance(ds, split, notes=[
              CHECKPOINT_NOTE, *Q.conventions_notes(len(runs), used)]), display=display,
              caption=f"The evaluation convention alone: CTransCNN's test predictions scored under the authors' "
                      f"and our conventions (%): {ds.label}")
    return {"metric_conventions": display}


# ---------------------------------------------------------------- 04 comparison


def sota_section(ctx: NotebookContext, ds: DatasetSource) -> dict[str, Any]:
    """The ten baselines and CTransCNN: metrics, comparison with the paper, radar, ROC, complexity."""
    split = ctx.split_for(ds)
    runs = {m: train_runs(ctx, ds, m, split) for m in SOTA_MODELS}
    rows = [r.summary_row() for rs in runs.values() for r in rs]
    numeric, display = summarise_seeds(pd.DataFrame(rows), ["model"], ["mAUC", "mAP", "CF1", "OF1"])
    comparer = RunComparer()
    by_name = {rs[0].model_name: rs for rs in runs.values()}
    diff_numeric, diff_display = difference_frame(by_name, runs[CTRANSCNN][0].model_name, comparer, "minus CTransCNN")
    numeric, display = numeric.join(diff_numeric, on="model"), display.join(diff_display, on="model")
    prov = ctx.provenance(ds, split, notes=[CHECKPOINT_NOTE])
    models_prov = ctx.provenance(ds, split, notes=[CHECKPOINT_NOTE, "differences: each model minus CTransCNN, paired "
                                                   "on the same test images", comparer.note()])
    ctx.table(numeric, f"models_{ds.name}", models_prov, display=display,
              caption=f"Test mean AUC, mAP, CF1, OF1 (%) of every model: {ds.label}")

    per_class = pd.DataFrame({rs[0].model_name: pd.concat([r.per_class_auc() for r in rs], axis=1).mean(axis=1)
                              for rs in runs.values()}).T
    ctx.table(per_class.round(6).reset_index(names="model"), f"per_class_auc_{ds.name}", prov,
              caption=f"Per-class test AUC (%), mean over seeds: {ds.label}")

    out: dict[str, Any] = {"models": display}
    if ds.paper_key:
        ours = numeric[["model", "mAUC", "mAUC_sd", "n_runs"]]
        medmnist = ds.image_size if ds.kind == "chestmnist" else None
        cmp_numeric, cmp_display = comparison_table(ours, ds.paper_key, ds.label, medmnist_size=medmnist)
        # beside each method, this run's paired mean-AUC difference to CTransCNN (the models table has mAP's too)
        cmp_numeric = cmp_numeric.join(diff_numeric[[c for c in diff_numeric if c.startswith("mAUC")]], on="model")
        cmp_display = cmp_display.join(diff_display[["mAUC minus CTransCNN [95% CI]", "CI excludes 0 (mAUC, mAP)",
                                                     "seeds"]], on="our model").fillna("-")
        ctx.table(cmp_numeric, f"comparison_{ds.name}", ctx.provenance(ds, split, notes=comparison_notes(ds.label)
                  + ([f"MedMNIST+ numbers: {MEDMNIST_PLUS_SOURCE}, full ChestMNIST training set; {MEDMNIST_PLUS_PROTOCOL}"] if medmnist else [])
                  + [CHECKPOINT_NOTE, comparer.note()]), display=cmp_display,
                  caption=f"Mean AUC (%): the paper's published numbers beside this run ({ds.label})")
        out["comparison"] = cmp_display
    else:
        ctx.skip(f"paper comparison on {ds.name}", "the paper published no per-method numbers for this dataset")

    cx = complexity_table(runs)
    ctx.table(cx, f"complexity_{ds.name}", prov, caption=f"Parameters, GFLOPs and token grid at the run's image size, training throughput: {ds.label}")
    out["complexity"] = cx
    out["fig_radar"] = F.plot_radar(per_class, title=f"Per-class test AUC on {ds.name}, profile {ctx.profile}")
    out["fig_roc"] = F.plot_roc_by_model({rs[0].model_name: rs[0].predictions() for rs in runs.values()},
                                         title=f"{ds.name}, profile {ctx.profile}, seed {ctx.seeds[0]}")
    ctx.figure(out["fig_radar"], f"radar_{ds.name}")
    ctx.figure(out["fig_roc"], f"roc_models_{ds.name}")
    return out


def complexity_table(runs: dict[str, list[RunDir]]) -> pd.DataFrame:
    """Parameters, GFLOPs and the transformer's token grid at each run's input size ('none' for a CNN), and its
    measured training images/s (mean over seeds)."""
    from ctranscnn import create_model
    from ctranscnn.models.complexity import model_complexity, token_grid

    rows = []
    for rs in runs.values():
        r = rs[0]
        size = int(r.manifest["config"]["data"]["image_size"])
        model = create_model(r.model_name, len(r.classes), **r.manifest["config"]["model"]["overrides"])
        cx = model_complexity(model, size)
        grid = token_grid(model, size)
        rows.append({"model": r.model_name, "image_size": size, "params_M": cx["params_total"] / 1e6,
                     "GFLOPs": cx[f"gflops_{size}"], "token_grid": f"{grid[0]} x {grid[1]}" if grid else "none",
                     "train_images_per_s": float(np.mean([x.manifest["images_per_s"] or np.nan for x in rs])),
                     "device": r.manifest["device"]})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- 05 Grad-CAM

def gradcam_section(ctx: NotebookContext, ds: DatasetSource, n_images: int = 4) -> dict[str, Any] | None:
    """The paper-style Grad-CAM figure and localisation scores against held-out boxes, per model."""
    import torch

    from ctranscnn.data.splits import load_splits
    from ctranscnn.data.transforms import decode, normalize
    from ctranscnn.engine.setup import preprocess_for
    from ctranscnn.gradcam import gradcam_figure
    from ctranscnn.localization import held_out_boxes, localise, summarise

    split = ctx.split_for(ds)
    splits = load_splits(ds.kind, ds.root, split, ds.lists, missing=ds.missing)
    if splits["train"].boxes is None:
        ctx.skip(f"Grad-CAM on {ds.name}", f"{ds.label} has no bounding boxes")
        return None
    runs = {m: train_runs(ctx, ds, m, split)[0] for m in GRADCAM_MODELS}  # first seed
    # The faithful model (fast=False), as Grad-CAM's numbers were first made with; its weights are the same.
    models = {r.model_name: r.load_model(CHECKPOINT, fast=False) for r in runs.values()}
    classes = next(iter(runs.values())).classes
    pre = preprocess_for(next(iter(runs.values())).config)
    paths = {i: p for s in splits.values() for i, p in zip(s.image_ids, s.paths)}

    def load(image_id: str) -> torch.Tensor:
        return normalize(decode(paths[image_id], pre), pre)

    boxes = pd.concat([s.boxes for s in splits.values() if s.boxes is not None], ignore_index=True)
    held_out = held_out_boxes(boxes, splits["train"].image_ids)
    prov = ctx.provenance(ds, split, notes=[CHECKPOINT_NOTE, f"boxes of images outside the training split: "
                                            f"{len(held_out)} of {len(boxes)}"])
    limit = DRY_MAX_BOXES if ctx.dry_run else MAX_BOXES[ctx.profile]
    if limit is not None and len(held_out) > limit:
        held_out = held_out.sample(limit, random_state=0).reset_index(drop=True)
        prov.notes.append(f"{'dry run' if ctx.dry_run else f'profile {ctx.profile}'}: a seeded sample of {limit} boxes")

    test = splits["test"]
    with_box = [i for i, image_id in enumerate(test.image_ids) if image_id in set(held_out["image_id"])]
    pick = (with_box or list(range(len(test))))[:n_images]
    images = torch.stack([load(test.image_ids[i]) for i in pick])
    fig_paths = gradcam_figure(images, test.labels[pick], models, classes,
                               ctx.figures_dir / f"{ctx.prefix}_gradcam_{ds.name}")

    tables = []
    for name, model in models.items():
        per_box = localise(model, held_out, classes, load)
        tables.append(summarise(per_box).reset_index().assign(model=name))
    scores = pd.concat(tables, ignore_index=True)
    scores = scores[["model"] + [c for c in scores.columns if c != "model"]]
    ctx.table(scores, f"localisation_{ds.name}", prov, digits=3,
              caption=f"Grad-CAM localisation (fused map) against held-out boxes: {ds.label}")
    return {"localisation": scores[scores["label"] == "overall"], "figure": fig_paths["png"]}


# ---------------------------------------------------------------- 06 report


def finished_runs(ctx: NotebookContext, ds: DatasetSource, model: str = CTRANSCNN, split: str | None = None,
                  overrides: dict | None = None) -> list[RunDir] | None:
    """The row's finished runs (one per seed) if all of them are there, else None; never trains."""
    runs = [RunDir.for_config(cfg) for cfg in row_configs(ctx, plan_row(ctx, ds, model, split, overrides))]
    done = all(r.manifest_file.is_file() and r.manifest.get("status") == FINISHED for r in runs)
    return runs if done else None


def claims_section(ctx: NotebookContext) -> pd.DataFrame | None:
    """The claims table (06_claims): the paper's claims and ours -> what the finished runs of notebooks 02-04
    measured -> verdict (ctranscnn.report.claims). A claim whose runs are missing is skipped, with the reason."""
    claims: list[C.Claim] = []

    def gather(what: str, ds: DatasetSource, rows: dict[str, tuple]) -> dict[str, list[RunDir]] | None:
        runs = {key: finished_runs(ctx, ds, *row) for key, row in rows.items()}
        missing = [key for key, rs in runs.items() if rs is None]
        if missing:
            ctx.skip(f"claims: {what} on {ds.name}", f"no finished runs for {', '.join(missing)} (run its notebook)")
            return None
        return runs

    for ds in chest_datasets(ctx, "sota"):
        if runs := gather("comparison", ds, {m: (m,) for m in SOTA_MODELS}):
            claims += C.comparison_claims(ds.label, runs, CTRANSCNN)
    for ds in chest_datasets(ctx, "ablation"):
        if runs := gather("ablation", ds, {v: (m, None, ov) for v, (m, ov) in ABLATION.items()}):
            claims += C.ablation_claims(ds.label, runs)
    for ds in split_datasets(ctx):
        leaky = leaky_split(ds)
        if runs := gather("split effect", ds, {leaky: (CTRANSCNN, leaky), "patient": (CTRANSCNN, "patient")}):
            claims.append(C.split_claim(ds.label, runs[leaky], runs["patient"]))
    if not claims:
        ctx.skip("claims table", "no finished runs of notebooks 02-04")
        return None
    comparer = RunComparer()
    numeric, display = C.claims_table(claims, comparer)
    ctx.table(numeric, "claims", ctx.provenance(notes=[CHECKPOINT_NOTE, *C.claims_notes(comparer)]), display=display,
              caption="The paper's claims and ours: what this run measured, and the verdict")
    return display


def runs_runtime(ctx: NotebookContext) -> pd.DataFrame | None:
    """Wall time and throughput of every training run under runs_dir (from the manifests)."""
    rows = [(r.path.name, r.manifest) for r in run_dirs(ctx.runs_dir)]
    if not rows:
        ctx.skip("runtime of training runs", f"no runs under {ctx.runs_dir}")
        return None
    df = pd.DataFrame([{"run": name, "profile": m["profile"],
                        "status": m["status"], "epochs": m["epochs_done"], "train_s": m["wall_time_s"],
                        "images_per_s": m["images_per_s"], "device": m["device"]} for name, m in rows])
    ctx.table(df, "runtime_runs", ctx.provenance(), caption="Training wall time per run on the machine that ran it",
              digits=1)
    return df
