"""Notebooks: generated files are up to date, each has a papermill `parameters` cell whose names match what
reproduce.sh passes, the data section writes its tables and figures on a tiny phantom, and the training notebook,
executed by papermill from notebooks/ (where Jupyter starts the kernel), finds the data and shows its plan, named
headings and sentences that quote its own tables."""
from __future__ import annotations

import ast
import importlib.util
import json
import os
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
    # ... and the protocol change (no authors' lists: patient split) is a fallback, listed first in REPORT.md.
    assert "split 'paper'" in (tmp_path / "results" / "fallbacks.csv").read_text()


def test_context_rejects_bad_parameters(tmp_path):
    with pytest.raises(ValueError, match="profile"):
        NotebookContext.from_params(notebook="x", profile="fast")
    with pytest.raises(FileNotFoundError, match="NIH_ROOT"):
        NotebookContext.from_params(notebook="x", nih_root=str(tmp_path / "missing"), results_dir=str(tmp_path))


def _outputs(path: Path) -> str:
    """Every text a person sees in an executed notebook: markdown cells, streams, markdown/plain/HTML outputs."""
    nb = json.loads(path.read_text())
    parts = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            parts.append("".join(cell["source"]))
        for out in cell.get("outputs", []):
            parts.append("".join(out.get("text", "")))
            for kind in ("text/markdown", "text/plain", "text/html"):
                parts.append("".join(out.get("data", {}).get(kind, "")))
    return "\n".join(parts)


@pytest.mark.slow
def test_train_notebook_from_the_notebooks_folder_at_smoke_size(tmp_path, monkeypatch, capfd):
    import papermill as pm

    from ctranscnn.phantom import generate_cxr14
    from ctranscnn.report.tables import read_table

    generate_cxr14(tmp_path / "data" / "cxr14-phantom", n=160, size=32, seed=0, workers=1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    rel = os.path.relpath(tmp_path, REPO)  # right from the repository root, wrong from notebooks/ unless resolved
    out = tmp_path / "02_train.ipynb"
    pm.execute_notebook(str(REPO / "notebooks" / "02_train.ipynb"), str(out), cwd=str(REPO / "notebooks"),
                        parameters={"profile": "smoke", "data_dir": f"{rel}/data", "runs_dir": f"{rel}/runs",
                                    "results_dir": f"{rel}/results", "figures_dir": f"{rel}/figures"},
                        progress_bar=False)
    text = _outputs(out)
    assert "datasets: ['cxr14-phantom" in text  # found the data although the kernel started in notebooks/
    # The plan, before training: rows, their runs' status, and the recipe diff of one run.
    assert "#### Plan: the runs this notebook needs" in text and "3 table row(s), 2 run(s): 2 to train" in text
    # 'trained now': the plan was made before training (afterwards the status would read 'reused').
    assert "split table: image" in text and "trained now" in text and "same run as 'main'" in text
    assert "Effective configuration of one run" in text and "data.image_size" in text
    # Progress: every epoch line names its run. Worker processes write to the kernel's file descriptor, which
    # Jupyter shows in the notebook and pytest's fd capture may take first: read both.
    text += capfd.readouterr().out
    epochs = [line for line in text.splitlines() if "epoch 1/2" in line]
    assert epochs and all(line.startswith("[cxr14-phantom_ctranscnn_micro_") for line in epochs)
    assert sum("done: test mean AUC" in line for line in text.splitlines()) == 2
    # Named headings, no dictionary keys, and sentences that quote the numbers of the tables written.
    for title in ("#### Table: CTransCNN test metrics", "#### Table: CTransCNN per-class test AUC",
                  "#### Figure: training curves", "#### Figure: CTransCNN ROC curve per class",
                  "#### Table: leaky image-level split against the leak-free patient split"):
        assert title in text, title
    assert "**fig_" not in text and "**main**" not in text
    main = read_table(tmp_path / "results" / "tables" / "02_main_results_cxr14-phantom.csv")[0].set_index("checkpoint")
    assert f"The best-validation checkpoint reaches a test mean AUC of {main.loc['best', 'mAUC']:.2f}%" in text
    split = read_table(tmp_path / "results" / "tables" / "02_split_effect_cxr14-phantom.csv")[0]
    assert f"the mean AUC reads {split['mAUC minus patient-level'].iloc[0]:+.2f} points" in text
    assert "**Caveats.** Synthetic (phantom) data" in text and "2 x 2 token grid" in text
    assert "## Files written by this notebook" in text and "02_main_results_cxr14-phantom.csv" in text
