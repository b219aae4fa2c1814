"""The CLI behaves the same way in every command: repeated --set flags accumulate."""
from __future__ import annotations

import argparse
import importlib
import json


from ctranscnn.cli import COMMANDS, main

REQUIRED = {"train": [], "evaluate": ["--run", "r"], "info": ["--model", "m", "--num-classes", "2"], "bench": ["--model", "m"]}


def test_every_command_with_set_accumulates_repeated_flags():
    with_set = []
    for name, (module, _) in COMMANDS.items():
        parser = argparse.ArgumentParser()
        importlib.import_module(module).add_arguments(parser)
        if "--set" not in parser._option_string_actions:
            continue
        with_set.append(name)
        args = parser.parse_args(REQUIRED[name] + ["--set", "a=1", "b=2", "--set", "c=3", "--set", "a=4"])
        assert args.set == ["a=1", "b=2", "c=3", "a=4"], name
    assert sorted(with_set) == sorted(REQUIRED)


def test_info_applies_every_set_flag(capsys):
    from ctranscnn import create_model
    from ctranscnn.models.complexity import parameter_counts

    assert main(["info", "--model", "ctranscnn_micro", "--num-classes", "3", "--set", "mbr=false",
                 "--set", "keep_unused_fc=false", "--size", "32", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    oracle = parameter_counts(create_model("ctranscnn_micro", 3, mbr=False, keep_unused_fc=False))
    only_last = parameter_counts(create_model("ctranscnn_micro", 3, keep_unused_fc=False))
    assert {k: shown[k] for k in oracle} == oracle and oracle != only_last
