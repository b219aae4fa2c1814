"""The paper-shaped dry run (`DRY_RUN=1 PROFILE=paper bash reproduce.sh`): the paper profile's plan, configs
(configs/paper_*.yaml) and full-size models at 224 px, for a handful of optimizer steps, on phantom data written
in the real NIH, RANZCR and list layouts, with lists in the authors' format, and handed to the notebooks through
NIH_ROOT, RANZCR_ROOT, TCMTD_LIST and AUTHORS_LISTS exactly as real data would be (so SPLIT=paper takes the
real-data branch). It tests the wiring of the citable path in minutes on a CPU; none of its numbers is a result.

    python -m ctranscnn.report.dryrun prepare --out data/dry    # prints the environment for reproduce.sh
"""
from __future__ import annotations

import argparse
import shlex
import warnings
from pathlib import Path

from ctranscnn.io import atomic_write_text

# On top of the paper profile (run_config applies it last): two optimizer steps of batch 2, four val and four test
# images, one epoch, the cheap evaluation settings. Model, image size, loss, optimizer and schedule shape stay the
# paper's. A full-size run at 224 px still costs ~10-40 s on one CPU thread (model build, steps, evaluation and two
# checkpoints of up to 1 GB), and the paper's plan has ~30 runs.
DRY_OVERLAY = {
    "data.limit_train": 4, "data.limit_val": 4, "data.limit_test": 4, "data.num_workers": 0,
    "schedule.epochs": 1, "schedule.warmup_iters": 1, "train.batch_size": 2, "train.checkpoint_every": 0,
    "train.cpu_threads": 1, "eval.batch_size": 4, "eval.n_boot": 10,
}
# Grad-CAM localisation scores at most this many held-out boxes (the paper profile scores all of them): each box
# is a Grad-CAM pass of three full-size models at 224 px, which on 2 CPU cores is most of notebook 05.
DRY_MAX_BOXES = 12
# Phantom sizes: enough images for a 50/25/25 image split and a patient split with every split non-empty.
PHANTOM_N = {"cxr14": 40, "cxr11": 40, "tongue": 24}
PHANTOM_SIZE = 224
# The authors' list file names (their release), per dataset: (folder under AUTHORS_LISTS, split -> file name).
AUTHORS_NAMES = {
    "nih": ("chest14", {"classes": "add72_chest14_classes.txt", "train": "add72_chest14_train_labels.txt",
                        "val": "add72_chest14_val_labels.txt", "test": "add72_chest14_test_labels.txt"}),
    "ranzcr": ("chest11", {"classes": "chest_x-rays11_multi_label_classes.txt",
                           "train": "chest_x-rays11_kaggle_train.txt", "val": "chest_x-rays11_kaggle_val.txt",
                           "test": "chest_x-rays11_kaggle_test.txt"}),
}
# The authors' folder prefixes in their lists; loaders resolve entries by file name, so any prefix works.
AUTHORS_PREFIX = {"nih": "data/chest14/images/", "ranzcr": "data/chest11/train/"}
LIST_FRACTIONS = (0.5, 0.25, 0.25)  # image-level, like the authors' lists; larger val/test than 90/7/3 on 40 images


def write_authors_lists(dataset: str, root: Path, out: Path, seed: int = 0) -> Path:
    """Authors'-format split lists (`prefix/name<TAB>0,1,...`, no trailing newline) for the `dataset` ('nih' |
    'ranzcr') found at `root`: an image-level split, written under `out/<chest14|chest11>/`."""
    from ctranscnn.data.splits import LeakageWarning, load_splits

    folder, names = AUTHORS_NAMES[dataset]
    with warnings.catch_warnings():  # image-level on purpose: the authors' lists are
        warnings.simplefilter("ignore", LeakageWarning)
        splits = load_splits(dataset, root, "image", fractions=LIST_FRACTIONS, seed=seed)
    target = Path(out) / folder
    atomic_write_text(target / names["classes"], "\n".join(splits["train"].classes))
    for split, records in splits.items():
        lines = [f"{AUTHORS_PREFIX[dataset]}{Path(p).name}\t{','.join(map(str, row.tolist()))}"
                 for p, row in zip(records.paths, records.labels)]
        atomic_write_text(target / names[split], "\n".join(lines))
    return target


def prepare(out: Path, seed: int = 0, workers: int = 2) -> dict[str, str]:
    """Write the phantom datasets and lists under `out` (reused when already complete); returns the environment
    reproduce.sh sets for them."""
    from ctranscnn import phantom

    out = Path(out)
    stamp = out / ".dry-args"
    args = f"n={PHANTOM_N} size={PHANTOM_SIZE} seed={seed} fractions={LIST_FRACTIONS} nih=abnormal-only"
    if not (stamp.is_file() and stamp.read_text() == args):
        common = dict(size=PHANTOM_SIZE, seed=seed, workers=workers)
        # abnormal-only, like the authors' NIH subset (and more positives for 40 images)
        phantom.generate_cxr14(out / "nih", n=PHANTOM_N["cxr14"], cfg=phantom.Cxr14Config(abnormal_only=True),
                               **common)
        phantom.generate_cxr11(out / "ranzcr", n=PHANTOM_N["cxr11"], **common)
        phantom.generate_tongue(out / "tcmtd", n=PHANTOM_N["tongue"], **common)
        for dataset in AUTHORS_NAMES:
            write_authors_lists(dataset, out / dataset, out / "lists", seed)
        atomic_write_text(stamp, args)  # last: a stamp means everything before it was written
    return {"NIH_ROOT": str(out / "nih"), "RANZCR_ROOT": str(out / "ranzcr"), "TCMTD_LIST": str(out / "tcmtd"),
            "AUTHORS_LISTS": str(out / "lists")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="action", required=True)
    prep = sub.add_parser("prepare", help="write the dry run's phantom data and lists; print the environment")
    prep.add_argument("--out", type=Path, required=True)
    prep.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for key, value in prepare(args.out, args.seed).items():
        print(f"{key}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
