"""Fuzzing `data check`'s loader (load_splits): a few hundred seeded mutations of a valid NIH Data_Entry_2017.csv,
an authors' list file and a RANZCR train.csv. Every outcome must be success or a DataError whose every problem
names a file of the dataset, never another exception."""
from __future__ import annotations

import random
import warnings
from pathlib import Path

import pytest

from ctranscnn.data.errors import DataError
from ctranscnn.data.splits import load_splits
from test_data_formats import nih_paper_lists, write_nih, write_ranzcr

PIECES = [b",", b"\t", b'"', b"\n", b"\r\n", b"|", b"", b" ", b"\x00", b"\xff\xfe", b"\xe9", b"No Finding", b"1",
          b"0", b"2", b"-1", b"nan", b"NA", b"Effusion", b"00000001_000.png", b"\\", b"/", b"..", b"#", b"=1+1"]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One random edit of the kind a broken export, a bad merge or a truncated copy makes."""
    lines = data.split(b"\n")
    kind = rng.randrange(9)
    i = rng.randrange(len(lines))
    if kind == 0:  # cut the file anywhere
        return data[: rng.randrange(len(data) + 1)]
    if kind == 1:  # drop, duplicate or swap lines
        j = rng.randrange(len(lines))
        op = rng.randrange(3)
        if op == 0:
            del lines[i]
        elif op == 1:
            lines.insert(j, lines[i])
        else:
            lines[i], lines[j] = lines[j], lines[i]
        return b"\n".join(lines)
    if kind == 2:  # overwrite one field of one line
        sep = b"\t" if b"\t" in lines[i] else b","
        fields = lines[i].split(sep)
        fields[rng.randrange(len(fields))] = rng.choice(PIECES)
        lines[i] = sep.join(fields)
        return b"\n".join(lines)
    if kind == 3:  # insert a piece anywhere
        k = rng.randrange(len(data) + 1)
        return data[:k] + rng.choice(PIECES) + data[k:]
    if kind == 4:  # delete a few bytes
        k = rng.randrange(len(data) + 1)
        return data[:k] + data[k + rng.randint(1, 8):]
    if kind == 5:  # random bytes
        k = rng.randrange(len(data) + 1)
        return data[:k] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 6))) + data[k:]
    if kind == 6:  # empty or whitespace-only file
        return rng.choice([b"", b"\n", b"   \n\n"])
    if kind == 7:  # header damaged
        lines[0] = lines[0].replace(b",", rng.choice([b";", b"\t", b",,"]), 1)
        return b"\n".join(lines)
    # kind 8: line endings or encoding changed
    return rng.choice([data.replace(b"\n", b"\r"), b"\xef\xbb\xbf" + data, data.decode("latin-1").encode("utf-16")])


def cases(tmp_path: Path):
    nih = write_nih(tmp_path / "nih")
    lists = nih_paper_lists(tmp_path / "chest14")
    ranzcr = write_ranzcr(tmp_path / "ranzcr")
    yield ("nih", nih / "Data_Entry_2017_v2020.csv",
           lambda: load_splits("nih", nih, split="patient", fractions=(0.5, 0.25, 0.25)), [nih])
    yield ("list", sorted(lists.glob("*train*"))[0], lambda: load_splits("nih", nih, lists=lists), [nih, lists])
    yield ("ranzcr", ranzcr / "train.csv",
           lambda: load_splits("ranzcr", ranzcr, split="patient", fractions=(0.5, 0.25, 0.25)), [ranzcr])


def test_mutated_metadata_gives_success_or_a_named_data_error(tmp_path):
    rng = random.Random(15)
    outcomes = {"ok": 0, "DataError": 0}
    for name, path, load, folders in cases(tmp_path):
        original = path.read_bytes()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load()  # the unmutated dataset loads
        for n in range(100):
            data = mutate(original, rng)
            if rng.random() < 0.3:
                data = mutate(data, rng)
            path.write_bytes(data)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    load()
                outcomes["ok"] += 1
            except DataError as err:
                outcomes["DataError"] += 1
                unnamed = [p for p in err.problems if not p.startswith(tuple(map(str, folders)))]
                assert not unnamed, f"{name} mutation {n}: {data[:300]!r}\nproblems naming no file: {unnamed}"
            except Exception as err:  # noqa: BLE001 - the point of the test
                pytest.fail(f"{name} mutation {n} raised {type(err).__name__}: {err}\nfile: {data[:300]!r}")
        path.write_bytes(original)
    assert outcomes["ok"] > 20 and outcomes["DataError"] > 100, outcomes  # the mutations exercised both
