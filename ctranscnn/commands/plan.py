"""`python -m ctranscnn plan [--profile P] [--datasets ...] [--seeds ...] [--json FILE]`: every run the notebooks
need (config, run folder, content hash, finished or not), from the plan the notebooks themselves use.

The data options default to reproduce.sh's environment variables (PROFILE, SPLIT, SEEDS, NIH_ROOT, ...), so
`plan` shows what `bash reproduce.sh` with the same environment would train. `--json` writes one line per
run with the `train` command that executes it, and each unfinished run's config.yaml into its run folder (the
command starts the run from it, or continues it from its last checkpoint).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path

NOTEBOOKS = ("train", "ablation", "sota")
DATA_OPTIONS = {  # option -> reproduce.sh's variable
    "profile": "PROFILE", "split": "SPLIT", "device": "DEVICE", "data_dir": "DATA_DIR", "runs_dir": "RUNS_DIR",
    "nih_root": "NIH_ROOT", "ranzcr_root": "RANZCR_ROOT", "tcmtd_list": "TCMTD_LIST",
    "authors_lists": "AUTHORS_LISTS", "chestmnist": "CHESTMNIST",
}
DEFAULTS = {"profile": "demo", "split": "paper", "device": "auto", "data_dir": "data", "runs_dir": "runs"}


def add_plan_arguments(p: argparse.ArgumentParser) -> None:
    """The options that choose the plan (shared with `grid`)."""
    for option, var in DATA_OPTIONS.items():
        p.add_argument(f"--{option.replace('_', '-')}", default=os.environ.get(var, DEFAULTS.get(option, "")),
                       help=f"default: ${var} or {DEFAULTS.get(option, 'unset')!r}")
    p.add_argument("--seeds", nargs="+", type=int,
                   help="default: $SEEDS, else reproduce.sh's (0 1 in smoke, 0 1 2 otherwise)")
    p.add_argument("--datasets", nargs="+", metavar="NAME", help="only these datasets (nih, ranzcr, tcmtd, "
                   "cxr14-phantom, ...; default: every dataset found)")
    p.add_argument("--notebooks", nargs="+", choices=NOTEBOOKS, default=list(NOTEBOOKS))
    p.add_argument("--gpus-per-run", type=int, default=1, help="GPUs of each run (DDP via torchrun when > 1)")
    p.add_argument("--quirks", type=int, choices=[0, 1], default={"0": 0, "1": 1}.get(os.environ.get("QUIRKS", "")),
                   help="notebook 03's quirks study on (1) / off (0); default: $QUIRKS, else the profile's")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_plan_arguments(p)
    p.add_argument("--json", metavar="FILE", help="write one JSON record per line per run ('-': stdout)")


def grid_from_args(args: argparse.Namespace):
    """The plan's distinct runs (report.grid.GridRun) and the runs folder, for these options."""
    from ctranscnn.report.context import NotebookContext
    from ctranscnn.report.grid import grid_runs
    from ctranscnn.report.plan import planned_runs

    from ctranscnn.report.plan import DEFAULT_SEEDS

    env = os.environ.get("SEEDS")
    seeds = args.seeds or ([int(s) for s in env.replace(",", " ").split()] if env
                           else list(DEFAULT_SEEDS[args.profile]))
    params = {k: getattr(args, k) for k in DATA_OPTIONS if k not in ("profile", "split", "device")}
    # Skip/fallback notes belong to the notebooks' results, and go to stderr (stdout may carry --json -).
    with tempfile.TemporaryDirectory() as scratch, contextlib.redirect_stdout(sys.stderr):
        try:
            ctx = NotebookContext.from_params(notebook="plan", profile=args.profile, split=args.split, seeds=seeds,
                                              device=args.device, results_dir=scratch, figures_dir=scratch,
                                              quirks=None if args.quirks is None else bool(args.quirks),
                                              **{k: str(Path(v).resolve()) if v else "" for k, v in params.items()})
        except (ValueError, FileNotFoundError) as err:
            raise SystemExit(f"plan: {err}") from None
        if args.datasets:
            unknown = set(args.datasets) - {d.name for d in ctx.datasets}
            if unknown:
                raise SystemExit(f"plan: --datasets {', '.join(sorted(unknown))} not found (found: "
                                 f"{', '.join(d.name for d in ctx.datasets) or 'none'})")
            ctx.datasets = [d for d in ctx.datasets if d.name in args.datasets]
        try:
            planned = [p for nb in args.notebooks for p in planned_runs(ctx, nb)]
        except ValueError as err:
            raise SystemExit(f"plan: {err}") from None
    return grid_runs(planned), Path(args.runs_dir).resolve()


def unreadable_data(command: str, err) -> SystemExit:
    """The one-line error when a finished run's data cannot be read to compare its hash (run_state); `err` is
    the DataError."""
    problems = err.problems
    return SystemExit(f"{command}: cannot read the data to check that finished runs used it: {problems[0]}"
                      + (f" (and {len(problems) - 1} more problem(s); `python -m ctranscnn data check` lists them)"
                         if len(problems) > 1 else ""))


def run(args: argparse.Namespace) -> int:
    from ctranscnn.data.errors import DataError
    from ctranscnn.io import atomic_write_text
    from ctranscnn.report.grid import plan_records, prepare

    runs, runs_dir = grid_from_args(args)
    try:
        records = plan_records(runs, runs_dir, args.gpus_per_run)
    except DataError as err:
        raise unreadable_data("plan", err) from None
    if args.json:
        prepare(runs, [r["status"] for r in records])  # each unfinished run's config.yaml
        lines = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
        if args.json == "-":
            sys.stdout.write(lines)
            return 0
        atomic_write_text(args.json, lines)
    for r in records:
        print(f"{r['status']:<9} {r['config_hash'][:10]}  {r['run_dir']}  ({'; '.join(r['used_by'])})")
    done = sum(r["status"] == "finished" for r in records)
    print(f"{len(records)} run(s): {done} finished, {len(records) - done} to train" +
          (f"; records in {args.json}" if args.json else ""))
    return 0
