"""Every dataset format loads from a fixture written in its exact released layout; every bad input
gives its error naming the file and line. The writers here are reused by the other test_data* files."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ctranscnn.data.chestmnist import MEDMNIST_ORDER
from ctranscnn.data.errors import DataError
from ctranscnn.data.nih import NIH_CLASSES
from ctranscnn.data.ranzcr import RANZCR_CLASSES, RANZCR_COLUMNS
from ctranscnn.data.splits import LeakageWarning, load_splits

# name, findings, patient id: ten images of eight patients.
NIH_ROWS = [
    ("00000001_000.png", "Cardiomegaly", "1"),
    ("00000001_001.png", "Cardiomegaly|Emphysema", "1"),
    ("00000002_000.png", "No Finding", "2"),
    ("00000003_000.png", "Infiltration", "3"),
    ("00000003_001.png", "Infiltration|Mass", "3"),
    ("00000004_000.png", "Effusion", "4"),
    ("00000005_000.png", "Atelectasis", "5"),
    ("00000006_000.png", "No Finding", "6"),
    ("00000007_000.png", "Nodule", "7"),
    ("00000008_000.png", "Hernia|Pneumonia", "8"),
]
NIH_TEST = ["00000007_000.png", "00000008_000.png"]
V2020_HEADER = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
                "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]")


def grey_png(path: Path, value: int, size=(32, 32)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    a = (np.arange(size[0] * size[1]).reshape(size[1], size[0]) + value) % 256
    Image.fromarray(a.astype(np.uint8)).save(path)


def nih_vector(findings: str) -> list[int]:
    return [int(c in findings.split("|")) for c in NIH_CLASSES]


def write_nih(root: Path, flat: bool = False, v2020: bool = True, rows=NIH_ROWS) -> Path:
    """The NIH release: metadata CSV, images_00N/images/ (or images/), official lists, BBox list."""
    for i, (name, _, _) in enumerate(rows):
        folder = root / "images" if flat else root / f"images_{1 + i // 5:03d}" / "images"
        grey_png(folder / name, i)
    if v2020:
        lines = [V2020_HEADER] + [f"{n},{f},0,{p},50,M,PA,2500,2048,0.143,0.143" for n, f, p in rows]
        (root / "Data_Entry_2017_v2020.csv").write_text("\n".join(lines) + "\n")
    else:  # the 2017 file ends every line with a comma (an unnamed empty column)
        lines = [V2020_HEADER + ","] + [f"{n},{f},0,{p},050Y,M,PA,2500,2048,0.143,0.143," for n, f, p in rows]
        (root / "Data_Entry_2017.csv").write_text("\r\n".join(lines) + "\r\n")
    names = [n for n, _, _ in rows]
    (root / "train_val_list.txt").write_text("\n".join(n for n in names if n not in NIH_TEST) + "\n")
    (root / "test_list.txt").write_text("\n".join(n for n in names if n in NIH_TEST) + "\n")
    (root / "BBox_List_2017.csv").write_text(
        "Image Index,Finding Label,Bbox [x,y,w,h],,,\n"
        "00000003_001.png,Infiltrate,1.5,2.5,10.25,12.0\n"
        "00000007_000.png,Nodule,3,4,5,6\n"
    )
    return root


def write_lists(folder: Path, classes: list[str], splits: dict[str, list[tuple[str, list[int]]]], prefix: str) -> Path:
    """The authors' list format: `path<TAB>0,1,...`, no trailing newline; class file likewise."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{prefix}_classes.txt").write_text("\n".join(classes))
    for split, entries in splits.items():
        (folder / f"{prefix}_{split}_labels.txt").write_text(
            "\n".join(f"{path}\t{','.join(map(str, v))}" for path, v in entries))
    return folder


def nih_paper_lists(folder: Path) -> Path:
    """NIH lists with the authors' folder prefixes (NIH-Chest_x-rays14_multi-label/<FirstFinding>/)."""
    def entry(name, findings):
        return f"NIH-Chest_x-rays14_multi-label/{findings.split('|')[0]}/{name}", nih_vector(findings)

    abnormal = [(n, f) for n, f, _ in NIH_ROWS if f != "No Finding"]
    parts = {"train": abnormal[:4], "val": abnormal[4:6], "test": abnormal[6:]}
    return write_lists(folder, NIH_CLASSES, {k: [entry(*e) for e in v] for k, v in parts.items()}, "add72_chest14")


