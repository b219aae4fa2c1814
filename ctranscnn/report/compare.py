"""Differences between two groups of finished runs (one run per seed on each side), for the tables' rows and the
claims table: mean AUC and mAP of side A minus side B with a 95% CI (ctranscnn.stats).

Runs are read through the run-folder reader (ctranscnn.engine.rundir.RunDir: `manifest`, `seed` and
`predictions(split, which)`). Two sides are paired when every run was tested on the same images (equal test-split
hash in the manifests). Bootstrap resamples are drawn once per test set, from a random stream named by the test
set's hash, and each run is scored on them once, so the rows of a table that share a run (the full model in every
ablation row) share its replicates, and a rerun of the report gives the same CIs.
"""
from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence

import numpy as np
import pandas as pd

from ctranscnn.engine.config import EvalConfig
from ctranscnn.metrics import bootstrap_counts
from ctranscnn.stats import COMBINATION_NOTE, METRICS, Difference, Replicates, difference, replicates
from ctranscnn.report.tables import NA


class RunLike(Protocol):
    path: Any
    manifest: dict

    @property
    def seed(self) -> int: ...

    def predictions(self, split: str = "test", which: str = "best") -> tuple[np.ndarray, np.ndarray]: ...


def tested_on(run: RunLike) -> str:
    """The hash of the run's test split (membership and labels): equal hashes = the same test images."""
    try:
        return run.manifest["split_hashes"]["test"]
    except KeyError as e:
        raise ValueError(f"{run.path}/manifest.json: no split_hashes.test (needed to pair runs)") from e


class RunComparer:
    """Scores runs on shared bootstrap resamples of their test set and compares groups of them.

    n_boot: resamples per test set (default: the first run's eval.n_boot, the profile's setting for every CI; the
    engine's default where a run set it to 0). The runs of one comparison must share an eval.single_class policy
    and a class list (different comparisons may be on different datasets)."""

    def __init__(self, n_boot: int | None = None, seed: int = 0, alpha: float = 0.05, which: str = "best"):
        self.n_boot, self.seed, self.alpha, self.which = n_boot, seed, alpha, which
        self._counts: dict[str, np.ndarray] = {}
        self._labels: dict[str, np.ndarray] = {}
        self._replicates: dict[str, Replicates] = {}

    @staticmethod
    def _scoring(run: RunLike) -> tuple[str, tuple[str, ...]]:
        return run.manifest["config"]["eval"]["single_class"], tuple(run.manifest["classes"])

    def replicates(self, run: RunLike) -> Replicates:
        """The run's point mAUC / mAP and their values on its test set's resamples (computed once per run)."""
        key = str(run.path)
        if key not in self._replicates:
            if self.n_boot is None:
                self.n_boot = int(run.manifest["config"]["eval"]["n_boot"]) or EvalConfig().n_boot
            y, probs = run.predictions("test", self.which)
            h = tested_on(run)
            if h not in self._counts:
                stream = np.random.default_rng([self.seed, int(h[:15], 16)])
                self._counts[h], self._labels[h] = bootstrap_counts(y, self.n_boot, stream), y
            elif not np.array_equal(self._labels[h], y):
                raise ValueError(f"{run.path}: test labels differ from another run with the same test hash")
            self._replicates[key] = replicates(y, probs, self._counts[h], run.seed, self._scoring(run)[0])
        return self._replicates[key]

    def compare(self, a: Sequence[RunLike], b: Sequence[RunLike]) -> dict[str, Difference]:
        """{'mAUC', 'mAP'}: side A minus side B (each a list of runs, one per seed)."""
        if not a or not b:
            raise ValueError("compare: each side needs at least one run")
        hashes = {tested_on(r) for r in (*a, *b)}
        scoring = {self._scoring(r) for r in (*a, *b)}
        if len(scoring) > 1:
            raise ValueError(f"compare: the runs differ in eval.single_class or classes ({sorted(scoring)}): "
                             f"{[str(r.path) for r in (*a, *b)]}")
        for side in (a, b):
            if len({tested_on(r) for r in side}) > 1:
                raise ValueError(f"compare: the runs of one side were tested on different test sets: "
                                 f"{[str(r.path) for r in side]}")
        ra, rb = [self.replicates(r) for r in a], [self.replicates(r) for r in b]
        return {m: difference(ra, rb, m, self.alpha, paired=len(hashes) == 1) for m in METRICS}

    def note(self) -> str:
        """Footer line: how the CIs were made."""
        return f"{COMBINATION_NOTE}; {self.n_boot} resamples per test set, checkpoint {self.which}"


def n_test_images(runs: Sequence[RunLike]) -> int:
    return int(runs[0].manifest["dataset"]["sizes"]["test"])


def excludes_zero_text(d: Difference) -> str:
    return {1: "yes (+)", -1: "yes (-)", 0: "no"}[d.sign]


def difference_columns(diffs: dict[str, Difference], name: str = "diff",
                       digits: int = 2) -> tuple[dict[str, Any], dict[str, str]]:
    """(numeric, display) cells of one table row for the differences of `RunComparer.compare`, named
    '<metric> <name>' (e.g. 'mAUC minus full').

    numeric: '<m> <name>', '... lo', '... hi', '... sd (seeds)', '<m> CI excludes 0', '<m> CI method' per metric.
    display:
    '<m> <name> [95% CI]', '<m> <name>: seeds mean ± sd' (the per-seed differences; the difference of the
    seed means where the sides ran different seeds) and 'CI excludes 0 (mAUC, mAP)': yes (+) / yes (-) / no."""
    numeric: dict[str, Any] = {}
    display: dict[str, str] = {}
    for m, d in diffs.items():
        numeric |= {f"{m} {name}": d.diff, f"{m} {name} lo": d.lo, f"{m} {name} hi": d.hi,
                    f"{m} {name} sd (seeds)": d.seed_sd, f"{m} CI excludes 0": d.excludes_zero,
                    f"{m} CI method": d.method}
        display[f"{m} {name} [95% CI]"] = (f"{d.diff:+.{digits}f} [{d.lo:+.{digits}f}, {d.hi:+.{digits}f}]"
                                           if np.isfinite(d.diff) else NA)
        sd = f" ± {d.seed_sd:.{digits}f}" if len(d.seed_diffs) > 1 else ""
        display[f"{m} {name}: seeds mean ± sd"] = f"{d.diff:+.{digits}f}{sd}" if np.isfinite(d.diff) else NA
    display["CI excludes 0 (mAUC, mAP)"] = ", ".join(excludes_zero_text(d) for d in diffs.values())
    return numeric, display


def difference_frame(groups: Mapping[str, Sequence[RunLike]], reference: str, comparer: RunComparer,
                     name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(numeric, display) indexed by group key: every group minus `reference` (difference_columns, named
    `name`), and 'seeds' (runs in the group). The reference row has no differences and says 'reference'."""
    numeric, display = {}, {}
    for key, runs in groups.items():
        if key == reference:
            numeric[key], display[key] = {}, {"CI excludes 0 (mAUC, mAP)": "reference"}
        else:
            numeric[key], display[key] = difference_columns(comparer.compare(runs, groups[reference]), name)
        numeric[key]["seeds"] = display[key]["seeds"] = len(runs)
    full = next((k for k in groups if k != reference), reference)  # a row with every column, in order
    return (pd.DataFrame.from_dict(numeric, orient="index")[list(numeric[full])],
            pd.DataFrame.from_dict(display, orient="index")[list(display[full])].fillna("-"))
