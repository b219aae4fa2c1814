"""The paper grid anywhere: the plan as records (for `plan --json` and other schedulers), the status of its runs
from their folders, and submission of the unfinished ones as a submitit job array (SLURM, or local processes).

Every job runs `python -m ctranscnn train --resume RUN_DIR` (under torchrun for several GPUs), so a job that
starts a run, continues a killed one or is requeued after preemption runs the same command, and the engine's
exact resume does the rest. The run folders are the only shared state: whatever trained a run, the notebooks
reuse it afterwards (`reproduce.sh` then trains nothing). Job ids are kept in <runs_dir>/.grid/jobs.json
only to tell a live job from a dead one.
"""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ctranscnn.engine.config import config_hash, to_dict
from ctranscnn.engine.rundir import RunDir
from ctranscnn.engine.slots import train_command, write_config
from ctranscnn.io import write_json
from ctranscnn.report.plan import STALE, PlannedRun, run_state, set_aside

STATUSES = ("finished", "running", "failed", "stale", "missing")
# submitit / SLURM job states of a job that is queued or running (anything else has ended)
LIVE_STATES = {"RUNNING", "PENDING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED",
               "REQUEUE_HOLD", "REQUEUE_FED"}


@dataclass(frozen=True)
class GridRun:
    """One run folder of the plan, with every notebook row that uses it (runs are shared between notebooks)."""

    planned: PlannedRun
    used_by: tuple[str, ...]  # "notebook: row label"

    @property
    def run_dir(self) -> Path:
        return Path(self.planned.run_dir)

    @property
    def name(self) -> str:
        return self.run_dir.name


def grid_runs(planned: Sequence[PlannedRun]) -> list[GridRun]:
    """The plan's distinct run folders, in plan order."""
    users: dict[Path, list[str]] = {}
    first: dict[Path, PlannedRun] = {}
    for p in planned:
        first.setdefault(Path(p.run_dir), p)
        users.setdefault(Path(p.run_dir), []).append(f"{p.notebook}: {p.label}")
    return [GridRun(first[d], tuple(users[d])) for d in first]


def folder_state(run: GridRun) -> str:
    """From the run folder alone: 'finished' (a finished manifest of this config and data), 'stale' (a manifest
    of other settings: the data changed, say), 'started' (training began: a manifest or a checkpoint, nothing
    finished) or 'missing' (at most the config.yaml `plan --json` wrote). As the notebooks' `ensure_run` judges."""
    state = run_state(run.planned.config)
    if state == "finished":
        return "finished"
    if state in STALE:
        return "stale"
    rd = RunDir(run.run_dir)  # 'started' or 'new' to ensure_run; here a config.yaml alone is not a start
    return "started" if rd.manifest_file.is_file() or rd.has_checkpoint("last") else "missing"


def progress(run_dir: Path) -> str:
    """'starting' or 'resuming from step N' (the last checkpoint's), for job logs."""
    last = RunDir(run_dir).checkpoint_dir / "last.json"
    if not last.is_file():
        return "starting"
    return f"resuming from step {json.loads(last.read_text(encoding='utf-8'))['step']}"


# ---------------------------------------------------------------- jobs


def jobs_file(runs_dir: Path) -> Path:
    return Path(runs_dir) / ".grid" / "jobs.json"


def read_jobs(runs_dir: Path) -> dict[str, dict]:
    path = jobs_file(runs_dir)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def job_state(entry: dict) -> str:
    """The state of a recorded job: SLURM's (through submitit), or for a local job whether its controller
    process still exists (RUNNING / ENDED)."""
    if entry["executor"] == "local":
        try:
            os.kill(int(entry["job_id"]), 0)
        except ProcessLookupError:
            return "ENDED"
        except PermissionError:
            return "RUNNING"
        return "ENDED" if _zombie(int(entry["job_id"])) else "RUNNING"
    import submitit

    return str(submitit.SlurmJob(Path(entry["folder"]), entry["job_id"]).state).split()[0].upper()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z")
    except OSError:
        return False


def status(runs: Sequence[GridRun], runs_dir: Path) -> list[dict]:
    """One record per run: status (finished | running | failed | stale | missing), the folder state and job state.
    'running': a live job, or a live process holding the run folder's lock (one started by hand included).
    'failed': started (or submitted) but neither finished nor running, e.g. a job that crashed or was killed;
    `grid submit` resubmits it and it resumes from its last checkpoint. 'stale': made with other settings (its
    data changed); `grid submit` sets the folder aside (`<name>.stale`) and trains the run afresh."""
    jobs = read_jobs(runs_dir)
    out = []
    for run in runs:
        folder = folder_state(run)
        entry = jobs.get(run.name)
        job = job_state(entry) if entry and folder != "finished" else ""
        if folder == "finished":
            state = "finished"
        elif job in LIVE_STATES or RunDir(run.run_dir).holder() is not None:  # a job, or any process (the lock)
            state = "running"
        elif folder == "stale":
            state = "stale"
        elif folder == "started" or entry:
            state = "failed"
        else:
            state = "missing"
        out.append({"run": run.name, "status": state, "folder": folder, "job": job,
                    "job_id": (entry or {}).get("job_id", "")})
    return out