RANZCR_ROWS = [  # uid, patient, positive classes
    ("1.2.826.0.1.3680043.8.498.101", "p1", ["ETT-Normal", "CVC-Normal"]),
    ("1.2.826.0.1.3680043.8.498.102", "p1", ["CVC-Borderline"]),
    ("1.2.826.0.1.3680043.8.498.103", "p2", ["NGT-Incompletely-Imaged", "CVC-Normal"]),
    ("1.2.826.0.1.3680043.8.498.104", "p3", ["Swan-Ganz-Catheter-Present"]),
    ("1.2.826.0.1.3680043.8.498.105", "p4", []),
    ("1.2.826.0.1.3680043.8.498.106", "p5", ["CVC-Normal"]),
]


def write_ranzcr(root: Path, rows=RANZCR_ROWS) -> Path:
    """RANZCR CLiP: train.csv (StudyInstanceUID, 11 label columns, PatientID) and train/<uid>.jpg."""
    (root / "train").mkdir(parents=True, exist_ok=True)
    header = ["StudyInstanceUID", *RANZCR_COLUMNS.values(), "PatientID"]
    lines = [",".join(header)]
    for i, (uid, patient, positives) in enumerate(rows):
        lines.append(",".join([uid, *(str(int(c in positives)) for c in RANZCR_CLASSES), patient]))
        Image.fromarray(np.full((40, 32), 10 * i, np.uint8)).save(root / "train" / f"{uid}.jpg")
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    return root


def write_chestmnist(path: Path, sizes=(("train", 6), ("val", 2), ("test", 3)), px: int = 28) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in sizes:
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, px, px), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 2, (n, 14), dtype=np.uint8)
    np.savez_compressed(path, **arrays)
    return path


TONGUE = ["Qixu", "Qiyu", "Shire", "Tanshi", "Tebing", "Xueyu", "Yinxu"]


def write_tongue(root: Path) -> tuple[Path, Path]:
    """A private set in the authors' list format: RGB PNGs under root, lists in root/lists."""
    entries = {}
    for k, split in enumerate(("train", "val", "test")):
        entries[split] = []
        for j in range(3):
            rel = f"tongue/{split}/img_{k}{j}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            rgb = np.zeros((24, 30, 3), np.uint8)
            rgb[..., 0], rgb[..., 1] = 200, 10 * j  # real colour content
            Image.fromarray(rgb).save(root / rel)
            entries[split].append((rel, [int(c == (k + j) % 7) for c in range(7)]))
    lists = root / "lists"
    lists.mkdir()
    (lists / "multi_label_classes.txt").write_text("\n".join(TONGUE))
    for split, es in entries.items():
        (lists / f"tongue_{split}.txt").write_text("\n".join(f"{p}\t{','.join(map(str, v))}" for p, v in es))
    return root, lists


def quiet_load(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LeakageWarning)
        return load_splits(*args, **kwargs)


# ---------------------------------------------------------------- formats load


def test_nih_official_split_in_released_layout(tmp_path):
    root = write_nih(tmp_path)
    splits = load_splits("nih", root, split="official", seed=0)
    assert splits["test"].image_ids == NIH_TEST
    train_val = set(splits["train"].image_ids) | set(splits["val"].image_ids)
    assert train_val == {n for n, _, _ in NIH_ROWS} - set(NIH_TEST)
    assert len(splits["val"]) > 0 and not set(splits["train"].patient_ids) & set(splits["val"].patient_ids)
    expected = {n: nih_vector(f) for n, f, _ in NIH_ROWS}
    for records in splits.values():
        assert records.classes == NIH_CLASSES
        for image_id, row, path in zip(records.image_ids, records.labels, records.paths):
            assert row.tolist() == expected[image_id] and path.name == image_id and path.is_file()
    boxes = splits["test"].boxes  # box list: "Infiltrate" is the class Infiltration; sizes from the files
    assert boxes[["image_id", "label", "x", "w", "orig_w", "orig_h"]].values.tolist() == [
        ["00000007_000.png", "Nodule", 3.0, 5.0, 32, 32]]
    train_val_boxes = [b for r in (splits["train"], splits["val"]) for b in r.boxes.itertuples()]
    assert [(b.image_id, b.label, b.y, b.w) for b in train_val_boxes] == [("00000003_001.png", "Infiltration", 2.5, 10.25)]


