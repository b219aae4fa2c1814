"""Notebooks: generated files are up to date, each has a papermill `parameters` cell whose names match what
reproduce.sh passes, and the data section writes its tables and figures on a tiny phantom."""
from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import nbformat  # noqa: E402
import pytest  # noqa: E402

from ctranscnn.report.context import NotebookContext  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("0*.ipynb"))


def _builder():
    spec = importlib.util.spec_from_file_location("build_notebooks", REPO / "notebooks" / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_notebooks_equal_the_generator_output():
    builder = _builder()
    assert [p.stem for p in NOTEBOOKS] == list(builder.NOTEBOOKS)
    for path in NOTEBOOKS:
        title, cells = builder.NOTEBOOKS[path.stem]
        fresh = nbformat.writes(builder.build(path.stem, title, cells))
        assert path.read_text() == fresh + ("\n" if not fresh.endswith("\n") else ""), \
            f"{path.name} is stale: run python notebooks/build_notebooks.py"


def test_parameters_cell_matches_reproduce_sh():
    script = (REPO / "reproduce.sh").read_text()
    passed = set(re.findall(r"-p (\w+) ", script)) | set(re.findall(r'-y "(\w+):', script))
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{path.name}: expected one cell tagged 'parameters'"
        names = {t.id for node in ast.parse(tagged[0].source).body for t in node.targets}
        assert names == passed, f"{path.name}: parameters {sorted(names)} vs reproduce.sh {sorted(passed)}"
        # Every parameter reaches the notebook context.
        setup = nb.cells[nb.cells.index(tagged[0]) + 1].source
        assert all(f"{n}={n}" in setup for n in names), f"{path.name}: a parameter is not passed to the context"
        nbformat.validate(nb)


def test_data_section_on_tiny_phantom(tmp_path):
    from ctranscnn.phantom import generate_cxr14
    from ctranscnn.report.sections import data_section

    generate_cxr14(tmp_path / "data" / "cxr14-phantom", n=40, size=32, seed=0, workers=1)
    ctx = NotebookContext.from_params(notebook="01_data", profile="smoke", split="paper",
                                      data_dir=str(tmp_path / "data"), results_dir=str(tmp_path / "results"),
                                      figures_dir=str(tmp_path / "figures"), runs_dir=str(tmp_path / "runs"))
    assert [d.name for d in ctx.datasets] == ["cxr14-phantom"]
    out = data_section(ctx, ctx.datasets[0])
    assert out["summary"].set_index("split").loc["total", "images"] == 40
    tables = sorted(p.name for p in (tmp_path / "results" / "tables").iterdir())
    for key in ("summary", "prevalence", "cardinality", "leakage"):
        for ext in ("csv", "md", "tex"):
            assert f"01_{key}_cxr14-phantom.{ext}" in tables
    for key in ("prevalence", "cooccurrence", "samples"):
        for ext in ("png", "pdf"):
            assert (tmp_path / "figures" / f"01_{key}_cxr14-phantom.{ext}").stat().st_size > 1000
    # Why things were left out is on record: no paper split for a phantom, other phantoms absent, TCMTD private.
    skipped = (tmp_path / "results" / "skipped.csv").read_text()
    for what in ("cxr11-phantom", "tcmtd"):
        assert what in skipped


def test_context_rejects_bad_parameters(tmp_path):
    with pytest.raises(ValueError, match="profile"):
    # ... and the protocol change (no authors' lists: patient split) is a fallback, listed first in REPORT.md.
    assert "split 'paper'" in (tmp_path / "results" / "fallbacks.csv").read_text()
        NotebookContext.from_params(notebook="x", profile="fast")
    with pytest.raises(FileNotFoundError, match="NIH_ROOT"):
        NotebookContext.from_params(notebook="x", nih_root=str(tmp_path / "missing"), results_dir=str(tmp_path))
