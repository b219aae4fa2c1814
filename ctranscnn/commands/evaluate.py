"""`python -m ctranscnn evaluate --run RUN_DIR [--split test] [--checkpoint best|last]`: recompute a split's
predictions and metrics from a run folder (its config, checkpoint and data), into RUN_DIR/evaluation/."""
from __future__ import annotations

import argparse

from ctranscnn.commands.common import add_set_argument, parse_overrides


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, metavar="RUN_DIR")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--checkpoint", default="best", choices=("best", "last"))
    add_set_argument(p, "where the data is now, e.g. data.root=PATH (only path/worker settings)")


def run(args: argparse.Namespace) -> int:
    import sys

    from ctranscnn.data.errors import DataError
    from ctranscnn.engine.checkpoint import CheckpointError
    from ctranscnn.engine.config import ConfigError
    from ctranscnn.engine.rundir import INTERRUPTED, RUNNING, RunDir
    from ctranscnn.engine.run_eval import evaluate_run
    from ctranscnn.engine.runlock import describe
    from ctranscnn.metrics import METRIC_COLUMNS as keys

    status = RunDir(args.run).status()
    if status == RUNNING:  # its checkpoints are still being rewritten
        raise SystemExit(f"evaluate: {args.run} is still training ({describe(RunDir(args.run).holder() or {})}); "
                         "evaluate it when it ends")
    if status == INTERRUPTED:
        print(f"evaluate: note: {args.run} was interrupted (its manifest says running, but no process holds the "
              "folder); evaluating its saved checkpoint", file=sys.stderr)
    try:
        out, metrics = evaluate_run(args.run, args.split, args.checkpoint, parse_overrides(args.set))
    except (ConfigError, DataError, OSError, CheckpointError) as err:  # OSError: missing or unwritable files
        raise SystemExit(f"evaluate: {err}") from None
    print(f"{args.run} [{args.checkpoint}] {args.split}: " + "  ".join(f"{k} {metrics[k]:.2f}" for k in keys))
    if "tuned" in metrics:
        print("  tuned thresholds: " + "  ".join(f"{k} {metrics['tuned'][k]:.2f}" for k in keys[2:]))
    lo, hi = metrics["ci95"]["mAUC"]
    print(f"  mAUC 95% CI [{lo:.2f}, {hi:.2f}]   written: {out}")
    return 0
