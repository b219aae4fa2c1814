"""The CI output check: passes on a complete tree, names every missing or empty file."""
from __future__ import annotations

from ctranscnn.report.check import expected_files, main


def make_tree(tmp_path):
    results, figures = tmp_path / "results", tmp_path / "figures"
    files = expected_files(results, figures, ["a-phantom", "b-phantom"], "a-phantom")
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("x")
    return results, figures, files


def test_complete_tree_passes(tmp_path, capsys):
    results, figures, files = make_tree(tmp_path)
    assert main(["--results", str(results), "--figures", str(figures), "--datasets", "a-phantom", "b-phantom",
                 "--chest", "a-phantom"]) == 0
    assert f"{len(files)} of {len(files)}" in capsys.readouterr().out
    # per-dataset outputs for both datasets; comparison outputs for the chest one only
    names = {f.name for f in files}
    assert {"02_main_results_b-phantom.tex", "04_comparison_a-phantom.csv", "05_gradcam_a-phantom.pdf",
            "06_claims.md", "06_claims.csv", "06_claims.tex"} <= names
    assert "04_comparison_b-phantom.csv" not in names


def test_missing_and_empty_files_fail_by_name(tmp_path, capsys):
    results, figures, _ = make_tree(tmp_path)
    (figures / "04_radar_a-phantom.png").unlink()
    (results / "tables" / "02_runs_b-phantom.md").write_text("")
    assert main(["--results", str(results), "--figures", str(figures), "--datasets", "a-phantom", "b-phantom",
                 "--chest", "a-phantom"]) == 1
    err = capsys.readouterr().err
    assert "04_radar_a-phantom.png: missing" in err and "02_runs_b-phantom.md: empty" in err
