"""`ctranscnn data check`: validate a dataset before a long run (`data download`: fetch ChestMNIST).

Prints per-split image counts, per-class positive counts, patients per split and the leakage
report (or, with --json, {"splits": {name: {images, patients, class_counts}}, "leakage":
{patients_shared, box_images_in_train}}). Every problem found is listed, not just the first;
the exit status is 1 when there are any.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor

from ctranscnn.data.errors import DataError
from ctranscnn.data.splits import DATASETS, SPLIT_KINDS, leakage_report, load_splits


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = sub.add_parser("check", help="validate a dataset and print its splits and leakage report")
    check.add_argument("--dataset", required=True, choices=DATASETS)
    check.add_argument("--root", required=True, help="dataset folder as released (ChestMNIST: the .npz or its folder)")
    check.add_argument("--split", choices=SPLIT_KINDS, help="default: paper (chestmnist: official)")
    check.add_argument("--lists", help="folder with the authors' split lists (split 'paper')")
    check.add_argument("--seed", type=int, default=0, help="seed of the patient / official-validation split")
    check.add_argument("--fractions", type=float, nargs=3, metavar=("TRAIN", "VAL", "TEST"),
                       help="patient split shares (default 0.7 0.1 0.2), image split shares (default 0.9 0.07 0.03, "
                            "the authors' NIH lists); 'official' carves val with VAL / (TRAIN + VAL)")
    check.add_argument("--findings-only", action="store_true", help="NIH: drop 'No Finding' images first")
    check.add_argument("--metadata-only", action="store_true", help="do not look for image files")
    check.add_argument("--missing", choices=["error", "skip"], default="error",
                       help="nih/ranzcr: 'skip' keeps only the listed images whose files exist (partial download)")
    check.add_argument("--decode", action="store_true", help="also decode every image to find corrupt ones")
    check.add_argument("--workers", type=int, default=2, help="processes for --decode")
    check.add_argument("--json", action="store_true", help="print a JSON report")
    fetch = sub.add_parser("download", help="download ChestMNIST (MedMNIST .npz, MD5-verified); needs a network")
    fetch.add_argument("dataset", choices=["chestmnist"], help="the one dataset that can be fetched")
    fetch.add_argument("--size", type=int, default=64, choices=[28, 64, 128, 224], help="image side in px (default 64)")
    fetch.add_argument("--dest", default="data", help="folder to write the .npz into (default data/)")


def run(args: argparse.Namespace) -> int:
    if args.action == "download":
        from ctranscnn.data.chestmnist import download_chestmnist

        print(download_chestmnist(args.dest, args.size))
        return 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            splits = load_splits(args.dataset, args.root, split=args.split, lists=args.lists, seed=args.seed,
                                 fractions=tuple(args.fractions) if args.fractions else None,
                                 check_files=not args.metadata_only, findings_only=args.findings_only,
                                 missing=args.missing)
            problems = _unreadable(splits, args.workers) if args.decode and not args.metadata_only else []
        except DataError as e:
            splits, problems = {}, e.problems
    notes = [str(w.message) for w in caught]
    report = {
        "dataset": args.dataset,
        "splits": {
            name: {
                "images": len(r),
                "patients": None if r.patient_ids is None else len(set(r.patient_ids)),
                "class_counts": dict(zip(r.classes, map(int, r.labels.sum(axis=0)))),
                "dropped_missing": r.dropped,  # --missing skip: listed images left out, in total and per class
            }
            for name, r in splits.items()
        },
        "leakage": leakage_report(splits) if splits else None,
        "warnings": notes,
        "problems": problems,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print(report)
    return 1 if problems else 0


def _unreadable(splits, workers: int) -> list[str]:
    from ctranscnn.data.transforms import read_image

    paths = sorted({p for r in splits.values() if r.pixels is None for p in r.paths})
    with ProcessPoolExecutor(max(1, workers)) as pool:
        return [msg for msg in pool.map(_try_read, paths, [read_image] * len(paths), chunksize=64) if msg]


def _try_read(path, read) -> str | None:
    try:
        read(path)
    except DataError as e:
        return e.problems[0]
    except Exception as e:  # e.g. MemoryError on a huge image: one entry in the report, not a lost report
        return f"{path}: could not decode ({type(e).__name__}: {e})"
    return None


def _print(report: dict) -> None:
    out = sys.stdout
    if report["splits"]:
        names = list(report["splits"])
        first = report["splits"][names[0]]
        print(f"{report['dataset']}: " + ", ".join(f"{n} {s['images']:,} images" for n, s in report["splits"].items()), file=out)
        width = max(len(c) for c in first["class_counts"]) + 2
        print(f"{'':<{width}}" + "".join(f"{n:>10}" for n in names), file=out)
        for c in first["class_counts"]:
            print(f"{c:<{width}}" + "".join(f"{report['splits'][n]['class_counts'][c]:>10,}" for n in names), file=out)
        print(f"{'images':<{width}}" + "".join(f"{report['splits'][n]['images']:>10,}" for n in names), file=out)
        patients = [report["splits"][n]["patients"] for n in names]
        print(f"{'patients':<{width}}" + "".join(f"{'unknown' if p is None else format(p, ','):>10}" for p in patients), file=out)
        leak = report["leakage"]
        shared = ", ".join(f"{k} {'unknown' if v is None else v}" for k, v in leak["patients_shared"].items())
        boxes = leak["box_images_in_train"]
        print(f"leakage: patients shared {shared}; box images in train {'n/a' if boxes is None else boxes}", file=out)
    for note in report["warnings"]:
        print(f"WARNING: {note}", file=out)
    if report["problems"]:
        print(f"{len(report['problems'])} problem(s):", file=out)
        for p in report["problems"]:
            print(f"  {p}", file=out)
    else:
        print("no problems found", file=out)
