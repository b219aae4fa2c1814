"""Table writers: three formats with provenance footers, booktabs LaTeX, mean ± sd and CI formatting."""
from __future__ import annotations

import statistics
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctranscnn.io import atomic_path
from ctranscnn.report.provenance import Provenance, git_commit
from ctranscnn.report.tables import fmt_ci, fmt_mean_sd, read_table, summarise_seeds, write_table

PROV = Provenance(data="nih14-phantom", split="patient", profile="smoke", seeds=(0, 1), commit="abc123", date="2024-01-02")


def test_write_table_three_formats_with_footer(tmp_path):
    df = pd.DataFrame({"model": ["ctrans_cnn", "r#50"], "mAUC": [81.23456, np.nan], "n_runs": [2, 1]})
    paths = write_table(df, tmp_path / "sub" / "main", PROV, caption="Mean AUC 100%")
    assert {k: p.name for k, p in paths.items()} == {"csv": "main.csv", "md": "main.md", "tex": "main.tex"}
    for p in paths.values():
        text = p.read_text()
        for line in ("nih14-phantom", "patient", "smoke", "0, 1", "abc123", "2024-01-02"):
            assert line in text, f"{p.name} lacks {line!r}"
    # No temp files left behind.
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["main.csv", "main.md", "main.tex"]

    back, footer = read_table(paths["csv"])
    pd.testing.assert_frame_equal(back, df)  # full precision, '#' inside a cell survives
    assert footer == {"data": "nih14-phantom", "split": "patient", "profile": "smoke", "seeds": "0, 1",
                      "git commit": "abc123", "date": "2024-01-02"}

    md = paths["md"].read_text()
    assert "| ctrans_cnn | 81.23 | 2 |" in md and "| r#50 | n/a | 1 |" in md
    assert "| --- | ---: | ---: |" in md

    tex = paths["tex"].read_text()
    rules = [tex.index(r) for r in (r"\toprule", r"\midrule", r"\bottomrule")]
    assert rules == sorted(rules)
    assert r"ctrans\_cnn & 81.23 & 2 \\" in tex and r"r\#50" in tex
    assert r"\caption{Mean AUC 100\%}" in tex and "n\\_runs" in tex
    assert tex.index(r"\bottomrule") < tex.index("abc123") < tex.index(r"\end{table}")


def test_display_frame_goes_to_md_and_tex_csv_keeps_numbers(tmp_path):
    numeric, display = summarise_seeds(
        [{"model": "a", "mAUC": 80.0}, {"model": "a", "mAUC": 82.0}, {"model": "b", "mAUC": 70.0}],
        by=["model"], metrics=["mAUC"])
    paths = write_table(numeric, tmp_path / "t", PROV, display=display)
    assert "| a | 81.00 ± 1.41 |" in paths["md"].read_text()
    assert r"a & 81.00 $\pm$ 1.41 \\" in paths["tex"].read_text()
    back, _ = read_table(paths["csv"])
    assert back.loc[0, "mAUC"] == 81.0 and back.loc[0, "mAUC_sd"] == pytest.approx(statistics.stdev([80, 82]))
    assert back["n_runs"].tolist() == [2, 1] and np.isnan(back.loc[1, "mAUC_sd"])


def test_fmt_mean_sd_matches_sample_sd():
    values = [81.3, 79.9, 80.4]
    expected = f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"
    assert fmt_mean_sd(values) == expected == "80.53 ± 0.71"
    assert fmt_mean_sd([75.123], digits=1) == "75.1"
    assert fmt_mean_sd([np.nan, 70.0, 72.0]) == "71.00 ± 1.41"  # NaN seeds (e.g. unscoreable) ignored
    assert fmt_mean_sd([]) == "n/a"


def test_fmt_ci():
    assert fmt_ci(78.456, 76.01, 80.949) == "78.46 [76.01, 80.95]"
    assert fmt_ci(78.456, np.nan, np.nan) == "78.46"
    assert fmt_ci(np.nan, 1, 2) == "n/a"


def test_summarise_seeds_against_groupby():
    rng = np.random.default_rng(0)
    runs = pd.DataFrame({"dataset": ["d1"] * 3 + ["d2"] * 2, "model": ["m"] * 5, "seed": [0, 1, 2, 0, 1],
                         "mAUC": rng.uniform(50, 90, 5), "mAP": rng.uniform(10, 40, 5)})
    numeric, display = summarise_seeds(runs, by=["dataset", "model"], metrics=["mAUC", "mAP"])
    d1 = runs[runs.dataset == "d1"]
    assert numeric.loc[0, "mAP"] == pytest.approx(d1["mAP"].mean())
    assert numeric.loc[0, "mAP_sd"] == pytest.approx(statistics.stdev(d1["mAP"]))
    assert display.loc[1, "mAUC"] == fmt_mean_sd(runs[runs.dataset == "d2"]["mAUC"])
    with pytest.raises(KeyError, match="OF1"):
        summarise_seeds(runs, by=["model"], metrics=["OF1"])


def test_atomic_path_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "x.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.csv"]


def test_provenance_collect_records_head_commit():
    head = subprocess.run(["git", "-C", str(Path(__file__).parents[1]), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    prov = Provenance.collect("d", "s", "smoke", seeds=[3])
    assert prov.commit.startswith(head) and prov.commit == git_commit()
    assert prov.date.endswith("UTC") and "seeds: 3" in prov.lines()


def test_regenerated_outputs_do_not_make_the_checkout_dirty(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    for rel in ("code.py", "results/t.csv", "figures/f.png"):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_text("v1")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    (tmp_path / "results" / "t.csv").write_text("v2")  # reproduce.sh rewriting its own outputs
    (tmp_path / "figures" / "f.png").write_text("v2")
    assert not git_commit(tmp_path).endswith("-dirty")
    (tmp_path / "code.py").write_text("v2")
    assert git_commit(tmp_path).endswith("-dirty")
