"""What a notebook needs from its `parameters` cell: resolved datasets, output folders, provenance, skips.

Every notebook starts with `ctx = NotebookContext.from_params(...)`; tables and figures go through
`ctx.table` / `ctx.figure`, so every file gets the same provenance footer and lands in the same place.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from ctranscnn.data.splits import SPLIT_KINDS
from ctranscnn.engine.config import PROFILES as ENGINE_PROFILES
from ctranscnn.io import atomic_write_text, save_figure
from ctranscnn.report.provenance import Provenance
from ctranscnn.report.tables import write_table

PROFILES = tuple(ENGINE_PROFILES)  # defined once, in engine.config
DRY_RUN_NOTE = ("DRY RUN: the paper profile's plan, configs and models for a handful of optimizer steps on phantom "
                "data; it tests the wiring, and none of its numbers is a result")
SPLITS = SPLIT_KINDS


@dataclass(frozen=True)
class DatasetSource:
    """One dataset a notebook works on. `kind` is the loader of ctranscnn.data.splits.load_splits."""

    name: str  # file-name key: nih | ranzcr | tcmtd | cxr14-phantom | cxr11-phantom
    kind: str  # nih | ranzcr | list
    root: Path
    description: str  # what the data is, for table headers and footers
    lists: Path | None = None  # the authors' split lists (split 'paper')
    paper_key: str | None = None  # column of paper_mean_auc.csv this dataset stands in for
    phantom: bool = False
    image_size: int | None = None  # run at this size instead of the profile's (ChestMNIST: the file's size)
    missing: str = "error"  # data.missing: 'skip' keeps the listed images present (partial NIH download)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.description})"

    def splits_available(self) -> tuple[str, ...]:
        out = ("paper",) if self.lists is not None else ()
        out += ("official",) if self.kind in ("nih", "chestmnist") else ()
        return out + (("patient",) if self.kind in ("nih", "ranzcr") else ()) + ("image",)


# Phantom data sets written by `python -m ctranscnn phantom` into data_dir/<name>:
# name -> (loader kind, description, paper column it stands in for, lists in its root).
PHANTOMS = {
    "cxr14-phantom": ("nih", "synthetic NIH ChestX-ray14 stand-in", "nih14_subset", False),
    "cxr11-phantom": ("ranzcr", "synthetic ChestX-ray11/RANZCR stand-in", "chestxray11", False),
    "tongue-phantom": ("list", "synthetic TCMTD tongue stand-in", None, True),
}


@dataclass
class NotebookContext:
    profile: str
    split: str
    seeds: list[int]
    device: str
    datasets: list[DatasetSource]
    runs_dir: Path
    results_dir: Path
    figures_dir: Path
    notebook: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    fallbacks: list[tuple[str, str]] = field(default_factory=list)
    dry_run: bool = False  # the paper profile's plan with a handful of steps (DRY_RUN=1): numbers mean nothing
    quirks: bool | None = None  # notebook 03's quirks study (QUIRKS=1 / 0); None: the profile's default (plan.py)

    @classmethod
    def from_params(
        cls, *, notebook: str, profile: str = "demo", split: str = "paper", seeds: Sequence[int] = (0,),
        device: str = "auto", data_dir: str = "data", nih_root: str = "", ranzcr_root: str = "",
        tcmtd_list: str = "", authors_lists: str = "", runs_dir: str = "runs", results_dir: str = "results",
        figures_dir: str = "figures", chestmnist: str = "", dry_run: bool = False, nih_missing: str = "error",
        quirks: bool | None = None,
    ) -> "NotebookContext":
        """Resolve the datasets: real ones where a root (or a ChestMNIST .npz) is given, else the phantoms found in
        `data_dir`. Whatever is missing is recorded as skipped with the reason (shown in the report)."""
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        ctx = cls(profile, split, [int(s) for s in seeds], device, [], Path(runs_dir), Path(results_dir),
                  Path(figures_dir), notebook, dry_run=bool(dry_run), quirks=quirks)
        lists = Path(authors_lists) if authors_lists else None
        real = {"nih": nih_root, "ranzcr": ranzcr_root}
        if any(real.values()) or tcmtd_list or chestmnist:
            for name, root, desc, paper_key, sub in (
                ("nih", nih_root, "real NIH ChestX-ray14", "nih14_subset", "chest14"),
                ("ranzcr", ranzcr_root, "real ChestX-ray11 = RANZCR CLiP", "chestxray11", "chest11"),
            ):
                if not root:
                    ctx.skip(name, f"no real {desc} data given ({name.upper()}_ROOT unset)")
                elif not Path(root).is_dir():
                    raise FileNotFoundError(f"{name.upper()}_ROOT={root}: not a folder")
                else:
                    own = lists / sub if lists is not None and (lists / sub).is_dir() else lists
                    ctx.datasets.append(DatasetSource(name, name, Path(root), ctx.described(desc), own, paper_key,
                                                      missing=(nih_missing or "error") if name == "nih" else "error"))
        else:
            for name, (kind, desc, paper_key, has_lists) in PHANTOMS.items():
                root = Path(data_dir) / name
                if root.is_dir():
                    ctx.datasets.append(DatasetSource(name, kind, root, desc, root if has_lists else None,
                                                      paper_key, phantom=True))
                else:
                    ctx.skip(name, f"phantom data not found at {root} (run `python -m ctranscnn phantom`)")
        if chestmnist:
            ctx.datasets.append(chestmnist_source(Path(chestmnist)))
        if tcmtd_list:
            ctx.datasets.append(DatasetSource("tcmtd", "list", Path(tcmtd_list),
                                              ctx.described("private TCMTD tongue images"), Path(tcmtd_list)))
        else:
            ctx.skip("tcmtd", "TCMTD (tongue images) is private; TCMTD_LIST unset")
        return ctx

    def described(self, desc: str) -> str:
        """A real dataset's description; in a dry run, what the data really is (phantoms in that layout)."""
        return f"phantom data in the layout of {desc} (dry run)" if self.dry_run else desc

    def split_for(self, ds: DatasetSource) -> str | None:
        """The requested split if `ds` has it, else its leak-free fallback (recorded), else None.

        `paper` (the default) means the authors' lists on real data; a phantom with patients has no such
        lists and uses the leak-free `patient` split, so our own numbers are never inflated by leakage."""
        have = ds.splits_available()
        if ds.kind == "chestmnist" and self.split != "image":
            if self.split != "official":
                self.fallback(f"{ds.name} split {self.split!r}", f"{ds.label} uses MedMNIST's own split ('official')")
            return "official"
        if self.split == "paper" and ds.phantom and "patient" in have:
            self.fallback(f"{ds.name} split 'paper'", f"{ds.label} has no authors' lists; its numbers use the "
                          "leak-free 'patient' split (the split table compares it with an image-level split)")
            return "patient"
        if self.split in have:
            return self.split
        if self.profile == "paper" and self.split == "paper":
            # The paper profile's tables stand beside the paper's numbers: never change their protocol silently.
            raise ValueError(f"PROFILE=paper SPLIT=paper: {ds.label} has no authors' split lists, so the paper's "
                             "protocol cannot be run; set AUTHORS_LISTS=<folder with the authors' lists (chest14/, "
                             "chest11/)>, or choose another split explicitly (SPLIT=patient, official or image)")
        fallback = "patient" if "patient" in have else (have[0] if have else None)
        self.fallback(f"{ds.name} split {self.split!r}",
                      f"not available for {ds.label} (has {', '.join(have) or 'none'}); using {fallback!r}")
        return fallback

    def fallback(self, what: str, why: str) -> None:
        """A protocol change (e.g. another split than asked for): printed loudly in the notebook, recorded in
        results/fallbacks.csv and listed at the top of REPORT.md."""
        print(f"FALLBACK {what}: {why}")
        self.fallbacks.append((what, why))
        self._record("fallbacks.csv", what, why)

    def skip(self, what: str, why: str) -> None:
        """Say why something is left out, in the notebook output and in results/skipped.csv."""
        print(f"SKIPPED {what}: {why}")
        self.skipped.append((what, why))
        self._record("skipped.csv", what, why)

    def _record(self, name: str, what: str, why: str) -> None:
        path = self.results_dir / name
        old = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["notebook", "what", "why"])
        row = pd.DataFrame([{"notebook": self.notebook, "what": what, "why": why}])
        new = pd.concat([old, row]).drop_duplicates(["what", "why"])  # every notebook re-states data-level skips
        atomic_write_text(path, new.to_csv(index=False, lineterminator="\n"))

    def provenance(self, data: str | DatasetSource | None = None, split: str | None = None,
                   notes: Sequence[str] = ()) -> Provenance:
        if data is None:
            data = "; ".join(d.label for d in self.datasets) or "none"
        elif isinstance(data, DatasetSource):
            data = data.label
        notes = [*notes, self.metric_note] + ([DRY_RUN_NOTE] if self.dry_run else [])
        profile = f"{self.profile} (DRY RUN)" if self.dry_run else self.profile
        return Provenance.collect(data, split or self.split, profile, self.seeds, notes)

    @property
    def metric_note(self) -> str:
        """The profile's convention for a label column with one value on the test set (eval.single_class)."""
        from ctranscnn.engine.config import load_config

        if load_config(None, {"profile": self.profile}).eval.single_class == "fifty":
            return "a class with one label value on the test set counts as AUC 50 (the authors' convention)"
        return "a class with one label value on the test set is left out of the mean AUC (eval.single_class=skip)"

    def table(self, df: pd.DataFrame, name: str, provenance: Provenance, **kwargs) -> dict[str, Path]:
        """Write results/tables/<notebook prefix>_<name>.{csv,md,tex} (see write_table for kwargs)."""
        return write_table(df, self.results_dir / "tables" / f"{self.prefix}_{name}", provenance, **kwargs)

    def figure(self, fig, name: str) -> dict[str, Path]:
        """Write figures/<notebook prefix>_<name>.{png,pdf}; the figure stays open for inline display."""
        return save_figure(fig, self.figures_dir / f"{self.prefix}_{name}")

    @property
    def prefix(self) -> str:
        return self.notebook.split("_")[0] if self.notebook else "xx"


def chestmnist_source(path: Path) -> DatasetSource:
    """ChestMNIST (real NIH ChestX-ray14 images, resized by MedMNIST), to be run at the file's own size."""
    from ctranscnn.data.chestmnist import find_npz, npz_size

    if not path.exists():
        raise FileNotFoundError(f"CHESTMNIST={path}: no such file or folder")
    size = npz_size(find_npz(path))
    return DatasetSource("chestmnist", "chestmnist", path, f"real NIH ChestX-ray14 as ChestMNIST, {size} px",
                         paper_key="nih14_subset", image_size=size)
