"""The claims table: each claim -> what this run measured -> verdict. Computed from run folders, never by hand.

Claims (the paper's, Wu et al. 2023): CTransCNN beats each baseline on each dataset; each of MMAEF, MBR and
IIM improves the full model (removing it lowers the mean AUC). Ours: an image-level split (test patients also in
training) inflates the test AUC against a patient-level split. Each claim names the side it says scores higher;
the measurement is that side minus the other in mean AUC (the paper's headline metric, which decides the
verdict) and mAP, with the 95% CI of ctranscnn.report.compare (paired over test images where both sides share
them, combined over seeds):
  supported                    the mean-AUC CI lies above 0
  contradicted                 the mean-AUC CI lies below 0
  not resolved at this budget  the CI contains 0
Every row says the data and the training budget it rests on: on phantom data the table checks the pipeline's
ability to tell models apart; on real data under PROFILE=paper it is the reproduction verdict.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import pandas as pd

from ctranscnn.report.compare import RunComparer, RunLike, difference_columns, n_test_images
from ctranscnn.stats import Difference

SUPPORTED, CONTRADICTED, NOT_RESOLVED = "supported", "contradicted", "not resolved at this budget"
# The ablation variants of the paper's three modules (ctranscnn.report.plan.ABLATION keys) and the full model.
FULL = "CTransCNN (full)"
MODULES = {"MMAEF": "w/o MMAEF", "MBR": "w/o MBR", "IIM": "w/o IIM"}
SHOWN = ("mAUC diff [95% CI]", "mAP diff [95% CI]", "mAUC diff: seeds mean ± sd")  # display columns of the measurement


@dataclass(frozen=True)
class Claim:
    """One claim: `higher` (runs, one per seed) should score above `lower` on `data`."""

    claim: str
    source: str  # 'paper' | 'ours'
    data: str  # the dataset label, e.g. 'cxr14-phantom (synthetic NIH ChestX-ray14 stand-in)'
    higher: Sequence[RunLike]
    lower: Sequence[RunLike]


def verdict(d: Difference) -> str:
    """From the CI of (claimed higher) minus (claimed lower)."""
    return {1: SUPPORTED, -1: CONTRADICTED, 0: NOT_RESOLVED}[d.sign]


def budget(runs: Sequence[RunLike]) -> str:
    """The training budget a row rests on, from the first run's manifest: profile, epochs, image size, sizes."""
    m = runs[0].manifest
    sizes, cfg = m["dataset"]["sizes"], m["config"]
    return (f"profile {m['profile']}: {m['epochs_done']} epochs at {cfg['data']['image_size']} px, "
            f"{sizes['train']} train / {sizes['test']} test images")


def comparison_claims(data: str, runs: Mapping[str, Sequence[RunLike]], ours: str) -> list[Claim]:
    """'CTransCNN beats <baseline>' for every other model in `runs` (model name -> runs), `ours` the CTransCNN key."""
    name = lambda rs: rs[0].manifest["model"]  # noqa: E731  (the run's resolved name, e.g. resnet50_mini)
    return [Claim(f"CTransCNN beats {name(rs)}", "paper", data, runs[ours], rs)
            for model, rs in runs.items() if model != ours]


def ablation_claims(data: str, runs: Mapping[str, Sequence[RunLike]]) -> list[Claim]:
    """'<module> improves the full model' for each module whose ablation variant (MODULES) is in `runs`."""
    return [Claim(f"{module} improves the full model (removing it lowers mean AUC)", "paper", data, runs[FULL],
                  runs[variant]) for module, variant in MODULES.items() if variant in runs]


def split_claim(data: str, leaky: Sequence[RunLike], patient: Sequence[RunLike]) -> Claim:
    return Claim("An image-level split inflates test AUC (vs a patient-level split)", "ours", data, leaky, patient)


def claims_table(claims: Sequence[Claim], comparer: RunComparer) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(numeric, display) of the claims table, one row per claim, for `write_table`."""
    numeric, display = [], []
    for c in claims:
        diffs = comparer.compare(c.higher, c.lower)
        num, disp = difference_columns(diffs)
        tested = (f"{n_test_images(c.higher)}" if diffs["mAUC"].paired else
                  f"{n_test_images(c.higher)} vs {n_test_images(c.lower)} (different test sets)")
        head = {"claim": c.claim, "source": c.source}
        tail = {"seeds": f"{len(c.higher)} vs {len(c.lower)}", "test images": tested, "data": c.data,
                "budget": budget(c.higher), "verdict": verdict(diffs["mAUC"])}
        numeric.append(head | num | tail)
        display.append(head | {k: disp[k] for k in SHOWN} | tail)
    return pd.DataFrame(numeric), pd.DataFrame(display)


def claims_notes(comparer: RunComparer) -> list[str]:
    """Footer lines of the claims table: the verdict rule and how the CIs were made."""
    return ["measured: (side the claim says is higher) minus (the other), in points; seeds: runs per side",
            f"verdict on the mean-AUC CI: above 0 {SUPPORTED}; below 0 {CONTRADICTED}; containing 0 {NOT_RESOLVED}",
            comparer.note()]
