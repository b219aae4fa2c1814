"""Check that a reproduce.sh run produced every expected table and figure, each non-empty.

    python -m ctranscnn.report.check --results results --figures figures
    python -m ctranscnn.report.check --profile paper --dry-run ...   # after DRY_RUN=1 PROFILE=paper
The default dataset list is the phantom set that `bash reproduce.sh` runs without real data; the comparison,
ablation, split and Grad-CAM outputs are expected for the first chest dataset (the CPU profiles' limit).
`--profile paper` expects what the paper profile writes for NIH, RANZCR and TCMTD: the comparison, ablation and
split outputs for both chest datasets, Grad-CAM for the one with boxes (NIH), and the preflight report;
`--dry-run` also requires every table to say in its footer that it comes from a dry run.
The quirks study's outputs (notebook 03) are expected where the profile runs it by default (smoke, paper:
report.plan.QUIRKS_BY_DEFAULT) or with `--quirks 1` (a demo run with QUIRKS=1); `--quirks 0` for QUIRKS=0.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

NOTEBOOKS = ("01_data", "02_train", "03_ablation", "04_sota", "05_gradcam", "06_report")
PER_DATASET = {"tables": ("01_cardinality", "01_leakage", "01_prevalence", "01_summary", "02_main_results",
                          "02_per_class_auc", "02_runs"),
               "figures": ("01_cooccurrence", "01_prevalence", "01_samples", "02_roc", "02_training_curves")}
FIRST_CHEST = {"tables": ("02_split_effect", "03_ablation", "03_metric_conventions", "04_comparison", "04_complexity",
                          "04_models", "04_per_class_auc", "05_localisation"),
               "figures": ("03_ablation", "04_radar", "04_roc_models", "05_gradcam")}
GLOBAL_TABLES = ("06_claims", "06_runtime_notebooks", "06_runtime_runs")
BOX_OUTPUTS = ("05_localisation", "05_gradcam")  # only for datasets with bounding boxes
QUIRK_OUTPUTS = ("03_quirks",)  # table and figure of the quirks study, per chest dataset, when it runs
# --profile paper: datasets, chest datasets (comparison, ablation, split table), datasets with boxes
PAPER = (["nih", "ranzcr", "tcmtd"], ["nih", "ranzcr"], ["nih"])
DRY_RUN_MARK = "DRY RUN"  # in every table footer of a dry run (report.context.DRY_RUN_NOTE)


def expected_files(results: Path, figures: Path, datasets: list[str], chest: str | list[str],
                   boxes: list[str] | None = None, preflight: bool = False, quirks: bool = False) -> list[Path]:
    """Every output of a run over `datasets`; the chest outputs for `chest`, Grad-CAM for `boxes` (default: the
    chest datasets), the quirks study's for `chest` if `quirks`."""
    chest = [chest] if isinstance(chest, str) else list(chest)
    boxes = chest if boxes is None else boxes

    def per(kind: str, d: str) -> list[str]:
        stems = FIRST_CHEST[kind] + (QUIRK_OUTPUTS if quirks else ())
        return [f"{stem}_{d}" for stem in stems if stem not in BOX_OUTPUTS or d in boxes]

    tables = [f"{stem}_{d}" for d in datasets for stem in PER_DATASET["tables"]]
    tables += [t for d in chest for t in per("tables", d)] + list(GLOBAL_TABLES)
    figs = [f"{stem}_{d}" for d in datasets for stem in PER_DATASET["figures"]]
    figs += [f for d in chest for f in per("figures", d)]
    files = [results / "tables" / f"{t}.{ext}" for t in tables for ext in ("csv", "md", "tex")]
    files += [figures / f"{f}.{ext}" for f in figs for ext in ("png", "pdf")]
    files += [results / "executed" / f"{nb}.{ext}" for nb in NOTEBOOKS for ext in ("ipynb", "html")]
    return files + [results / "REPORT.md"] + ([results / "preflight.md"] if preflight else [])


def dry_run_unmarked(results: Path) -> list[Path]:
    """Tables (and REPORT.md) of a dry run that do not say so."""
    texts = sorted((results / "tables").glob("*.md")) + [results / "REPORT.md"]
    return [t for t in texts if t.exists() and DRY_RUN_MARK not in t.read_text(encoding="utf-8")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--figures", type=Path, default=Path("figures"))
    p.add_argument("--datasets", nargs="+", default=["cxr14-phantom", "cxr11-phantom", "tongue-phantom"])
    p.add_argument("--chest", nargs="+", default=["cxr14-phantom"],
                   help="dataset(s) of the comparison, ablation and Grad-CAM")
    p.add_argument("--boxes", nargs="+", help="datasets with boxes, for the Grad-CAM outputs (default: --chest)")
    p.add_argument("--profile", choices=["smoke", "demo", "paper"], default="demo",
                   help="paper: NIH, RANZCR and TCMTD outputs (overrides --datasets/--chest/--boxes) and preflight.md")
    p.add_argument("--dry-run", action="store_true", help="also require every table to be marked as a dry run")
    p.add_argument("--quirks", type=int, choices=[0, 1], help="expect the quirks study's outputs (1) or not (0); "
                   "default: the profile's (QUIRKS unset)")
    args = p.parse_args(argv)
    if args.profile == "paper":
        args.datasets, args.chest, args.boxes = PAPER
    from ctranscnn.report.plan import QUIRKS_BY_DEFAULT

    quirks = QUIRKS_BY_DEFAULT[args.profile] if args.quirks is None else bool(args.quirks)
    files = expected_files(args.results, args.figures, args.datasets, args.chest, args.boxes,
                           preflight=args.profile == "paper", quirks=quirks)
    bad = [f"{f}: {'missing' if not f.exists() else 'empty'}" for f in files if not f.exists() or f.stat().st_size == 0]
    present = len(files) - len(bad)
    if args.dry_run:
        bad += [f"{t}: not marked as a dry run ({DRY_RUN_MARK!r} missing)" for t in dry_run_unmarked(args.results)]
    for line in bad:
        print(f"check: {line}", file=sys.stderr)
    print(f"check: {present} of {len(files)} expected outputs present and non-empty")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
