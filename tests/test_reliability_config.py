"""Run-config input that used to pass silently: typos in empty sections, duplicate keys, bad thresholds."""
from __future__ import annotations

import pytest

from ctranscnn.engine.config import ConfigError, load_config


def write(tmp_path, text):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_misspelt_key_mapped_to_empty_mapping_is_unknown(tmp_path):
    path = write(tmp_path, "profile: smoke\nmodel:\n  name: ctranscnn_micro\n  overides: {}\n")
    with pytest.raises(ConfigError, match=rf"^{path}: unknown config key 'model.overides'; known here: name, size, "
                                          "overrides$"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"unknown config key 'trian'"):
        load_config(write(tmp_path, "trian: {}\n"))


def test_empty_sections_are_accepted(tmp_path):
    cfg = load_config(write(tmp_path, "profile: smoke\nmodel: {}\ndata:\n"))
    assert cfg == load_config(None, {"profile": "smoke"})


@pytest.mark.parametrize("text, line, first", [
    ("profile: smoke\ntrain:\n  seed: 1\n  batch_size: 4\n  seed: 2\n", 5, 3),
    ("train:\n  seed: 1\ntrain:\n  seed: 2\n", 3, 1),
    ("model:\n  overrides:\n    mmaef: false\n    mmaef: true\n", 4, 3),
])
def test_duplicate_yaml_key_names_file_and_line(tmp_path, text, line, first):
    path = write(tmp_path, text)
    key = text.splitlines()[line - 1].split(":")[0].strip()
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == f"{path}:{line}: duplicate key {key!r} (first on line {first})"


def test_yaml_merge_keys_may_be_overridden(tmp_path):
    cfg = load_config(write(tmp_path, "train:\n  seed: 3\n  batch_size: 4\neval:\n  <<: {batch_size: 8, n_boot: 10}\n"
                                      "  n_boot: 20\n"))
    assert (cfg.train.seed, cfg.train.batch_size, cfg.eval.batch_size, cfg.eval.n_boot) == (3, 4, 8, 20)


@pytest.mark.parametrize("value", [7, -0.1, 1.5, float("nan"), float("inf")])
def test_threshold_outside_unit_interval_is_rejected(tmp_path, value):
    with pytest.raises(ConfigError, match=r"eval.threshold must lie in \[0, 1\]"):
        load_config(None, {"eval.threshold": value})
    text = {7: "7", -0.1: "-0.1", 1.5: "1.5"}.get(value, ".nan" if value != value else ".inf")
    with pytest.raises(ConfigError, match=r"eval.threshold must lie in \[0, 1\]"):
        load_config(write(tmp_path, f"eval:\n  threshold: {text}\n"))


def test_threshold_bounds_are_accepted():
    assert [load_config(None, {"eval.threshold": t}).eval.threshold for t in (0, 1, 0.25)] == [0.0, 1.0, 0.25]


FIELDS = "embed_dims, depths, num_heads"  # the start of the accepted list (CTransCNNConfig's field order)


@pytest.mark.parametrize("key, value, message", [
    ("mmaef", "flase", "model.overrides.mmaef: expected true or false, got 'flase'"),
    ("mmaef", 0, "model.overrides.mmaef: expected true or false, got 0"),
    ("attention", "sofmax", "model.overrides.attention: expected one of 'sigmoid_softmax', 'softmax', got 'sofmax'"),
    ("depths", "abc", "model.overrides.depths: expected an integer, got 'abc'"),
    ("depths", 7.0, "model.overrides.depths: expected an integer, got 7.0"),
    ("fusion_weight", True, "model.overrides.fusion_weight: expected a number, got True"),
    ("mmaeff", False, f"model.overrides.mmaeff: not a setting of ctranscnn_micro; accepted: {FIELDS}"),
    ("depths", 7, "model.overrides: ctranscnn_micro: depths must be a multiple of 3 and >= 6, got 7"),
])
def test_model_overrides_are_checked_against_the_model_config(tmp_path, key, value, message):
    with pytest.raises(ConfigError) as e:
        load_config(None, {"profile": "smoke", f"model.overrides.{key}": value})
    assert str(e.value).startswith(f"--set: {message}")
    # from a file, the error names the file
    path = write(tmp_path, f"profile: smoke\nmodel:\n  overrides:\n    {key}: {'true' if value is True else value}\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value).startswith(f"{path}: {message}")


def test_valid_overrides_pass_and_build_what_they_say():
    from ctranscnn import create_model

    cfg = load_config(None, {"profile": "smoke", "model.overrides.mmaef": False, "model.overrides.attention": "softmax",
                             "model.overrides.depths": 9, "model.overrides.fusion_weight": 1})
    assert cfg.model.overrides == {"mmaef": False, "attention": "softmax", "depths": 9, "fusion_weight": 1}
    model = create_model("ctranscnn_micro", 2, **cfg.model.overrides)
    assert (model.cfg.mmaef, model.cfg.attention, model.cfg.depths) == (False, "softmax", 9)


def test_conformer_overrides_are_checked_on_conformer_config():
    from ctranscnn.registry import OverrideError, check_overrides

    check_overrides("conformer_micro", {"mmaef": True})  # switching a paper module back on is allowed
    with pytest.raises(OverrideError, match=r"^mbr: expected true or false, got 'no'$"):
        check_overrides("conformer_micro", {"mbr": "no"})
    check_overrides("resnet50", {"drop_path_rate": 0.1})  # baselines: timm keywords, not checked here


def test_cli_names_the_bad_override(tmp_path, capsys):
    from ctranscnn.cli import main

    with pytest.raises(SystemExit, match=r"^info: --set mmaef: expected true or false, got 'flase'$"):
        main(["info", "--model", "ctranscnn_micro", "--num-classes", "3", "--set", "mmaef=flase"])
    path = write(tmp_path, "profile: smoke\ndata:\n  dataset: nih\n  root: /nonexistent\n")
    with pytest.raises(SystemExit, match=r"^train: --set: model.overrides.attention: expected one of"):
        main(["train", "--config", str(path), "--set", "model.overrides.attention=sofmax"])
