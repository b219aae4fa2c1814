"""`python -m ctranscnn grid submit|status`: the plan's runs as a submitit job array (SLURM, or local processes).

    grid submit --executor slurm --partition P --gpus-per-run G [--array-parallelism K]   all not finished or running
    grid status                                          finished / running / failed / stale / missing per run

The plan options are `plan`'s (defaults from reproduce.sh's environment). Needs submitit:
`pip install ctranscnn[cluster]`.
"""
from __future__ import annotations

import argparse

from ctranscnn.commands.plan import add_plan_arguments, grid_from_args, unreadable_data


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    submit = sub.add_parser("submit", help="submit every run that is neither finished nor running")
    add_plan_arguments(submit)
    submit.add_argument("--executor", choices=("slurm", "local"), default="slurm")
    submit.add_argument("--partition", default="", help="SLURM partition")
    submit.add_argument("--array-parallelism", type=int, default=0, help="at most K jobs at once (0: no limit)")
    submit.add_argument("--timeout-min", type=int, default=24 * 60, help="time limit of one job (it requeues)")
    submit.add_argument("--cpus-per-task", type=int, default=8)
    submit.add_argument("--max-requeues", type=int, default=20, help="timeouts a job may resume from")
    submit.add_argument("--slurm", nargs="*", default=[], metavar="KEY=VALUE",
                        help="more submitit SLURM parameters, e.g. account=abc qos=high mem=64G")
    submit.add_argument("--folder", help="submitit logs (default: RUNS_DIR/.grid/submitit)")
    status = sub.add_parser("status", help="finished / running / failed / stale / missing, from the run folders")
    add_plan_arguments(status)


def run(args: argparse.Namespace) -> int:
    from ctranscnn.data.errors import DataError

    try:
        return _run(args)
    except DataError as err:
        raise unreadable_data(f"grid {args.action}", err) from None


def _run(args: argparse.Namespace) -> int:
    from ctranscnn.report.grid import STATUSES, status, submit

    runs, runs_dir = grid_from_args(args)
    if args.action == "status":
        rows = status(runs, runs_dir)
        for r in rows:
            print(f"{r['status']:<9} {r['run']}" + (f"  (job {r['job_id']}: {r['job']})" if r["job"] else ""))
        print(", ".join(f"{sum(r['status'] == s for r in rows)} {s}" for s in STATUSES))
        return 0
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise SystemExit("grid submit needs submitit: pip install 'ctranscnn[cluster]'") from None
    extra = {}
    for item in args.slurm:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"grid submit: --slurm expects key=value, got {item!r}")
        extra[key] = value
    if args.executor == "slurm" and not args.partition:
        raise SystemExit("grid submit: --executor slurm needs --partition")
    jobs = submit(runs, runs_dir, args.executor, args.folder, args.gpus_per_run, args.partition,
                  args.array_parallelism, args.timeout_min, args.cpus_per_task, args.max_requeues, extra)
    for j in jobs:
        print(f"submitted {j['run']} as job {j['job_id']}")
    print(f"{len(jobs)} job(s) submitted; {len(runs) - len(jobs)} run(s) finished or running")
    return 0