class TrainJob:
    """The callable of one submitit job: `train --resume RUN_DIR` on the job's GPUs (torchrun for several).

    Checkpointable the submitit way (duck-typed, so this module needs no submitit): on preemption or
    timeout submitit calls `checkpoint`, which stops the training (its last checkpoint is on disk) and
    requeues this job, which resumes from it."""

    def __init__(self, run_dir: str | Path, gpus: int = 1):
        self.run_dir, self.gpus = str(run_dir), gpus

    def command(self) -> list[str]:
        return train_command(self.run_dir, self.gpus, {"train.progress": False})

    def __call__(self) -> str:
        global _child
        print(f"{self.run_dir}: {progress(Path(self.run_dir))}", flush=True)
        _child = subprocess.Popen(self.command())
        code = _child.wait()
        if code != 0:
            raise RuntimeError(f"{shlex.join(self.command())} exited with {code}")
        return self.run_dir

    def checkpoint(self, *args, **kwargs):
        stop_child()
        import submitit

        return submitit.helpers.DelayedSubmission(TrainJob(self.run_dir, self.gpus))


_child: subprocess.Popen | None = None  # the training process of this job (not pickled with the job)


def stop_child(timeout: float = 60.0) -> None:
    """SIGTERM the job's training (torchrun passes it on to its ranks), SIGKILL after `timeout` seconds."""
    if _child is None or _child.poll() is not None:
        return
    _child.send_signal(signal.SIGTERM)
    try:
        _child.wait(timeout)
    except subprocess.TimeoutExpired:
        _child.kill()
        _child.wait()


def submit(runs: Sequence[GridRun], runs_dir: Path, executor: str = "slurm", folder: Path | None = None,
           gpus_per_run: int = 1, partition: str = "", array_parallelism: int = 0, timeout_min: int = 24 * 60,
           cpus_per_task: int = 8, max_requeues: int = 20, slurm: dict | None = None) -> list[dict]:
    """Submit every run that is neither finished nor running, as one job array; returns their records.

    A failed run's job continues it from its last checkpoint; a stale run's folder is set aside first.
    `slurm`: further submitit SLURM parameters without the prefix (e.g. {"account": "abc", "qos": "high"});
    `array_parallelism` 0 = no limit."""
    import submitit

    todo = prepare(runs, [s["status"] for s in status(runs, runs_dir)])
    if not todo:
        return []
    folder = Path(folder or Path(runs_dir) / ".grid" / "submitit")
    ex = submitit.AutoExecutor(folder=folder / "%j", cluster=executor, slurm_max_num_timeout=max_requeues)
    params = {"name": "ctranscnn", "timeout_min": timeout_min, "gpus_per_node": gpus_per_run, "tasks_per_node": 1,
              "cpus_per_task": cpus_per_task}
    if executor == "slurm":
        params |= {"slurm_partition": partition, **{f"slurm_{k}": v for k, v in (slurm or {}).items()}}
        if array_parallelism:
            params["slurm_array_parallelism"] = array_parallelism
    ex.update_parameters(**params)
    with ex.batch():
        jobs = [ex.submit(TrainJob(run.run_dir, gpus_per_run)) for run in todo]
    records = {**read_jobs(runs_dir)}
    for run, job in zip(todo, jobs):
        records[run.name] = {"job_id": str(job.job_id), "executor": executor, "folder": str(folder / "%j")}
    write_json(jobs_file(runs_dir), records)
    return [{"run": run.name, "job_id": str(job.job_id)} for run, job in zip(todo, jobs)]


# ---------------------------------------------------------------- records for other schedulers


def plan_records(runs: Sequence[GridRun], runs_dir: Path, gpus_per_run: int = 1) -> list[dict]:
    """One record per run for `plan --json`: what it is, where it goes, whether it is done, and the command that
    trains it (in the repository root; needs the run folder's config.yaml, see `prepare`)."""
    states = {s["run"]: s for s in status(runs, runs_dir)}
    out = []
    for run in runs:
        p = run.planned
        command = train_command(run.run_dir.resolve(), gpus_per_run, {"train.progress": False})
        command[0] = "python"  # the environment's interpreter (the .venv's in this repository)
        out.append({
            "run": run.name, "run_dir": str(run.run_dir.resolve()), "config_hash": config_hash(p.config),
            "status": states[run.name]["status"], "dataset": p.dataset, "model": p.model, "split": p.split,
            "seed": p.seed, "overrides": dict(p.overrides), "used_by": list(run.used_by),
            "command": shlex.join(command), "config": to_dict(p.config),
        })
    return out


TO_TRAIN = ("missing", "failed", "stale")  # the statuses `grid submit` submits and `plan --json` prepares


def prepare(runs: Sequence[GridRun], statuses: Sequence[str]) -> list[GridRun]:
    """The runs neither finished nor running (by their `status`), each folder made ready for
    `train --resume RUN_DIR`: a stale folder set aside (as the notebooks do), then config.yaml written where
    training has not begun. A running run's folder is left alone."""
    todo = []
    for run, state in zip(runs, statuses):
        if state not in TO_TRAIN:
            continue
        if state == "stale":
            set_aside(run.run_dir, "made with other settings (config or data changed)")
        write_config(run.run_dir, run.planned.config)
        todo.append(run)
    return todo
