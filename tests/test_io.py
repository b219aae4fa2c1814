"""ctranscnn.io: atomic writes leave no partial file, respect the umask, and JSON stays valid for NaN/inf."""
import json
import os
import stat

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from ctranscnn import io


def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_error_keeps_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half writ")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old\n"
    assert _listing(tmp_path) == ["table.csv"]


def test_error_on_new_file_leaves_nothing(tmp_path):
    class Unwritable:
        def __str__(self):
            raise ValueError("cannot encode")

    with pytest.raises(ValueError):
        io.write_csv(pd.DataFrame({"a": [Unwritable()]}), tmp_path / "sub" / "x.csv")
    assert _listing(tmp_path / "sub") == []


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        written = [io.atomic_write_text(tmp_path / "a.txt", "x"), io.atomic_write_bytes(tmp_path / "b.bin", b"x"),
                   io.write_json(tmp_path / "c.json", {}), io.write_csv(pd.DataFrame({"a": [1]}), tmp_path / "d.csv")]
        with io.atomic_path(tmp_path / "e.pt") as tmp:
            tmp.write_bytes(b"x")
        written.append(tmp_path / "e.pt")
        # the oracle: what a plain open() creates under the same umask
        (tmp_path / "plain").write_text("x")
    finally:
        os.umask(old)
    expected = stat.S_IMODE((tmp_path / "plain").stat().st_mode)
    assert expected == 0o666 & ~umask
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in written} == {p.name: expected for p in written}


def test_json_nan_and_numpy_are_valid_json(tmp_path):
    obj = {"auc": float("nan"), "inf": np.float32(np.inf), "neg": -float("inf"), "n": np.int64(3),
           "arr": np.array([0.5, np.nan]), "t": (1, 2.5), np.int64(7): True, "path": tmp_path, "ok": np.bool_(True)}
    path = io.write_json(tmp_path / "m.json", obj)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text and text.endswith("}\n")
    back = json.loads(text, parse_constant=lambda c: pytest.fail(f"invalid JSON constant {c}"))
    assert back == {"auc": None, "inf": None, "neg": None, "n": 3, "arr": [0.5, None], "t": [1, 2.5], "7": True,
                    "path": str(tmp_path), "ok": True}


def test_write_csv_defaults_and_overrides(tmp_path):
    frame = pd.DataFrame({"a": [1.0 / 3, 2.0], "b": ["x", "y"]})
    io.write_csv(frame, tmp_path / "t.csv", float_format="%.3g")
    assert (tmp_path / "t.csv").read_bytes() == b"a,b\n0.333,x\n2,y\n"
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "t.csv"), frame.round(3))


def test_text_is_written_byte_for_byte(tmp_path):
    io.atomic_write_text(tmp_path / "t.txt", "é\nno final newline")
    assert (tmp_path / "t.txt").read_bytes() == "é\nno final newline".encode("utf-8")


def test_save_figure_writes_png_and_pdf_and_closes(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    paths = io.save_figure(fig, tmp_path / "f" / "line", dpi=40, close=True)
    assert set(paths) == {"png", "pdf"}
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths["pdf"].read_bytes()[:5] == b"%PDF-"
    assert not plt.fignum_exists(fig.number)
    assert _listing(tmp_path / "f") == ["line.pdf", "line.png"]