def test_nih_2017_metadata_and_flat_folder(tmp_path):
    root = write_nih(tmp_path, flat=True, v2020=False)
    splits = load_splits("nih", root, split="patient", fractions=(0.6, 0.2, 0.2), seed=3)
    ids = sorted(i for r in splits.values() for i in r.image_ids)
    assert ids == sorted(n for n, _, _ in NIH_ROWS)
    assert all(p.parent == root / "images" for r in splits.values() for p in r.paths)


def test_nih_paper_split_resolves_author_prefixes_by_file_name(tmp_path):
    root = write_nih(tmp_path / "nih")
    lists = nih_paper_lists(tmp_path / "chest14")
    with pytest.warns(LeakageWarning, match="paper split of nih"):
        splits = load_splits("nih", root, split="paper", lists=lists)
    abnormal = [n for n, f, _ in NIH_ROWS if f != "No Finding"]
    assert splits["train"].image_ids == abnormal[:4] and splits["test"].image_ids == abnormal[6:]
    assert all(p.is_file() and "images_00" in str(p) for r in splits.values() for p in r.paths)
    assert splits["train"].patient_ids == ["1", "1", "3", "3"]


def test_ranzcr_released_layout_patient_and_paper_split(tmp_path):
    root = write_ranzcr(tmp_path / "ranzcr")
    splits = load_splits("ranzcr", root, split="patient", fractions=(0.5, 0.25, 0.25))
    by_id = {f"{uid}.jpg": (p, pos) for uid, p, pos in RANZCR_ROWS}
    assert sorted(i for r in splits.values() for i in r.image_ids) == sorted(by_id)
    for records in splits.values():
        for image_id, row, patient in zip(records.image_ids, records.labels, records.patient_ids):
            assert patient == by_id[image_id][0]
            assert [c for c, v in zip(RANZCR_CLASSES, row) if v] == by_id[image_id][1]
    lists = write_lists(tmp_path / "chest11", RANZCR_CLASSES, {
        s: [(f"chest_x-rays11_kaggle/{uid}.jpg", [int(c in pos) for c in RANZCR_CLASSES]) for uid, _, pos in part]
        for s, part in (("train", RANZCR_ROWS[:3]), ("val", RANZCR_ROWS[3:5]), ("test", RANZCR_ROWS[5:]))
    }, "chest_x-rays11_kaggle")
    with pytest.warns(LeakageWarning, match="0 train-val"):
        paper = load_splits("ranzcr", root, split="paper", lists=lists)
    assert paper["train"].paths[0] == root / "train" / f"{RANZCR_ROWS[0][0]}.jpg"
    assert paper["train"].patient_ids == ["p1", "p1", "p2"]


def test_chestmnist_npz_reorders_labels_to_the_authors_classes(tmp_path):
    path = write_chestmnist(tmp_path / "chestmnist_64.npz", px=64)
    splits = load_splits("chestmnist", tmp_path)  # a folder holding one ChestMNIST file
    raw = np.load(path)
    for split, records in splits.items():
        assert records.classes == NIH_CLASSES and records.pixels.shape[1:] == (64, 64)
        np.testing.assert_array_equal(records.pixels, raw[f"{split}_images"])
        for c, name in enumerate(NIH_CLASSES):
            np.testing.assert_array_equal(records.labels[:, c], raw[f"{split}_labels"][:, MEDMNIST_ORDER.index(name)])
    with pytest.raises(DataError, match="only its released split"):
        load_splits("chestmnist", path, split="patient")


def test_list_format_private_dataset(tmp_path):
    root, lists = write_tongue(tmp_path)
    with pytest.warns(LeakageWarning, match="no patient ids"):
        splits = load_splits("list", root, lists=lists)
    assert splits["val"].classes == TONGUE
    assert splits["val"].paths[1] == root / "tongue/val/img_11.png"
    assert splits["val"].labels[1].tolist() == [int(c == 2) for c in range(7)]


