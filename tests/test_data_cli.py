"""`python -m ctranscnn data check`: counts, patients and leakage as text and JSON; all problems at once."""
from __future__ import annotations

import json

import pytest

from ctranscnn.cli import main
from ctranscnn.data.errors import DataError
from ctranscnn.data.nih import NIH_CLASSES
from ctranscnn.data.splits import load_splits
from test_data_formats import NIH_ROWS, NIH_TEST, nih_paper_lists, nih_vector, write_nih


def test_data_check_json(tmp_path, capsys):
    root = write_nih(tmp_path / "nih")
    assert main(["data", "check", "--dataset", "nih", "--root", str(root), "--split", "official", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["splits"]) == {"train", "val", "test"}
    test = report["splits"]["test"]
    rows = [r for r in NIH_ROWS if r[0] in NIH_TEST]
    assert test["images"] == len(rows) and test["patients"] == len({p for _, _, p in rows})
    assert test["class_counts"] == {c: sum(nih_vector(f)[i] for _, f, _ in rows) for i, c in enumerate(NIH_CLASSES)}
    train = load_splits("nih", root, split="official")["train"].image_ids  # same seed: the oracle split
    assert report["leakage"] == {"patients_shared": {"train-val": 0, "train-test": 0, "val-test": 0},
                                 "box_images_in_train": len({"00000003_001.png", "00000007_000.png"} & set(train))}
    assert report["problems"] == []


def test_data_check_text_warns_on_paper_split(tmp_path, capsys):
    root, lists = write_nih(tmp_path / "nih"), nih_paper_lists(tmp_path / "chest14")
    assert main(["data", "check", "--dataset", "nih", "--root", str(root), "--lists", str(lists)]) == 0
    out = capsys.readouterr().out
    assert "WARNING: the paper split of nih is image-level" in out and "patients" in out and "no problems found" in out


def test_data_check_reports_every_problem(tmp_path, capsys):
    root = write_nih(tmp_path / "nih")
    (root / "images_001" / "images" / "00000002_000.png").unlink()
    (root / "images_002" / "images" / "00000006_000.png").write_bytes(b"broken")
    csv = root / "Data_Entry_2017_v2020.csv"
    csv.write_text(csv.read_text().replace("Effusion", "Efusion"))
    code = main(["data", "check", "--dataset", "nih", "--root", str(root), "--split", "patient", "--fractions", "0.5", "0.25", "0.25", "--json"])
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert code == 1 and len(problems) == 2
    # Missing images are summed up in one line after the per-line problems (a partial download misses thousands).
    assert "csv:7: unknown class name(s) 'Efusion'" in problems[0] and "csv:4: missing image '00000002_000.png'" in problems[1]
    # The metadata is fine once fixed; decoding every image then finds the corrupt file.
    csv.write_text(csv.read_text().replace("Efusion", "Effusion"))
    grey = root / "images_001" / "images" / "00000002_000.png"
    grey.write_bytes((root / "images_001" / "images" / "00000001_000.png").read_bytes())
    code = main(["data", "check", "--dataset", "nih", "--root", str(root), "--split", "patient", "--fractions", "0.5", "0.25", "0.25", "--decode", "--json"])
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert code == 1 and problems == [f"{root / 'images_002' / 'images' / '00000006_000.png'}: unreadable or corrupt image"
                                      + problems[0].split("corrupt image", 1)[1]]


def test_chestmnist_download_verifies_the_checksum(tmp_path, monkeypatch, capsys):
    import shutil
    import urllib.request

    import ctranscnn.data.chestmnist as chestmnist
    from test_data_formats import write_chestmnist

    published = write_chestmnist(tmp_path / "published.npz")
    from medmnist.info import INFO

    fetched = []
    monkeypatch.setattr(urllib.request, "urlretrieve", lambda url, dest: fetched.append(url) or shutil.copy(published, dest))
    monkeypatch.setitem(INFO["chestmnist"], "MD5_64", chestmnist.md5sum(published))
    assert main(["data", "download", "chestmnist", "--size", "64", "--dest", str(tmp_path / "d")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "d" / "chestmnist_64.npz")
    assert fetched == ["https://zenodo.org/records/10519652/files/chestmnist_64.npz?download=1"]  # medmnist's URL
    monkeypatch.setitem(INFO["chestmnist"], "MD5_128", "0" * 32)
    with pytest.raises(DataError, match="checksum mismatch"):
        chestmnist.download_chestmnist(tmp_path / "e", 128)
    assert not (tmp_path / "e").exists() or not list((tmp_path / "e").iterdir())  # nothing kept
