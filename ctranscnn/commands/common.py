"""Argument helpers shared by several commands."""
from __future__ import annotations

import argparse

import yaml


def add_set_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """`--set KEY=VALUE ...`, the same in every command: repeated flags accumulate (`--set a=1 --set b=2`)."""
    parser.add_argument("--set", nargs="*", default=[], action="extend", metavar="KEY=VALUE", help=help)


def parse_overrides(items: list[str]) -> dict:
    """`key=value` pairs; values are parsed as YAML scalars (so `false`, `0.5`, `softmax` get their types)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out
