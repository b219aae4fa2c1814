"""`python -m ctranscnn <command>`: one entry point; each command lives in ctranscnn/commands/<name>.py.

A command module defines `add_arguments(parser)` and `run(args) -> int`. Modules are imported only
when their command runs, so a slow import (torch, pandas) never delays `--help` of another command.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("ctranscnn.commands.info", "parameter counts and GFLOPs of a model"),
    "data": ("ctranscnn.commands.data", "dataset utilities (data check)"),
    "phantom": ("ctranscnn.commands.phantom", "generate a phantom dataset in a real on-disk layout"),
    "train": ("ctranscnn.commands.train", "train a model from a YAML config"),
    "evaluate": ("ctranscnn.commands.evaluate", "evaluate a finished run on a split"),
    "predict": ("ctranscnn.commands.predict", "label probabilities for image files"),
    "export-onnx": ("ctranscnn.commands.export_onnx", "export a run's fused-probability model to ONNX"),
    "bench": ("ctranscnn.commands.bench", "throughput benchmark against torchvision resnet50"),
    "plan": ("ctranscnn.commands.plan", "every run the notebooks need: folder, hash, finished or not (--json)"),
    "grid": ("ctranscnn.commands.grid", "submit the plan's runs to SLURM (submitit) and show their status"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="ctranscnn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = argv[0] if argv and argv[0] in COMMANDS else None
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        if name == chosen:
            importlib.import_module(module).add_arguments(p)
    args = parser.parse_args(argv)
    return int(importlib.import_module(COMMANDS[args.command][0]).run(args) or 0)
