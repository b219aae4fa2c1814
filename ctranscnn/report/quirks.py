"""What the authors' code quirks cost (notebook 03, after the ablation): the quirks table and the metric-convention
table. Computed from run folders.

Quirks table: one row per `plan.QUIRKS` entry, the full model with some quirks fixed: runs trained with the row's
switches, scored at its fusion_weight (a row whose only change is fusion_weight rescores the branch logits in the
full model's own predictions files: no run of its own). Each row minus the full model in mean AUC and mAP with the
95% CI of report.compare (paired on the same test images, combined over seeds), and a verdict on the mean-AUC CI
by the claims table's rule: above 0 'helps', below 0 'hurts', containing 0 'not resolved at this budget'.

Metric conventions: the full model's predictions scored under eval.single_class skip and fifty, and their mAP with
tied scores as one step (sklearn's rule and ours) or broken for or against the positives (the range the authors'
unstable sort can land in); no retraining.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ctranscnn.engine.evaluation import read_branch_logits, sigmoid
from ctranscnn.metrics import POLICIES, convention_metrics
from ctranscnn.report.claims import NOT_RESOLVED
from ctranscnn.report.compare import RunComparer, RunLike, difference_frame
from ctranscnn.report.plan import Quirk
from ctranscnn.report.tables import fmt_mean_sd

VERDICTS = {1: "helps", -1: "hurts", 0: NOT_RESOLVED}  # keyed by Difference.sign of (fixed) minus (full)
DIFF = "minus full"


class Rescored:
    """A CTransCNN run scored at another test-time fusion weight: sigmoid(w * z_cnn + (1 - w) * z_trans) from the
    branch logits of its predictions files (CTransCNN.fuse_logits on the stored logits). A RunLike for
    report.compare; its `path` names the rescoring, so the comparer keeps its replicates apart from the run's."""

    def __init__(self, run: Any, fusion_weight: float):
        self.run, self.fusion_weight = run, float(fusion_weight)
        self.path = f"{run.path} (rescored at fusion_weight={self.fusion_weight:g})"
        self.manifest = run.manifest

    @property
    def seed(self) -> int:
        return self.run.seed

    def predictions(self, split: str = "test", which: str = "best") -> tuple[np.ndarray, np.ndarray]:
        y, _ = self.run.predictions(split, which)
        path = self.run.predictions_file(split, which)
        z = read_branch_logits(path, list(self.manifest["classes"]))
        if set(z) != {"cnn", "trans"}:
            raise ValueError(f"{path}: fusion_weight rescoring needs the cnn and trans branch logits, found "
                             f"{sorted(z)}")
        w = self.fusion_weight
        return y, sigmoid(w * z["cnn"] + (1.0 - w) * z["trans"]).astype(np.float64)


def scored_runs(trained: Mapping[str, Sequence[Any]], quirks: Mapping[str, Quirk]) -> dict[str, list[RunLike]]:
    """Each row's runs as the table scores them: rescored where the row sets a fusion_weight."""
    return {label: [r if quirks[label].fusion_weight is None else Rescored(r, quirks[label].fusion_weight)
                    for r in trained[label]] for label in quirks}


def _runs_text(q: Quirk) -> str:
    own = "own runs" if q.overrides else "the full model's runs"
    return own if q.fusion_weight is None else f"{own}, rescored at fusion_weight={q.fusion_weight:g}"


