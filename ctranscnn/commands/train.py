"""`python -m ctranscnn train --config FILE [--set key=value ...] [--resume RUN_DIR]` (also under torchrun)."""
from __future__ import annotations

import argparse
import os

from ctranscnn.commands.common import add_set_argument, parse_overrides


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="run YAML (configs/paper_*.yaml); optional with --resume")
    add_set_argument(p, "config overrides, e.g. profile=demo data.root=/data/nih train.seed=1")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("--restart", action="store_true", help="with --resume: train the run again from step 0 with its "
                   "config.yaml (when its last.pt is lost or damaged); the old checkpoints are kept aside")


def run(args: argparse.Namespace) -> int:
    from ctranscnn.data.errors import DataError
    from ctranscnn.engine.checkpoint import CheckpointError
    from ctranscnn.engine.config import ConfigError, load_config
    from ctranscnn.engine.runlock import RunFolderError
    from ctranscnn.engine.trainer import resume, train

    overrides = parse_overrides(args.set)
    try:
        if args.resume:
            if args.config:
                raise ConfigError("--resume takes the run's own config; drop --config")
            run_dir, metrics = resume(args.resume, overrides, restart=args.restart)
        else:
            if not args.config:
                raise ConfigError("train needs --config FILE (or --resume RUN_DIR)")
            if args.restart:
                raise ConfigError("--restart goes with --resume RUN_DIR")
            run_dir, metrics = train(load_config(args.config, overrides))
    except (ConfigError, DataError, OSError, CheckpointError, RunFolderError) as err:  # OSError: e.g. disk full
        raise SystemExit(f"train: {err}") from None
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    for which in ("best", "last"):
        if which in metrics:
            m = metrics[which]["test"]
            print(f"{which} (epoch {metrics[which]['epoch']}): test mAUC {m['mAUC']:.2f}  mAP {m['mAP']:.2f}  "
                  f"CF1 {m['CF1']:.2f}  OF1 {m['OF1']:.2f}")
    print(f"run folder: {run_dir}")
    return 0