def test_list_paths_fall_back_to_file_names(tmp_path):
    root, lists = write_tongue(tmp_path)
    moved = tmp_path / "elsewhere"
    (root / "tongue").rename(moved)  # a user's folders differ from the list's prefixes
    splits = quiet_load("list", tmp_path, lists=lists)
    assert splits["test"].paths[0] == moved / "test" / "img_20.png"


# ---------------------------------------------------------------- bad input


def test_missing_image_names_csv_line(tmp_path):
    root = write_nih(tmp_path)
    (root / "images_002" / "images" / "00000008_000.png").unlink()
    with pytest.raises(DataError, match=r"Data_Entry_2017_v2020.csv:11: missing image '00000008_000.png'"):
        load_splits("nih", root, split="official")
    assert len(load_splits("nih", root, split="official", check_files=False)["test"]) == 2


def test_missing_image_names_list_line(tmp_path):
    root, lists = write_tongue(tmp_path)
    (root / "tongue/test/img_21.png").unlink()
    with pytest.raises(DataError, match=r"tongue_test.txt:2: missing image 'tongue/test/img_21.png'"):
        quiet_load("list", root, lists=lists)


def test_missing_ranzcr_images_are_one_line_naming_the_first_and_the_opt_in(tmp_path):
    root = write_ranzcr(tmp_path)
    shares = (0.5, 0.25, 0.25)
    full = load_splits("ranzcr", root, split="patient", fractions=shares)
    gone = sorted(full["train"].paths)[:2]  # two training images: every split keeps some under skip
    for path in gone:
        path.unlink()
    uids = [uid for uid, _, _ in RANZCR_ROWS]
    first = min(gone, key=lambda p: uids.index(p.stem))
    with pytest.raises(DataError) as err:
        load_splits("ranzcr", root, split="patient", fractions=shares)
    (line,) = err.value.problems  # one line, however many are missing (a missing train/ would be 30,083)
    assert line.startswith(f"{root / 'train.csv'}:{uids.index(first.stem) + 2}: missing image '{first.name}' and 1 "
                           f"more (2 of {len(RANZCR_ROWS)} listed images not found in {root}/train)")
    assert line.endswith("set data.missing=skip")  # RANZCR has no reproduce.sh switch: NIH_MISSING is NIH's
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kept = load_splits("ranzcr", root, split="patient", fractions=shares, missing="skip")
    assert len(kept["train"]) == len(full["train"]) - 2 and len(kept["test"]) == len(full["test"])


def test_missing_list_images_offer_no_skip(tmp_path):
    root, lists = write_tongue(tmp_path)
    (root / "tongue/test/img_21.png").unlink()
    with pytest.raises(DataError) as err:
        quiet_load("list", root, lists=lists)
    assert "data.missing" not in err.value.problems[0]  # skip is for the NIH and RANZCR metadata only


def bad_list_dir(tmp_path: Path, lines: str, classes=("A", "B", "C")) -> tuple[Path, Path]:
    root = tmp_path / "imgs"
    for name in ("a.png", "b.png", "c.png"):
        grey_png(root / name, 0, (8, 8))
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "classes.txt").write_text("\n".join(classes))
    (lists / "x_train.txt").write_text(lines)
    (lists / "x_val.txt").write_text("b.png\t0,1,0")
    (lists / "x_test.txt").write_text("c.png\t0,0,1")
    return root, lists


@pytest.mark.parametrize("lines, error", [
    ("a.png\t1,0,0\nb.png\t1,0", r"x_train.txt:2: label vector has 2 values, expected 3"),
    ("a.png\t1,0,0\nb.png\t1,2,0", r"x_train.txt:2: labels must be 0 or 1, got '1,2,0'"),
    ("a.png\t1,0,0\na.png\t0,1,0", r"x_train.txt:2: duplicate image id 'a.png' \(first on line 1\)"),
    ("", r"x_train.txt: empty split"),
    ("a.png 1,0,0", r"x_train.txt:1: expected 'path<TAB>0,1,...'"),
    ("a.png\t1,0,0\nc.png\t1,0,0", r"x_test.txt: duplicate image id\(s\) also in the train list \(x_train.txt\): c.png"),
])
def test_bad_list_lines(tmp_path, lines, error):
    root, lists = bad_list_dir(tmp_path, lines)
    with pytest.raises(DataError, match=error):
        quiet_load("list", root, lists=lists)


