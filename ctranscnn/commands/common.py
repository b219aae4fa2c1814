"""Argument helpers shared by several commands."""
from __future__ import annotations

import yaml


def parse_overrides(items: list[str]) -> dict:
    """`key=value` pairs; values are parsed as YAML scalars (so `false`, `0.5`, `softmax` get their types)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out
