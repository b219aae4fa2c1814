"""Check that a reproduce.sh run produced every expected table and figure, each non-empty.

    python -m ctranscnn.report.check --results results --figures figures
The default dataset list is the phantom set that `bash reproduce.sh` runs without real data; the comparison,
ablation, split and Grad-CAM outputs are expected for the first chest dataset (the CPU profiles' limit).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

NOTEBOOKS = ("01_data", "02_train", "03_ablation", "04_sota", "05_gradcam", "06_report")
PER_DATASET = {"tables": ("01_cardinality", "01_leakage", "01_prevalence", "01_summary", "02_main_results",
                          "02_per_class_auc", "02_runs"),
               "figures": ("01_cooccurrence", "01_prevalence", "01_samples", "02_roc", "02_training_curves")}
FIRST_CHEST = {"tables": ("02_split_effect", "03_ablation", "04_comparison", "04_complexity", "04_models",
                          "04_per_class_auc", "05_localisation"),
               "figures": ("03_ablation", "04_radar", "04_roc_models", "05_gradcam")}
GLOBAL_TABLES = ("06_claims", "06_runtime_notebooks", "06_runtime_runs")


def expected_files(results: Path, figures: Path, datasets: list[str], chest: str) -> list[Path]:
    tables = [f"{stem}_{d}" for d in datasets for stem in PER_DATASET["tables"]]
    tables += [f"{stem}_{chest}" for stem in FIRST_CHEST["tables"]] + list(GLOBAL_TABLES)
    figs = [f"{stem}_{d}" for d in datasets for stem in PER_DATASET["figures"]]
    figs += [f"{stem}_{chest}" for stem in FIRST_CHEST["figures"]]
    files = [results / "tables" / f"{t}.{ext}" for t in tables for ext in ("csv", "md", "tex")]
    files += [figures / f"{f}.{ext}" for f in figs for ext in ("png", "pdf")]
    files += [results / "executed" / f"{nb}.{ext}" for nb in NOTEBOOKS for ext in ("ipynb", "html")]
    return files + [results / "REPORT.md"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--figures", type=Path, default=Path("figures"))
    p.add_argument("--datasets", nargs="+", default=["cxr14-phantom", "cxr11-phantom", "tongue-phantom"])
    p.add_argument("--chest", default="cxr14-phantom", help="dataset of the comparison, ablation and Grad-CAM")
    args = p.parse_args(argv)
    files = expected_files(args.results, args.figures, args.datasets, args.chest)
    bad = [f"{f}: {'missing' if not f.exists() else 'empty'}" for f in files if not f.exists() or f.stat().st_size == 0]
    for line in bad:
        print(f"check: {line}", file=sys.stderr)
    print(f"check: {len(files) - len(bad)} of {len(files)} expected outputs present and non-empty")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