def quirks_table(groups: Mapping[str, Sequence[RunLike]], quirks: Mapping[str, Quirk], comparer: RunComparer,
                 reference: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(numeric, display): per row 'quirk', 'fixed', 'runs', mean AUC and mAP (mean and sd over seeds), the
    difference to `reference` (report.compare.difference_frame, named 'minus full'), and 'verdict'."""
    points = {k: pd.DataFrame([comparer.replicates(r).point for r in rs]) for k, rs in groups.items()}
    head = pd.DataFrame({"quirk": list(groups), "fixed": [quirks[k].fixed for k in groups],
                         "runs": [_runs_text(quirks[k]) for k in groups]})
    numeric, display = head.copy(), head.copy()
    for m in ("mAUC", "mAP"):
        numeric[m] = [p[m].mean() for p in points.values()]
        numeric[f"{m}_sd"] = [p[m].std(ddof=1) if len(p) > 1 else np.nan for p in points.values()]
        display[m] = [fmt_mean_sd(p[m]) for p in points.values()]
    diff_numeric, diff_display = difference_frame(groups, reference, comparer, DIFF)
    numeric, display = numeric.join(diff_numeric, on="quirk"), display.join(diff_display, on="quirk")
    verdicts = ["reference" if k == reference else VERDICTS[comparer.compare(rs, groups[reference])["mAUC"].sign]
                for k, rs in groups.items()]  # replicates are cached: compare() only redoes the CI arithmetic
    numeric["verdict"] = display["verdict"] = verdicts
    return numeric, display


def quirks_notes(comparer: RunComparer) -> list[str]:
    return ["differences: each row minus the full model (the authors' code), paired on the same test images",
            f"verdict on the mean-AUC CI of (fixed) minus (full): above 0 helps; below 0 hurts; containing 0 "
            f"{NOT_RESOLVED}",
            "fusion_weight rows: the branch logits of the runs' predictions files re-fused at the row's weight (no "
            "retraining: fusion_weight only changes the test-time score); their checkpoint is the one the runs "
            "selected by validation mean AUC at fusion_weight 0.9",
            comparer.note()]


# ---------------------------------------------------------------- metric conventions

CONVENTIONS = {"skip": "skip: a class with one label value on the test set is left out of the means",
               "fifty": "fifty (the authors'): such a class counts AUC 50 and, without positives, AP 0"}
SCORES = ("mAUC", "mAP", "mAP ties optimistic", "mAP ties pessimistic", "classes in mAUC")


def conventions_table(predictions: Sequence[tuple[np.ndarray, np.ndarray]],
                      used: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(numeric, display) of the metric-convention table for one model's runs (one (y_true, probs) per seed):
    per single-class policy the mean AUC, the mAP with ties as one step, optimistic and pessimistic, and the
    classes the mean AUC covers (mean, and sd, over seeds); each minus the `used` policy's row; the share of
    positives tied with a negative."""
    per_seed = [convention_metrics(y, p) for y, p in predictions]
    numeric, display = [], []
    for policy in POLICIES:
        values = {s: np.array([m[policy][s] for m in per_seed]) for s in SCORES}
        own = {s: np.array([m[used][s] for m in per_seed]) for s in ("mAUC", "mAP")}
        row = {"convention": CONVENTIONS[policy], "used by these runs": "yes" if policy == used else "no"}
        num, disp = dict(row), dict(row)
        for s, v in values.items():
            num[s], num[f"{s}_sd"] = v.mean(), (v.std(ddof=1) if len(v) > 1 else np.nan)
            disp[s] = f"{v.mean():g}" if s == "classes in mAUC" else fmt_mean_sd(v)  # one test set: one count
        for s, v in own.items():
            num[f"{s} minus used"] = float(np.mean(values[s] - v))
            disp[f"{s} minus used"] = f"{num[f'{s} minus used']:+.2f}"
        tied = np.array([m["ties"]["tied positives %"] for m in per_seed])
        num["tied positives %"], disp["tied positives %"] = tied.mean(), f"{tied.mean():.1f}"
        numeric.append(num)
        display.append(disp)
    return pd.DataFrame(numeric), pd.DataFrame(display)


def conventions_notes(seeds: int, used: str) -> list[str]:
    return [f"the same test predictions of the full model ({seeds} seed(s)), rescored; no retraining; the runs' "
            f"own convention: eval.single_class={used}",
            "mAP: tied scores as one step (sklearn's average_precision_score, this artifact) and broken with the "
            "class's positives first (optimistic) or last (pessimistic): the range any tie-breaking sort, such as "
            "the authors' unstable argsort, can give",
            "tied positives %: positives whose score equals a negative's score in the same class",
            "values: mean ± sd over seeds (percent); 'minus used': each convention minus the runs' own"]
