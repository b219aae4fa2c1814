"""Broken data as a user meets it: huge and empty images, blank patient ids, all named one-line errors."""
from __future__ import annotations

import json
import struct
import warnings
import zlib
from pathlib import Path

import pandas as pd
import pytest

from ctranscnn.cli import main
from ctranscnn.data.errors import DataError
from ctranscnn.data.splits import LeakageWarning, load_splits
from test_data_formats import write_nih, write_ranzcr, write_tongue


def huge_png(path: Path, side: int = 20_000) -> Path:
    """A valid PNG header claiming side x side grey pixels (400 MP, over Pillow's ~179 MP bomb limit) in 60 bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    return path


def test_decompression_bomb_is_a_named_data_error(tmp_path):
    from ctranscnn.data.transforms import read_image

    path = huge_png(tmp_path / "huge.png")
    with pytest.raises(DataError) as e:
        read_image(path)
    assert e.value.problems == [str(e.value)]
    assert str(e.value).startswith(f"{path}: image too large to decode (Image size (400000000 pixels) exceeds limit")
    assert "MAX_IMAGE_PIXELS" in str(e.value)


def test_data_check_decode_lists_the_huge_image_with_the_rest(tmp_path, capsys):
    root = write_nih(tmp_path / "nih")
    images = sorted(root.glob("images_*/images/*.png"))
    huge_png(images[3])
    images[5].write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    code = main(["data", "check", "--dataset", "nih", "--root", str(root), "--split", "patient", "--decode",
                 "--workers", "1", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and len(report["splits"]) == 3  # the report survives: counts and both problems
    assert [p.split(": ", 1)[0] for p in report["problems"]] == [str(images[3]), str(images[5])]
    assert "image too large to decode" in report["problems"][0]
    assert "unreadable or corrupt image" in report["problems"][1]


def test_bad_image_in_a_loader_worker_stays_a_one_line_error(tmp_path):
    from ctranscnn.data.dataset import ImageDataset, build_loader
    from ctranscnn.data.transforms import PreprocessConfig

    root = write_nih(tmp_path / "nih")
    records = load_splits("nih", root, split="patient", fractions=(0.5, 0.25, 0.25))["train"]
    huge_png(records.paths[1])
    loader = build_loader(ImageDataset(records, PreprocessConfig(size=16), train=False), batch_size=4,
                          shuffle=False, num_workers=1)
    with pytest.raises(DataError) as e:
        list(loader)
    assert e.value.problems == [f"{records.paths[1]}: " + e.value.problems[0].split(": ", 1)[1]]
    assert "\n" not in str(e.value) and "Traceback" not in str(e.value) and "too large" in str(e.value)


@pytest.mark.parametrize("dataset", ["nih", "ranzcr", "list"])
def test_zero_byte_image_is_found_without_decoding(tmp_path, dataset, capsys):
    if dataset == "nih":
        root, lists = write_nih(tmp_path / "nih"), None
        empty, where = sorted(root.glob("images_*/images/*.png"))[4], "Data_Entry_2017_v2020.csv:6"
    elif dataset == "ranzcr":
        root, lists = write_ranzcr(tmp_path / "ranzcr"), None
        empty, where = sorted((root / "train").iterdir())[2], "train.csv:4"
    else:
        root, lists = write_tongue(tmp_path / "t")
        empty, where = root / "tongue" / "val" / "img_11.png", "tongue_val.txt:2"
    empty.write_bytes(b"")
    args = ["data", "check", "--dataset", dataset, "--root", str(root), "--json"]
    code = main(args + (["--lists", str(lists)] if lists else ["--split", "patient", "--fractions", "0.5", "0.25", "0.25"]))
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert code == 1 and len(problems) == 1
    assert problems[0].split(": ", 1)[0].endswith(where) and f"empty image file {empty} (0 bytes)" in problems[0]


@pytest.mark.parametrize("dataset", ["nih", "ranzcr"])
def test_blank_patient_id_is_an_error_naming_the_line(tmp_path, dataset):
    if dataset == "nih":
        root = write_nih(tmp_path / "nih")
        csv, column, line = root / "Data_Entry_2017_v2020.csv", "Patient ID", 5
    else:
        root = write_ranzcr(tmp_path / "ranzcr")
        csv, column, line = root / "train.csv", "PatientID", 3
    table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    table.loc[line - 2, column] = "  "
    table.to_csv(csv, index=False)
    with pytest.raises(DataError) as e:
        load_splits(dataset, root, split="patient", fractions=(0.5, 0.25, 0.25))
    assert e.value.problems == [f"{csv}:{line}: blank {column} for {table.iloc[line - 2, 0]!r}"]


def test_leakage_warning_shows_no_source_line(tmp_path):
    from test_data_formats import nih_paper_lists

    root, lists = write_nih(tmp_path / "nih"), nih_paper_lists(tmp_path / "chest14")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_splits("nih", root, lists=lists)
    [w] = caught
    assert w.category is LeakageWarning
    # exactly what Python's default handler prints to stderr: no line of this package's source under it
    shown = warnings.formatwarning(w.message, w.category, w.filename, w.lineno)
    assert shown == f"{lists}:0: LeakageWarning: {w.message}\n"
    assert shown.count("\n") == 1 and "load_splits" not in shown and ".py" not in shown