def test_class_file_disagreeing_with_data(tmp_path):
    root, lists = bad_list_dir(tmp_path, "a.png\t1,0,0", classes=("A", "B", "C", "D"))
    with pytest.raises(DataError, match=r"classes.txt: lists 4 classes but every label vector in .*x_train.txt has 3"):
        quiet_load("list", root, lists=lists)


def test_unknown_class_names(tmp_path):
    root = write_nih(tmp_path / "nih", rows=NIH_ROWS[:9] + [("00000008_000.png", "Hernia|Lung Cancer", "8")])
    with pytest.raises(DataError, match=r"Data_Entry_2017_v2020.csv:11: unknown class name\(s\) 'Lung Cancer'"):
        load_splits("nih", root, split="official")
    lists = nih_paper_lists(tmp_path / "chest14")
    (lists / "add72_chest14_classes.txt").write_text("\n".join(NIH_CLASSES[:-1] + ["Pneumothorax2"]))
    with pytest.raises(DataError, match=r"add72_chest14_classes.txt:14: unknown class name 'Pneumothorax2' for nih"):
        load_splits("nih", write_nih(tmp_path / "nih2"), split="paper", lists=lists)


def test_duplicate_image_id_in_metadata(tmp_path):
    root = write_nih(tmp_path, rows=NIH_ROWS + [("00000001_000.png", "Mass", "1")])
    with pytest.raises(DataError, match=r"csv:12: duplicate image id '00000001_000.png' \(first on line 2\)"):
        load_splits("nih", root, split="patient")


def test_ranzcr_non_binary_label_and_missing_column(tmp_path):
    root = write_ranzcr(tmp_path)
    text = (root / "train.csv").read_text().splitlines()
    text[2] = text[2].replace(",0,", ",2,", 1)
    (root / "train.csv").write_text("\n".join(text))
    with pytest.raises(DataError, match=r"train.csv:3: labels must be 0 or 1, got ETT - Abnormal='2'"):
        load_splits("ranzcr", root, split="patient")
    (root / "train.csv").write_text("\n".join(t.rsplit(",", 1)[0] for t in text))
    with pytest.raises(DataError, match=r"train.csv: missing column\(s\) 'PatientID'"):
        load_splits("ranzcr", root, split="patient")


def test_chestmnist_wrong_label_length(tmp_path):
    path = tmp_path / "chestmnist.npz"
    np.savez(path, train_images=np.zeros((2, 28, 28), np.uint8), train_labels=np.zeros((2, 13), np.uint8),
             val_images=np.zeros((1, 28, 28), np.uint8), val_labels=np.zeros((1, 14), np.uint8),
             test_images=np.zeros((0, 28, 28), np.uint8), test_labels=np.zeros((0, 14), np.uint8))
    with pytest.raises(DataError) as e:
        load_splits("chestmnist", path)
    assert any("field train_labels: label vectors of shape (13,), expected (14,)" in p for p in e.value.problems)
    assert any("field test_images: empty split" in p for p in e.value.problems)


def test_all_problems_reported_in_one_pass(tmp_path):
    root, lists = bad_list_dir(tmp_path, "a.png\t1,0,0\nb.png\t1,0\nzz.png\t0,1,0\nb2.png\t0,1,x")
    with pytest.raises(DataError) as e:
        quiet_load("list", root, lists=lists)
    lines = sorted(p.split(": ", 1)[0].rsplit(":", 1)[-1] for p in e.value.problems)
    assert lines == ["2", "3", "4"]  # wrong length, missing image, non-0/1 label: all three at once


def test_paper_split_without_lists_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="needs lists="):
        load_splits("nih", write_nih(tmp_path), split="paper")
    with pytest.raises(DataError, match=r"no NIH metadata: expected Data_Entry_2017_v2020.csv"):
        load_splits("nih", tmp_path / "nowhere", split="patient")
