"""`python -m ctranscnn info`: parameter counts and forward GFLOPs at 224 px."""
from __future__ import annotations

import argparse
import json

from ctranscnn.commands.common import add_set_argument, parse_overrides


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="registered model name (see --list)")
    p.add_argument("--num-classes", type=int, required=True)
    add_set_argument(p, "model config overrides, e.g. mmaef=false")
    p.add_argument("--size", type=int, default=224, help="input size for the GFLOPs count (default 224)")
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    from ctranscnn import create_model
    from ctranscnn.models.complexity import model_complexity
    from ctranscnn.registry import OverrideError

    try:
        model = create_model(args.model, args.num_classes, **parse_overrides(args.set))
    except OverrideError as err:
        raise SystemExit(f"info: --set {err}") from None
    except KeyError as err:  # unknown model name
        raise SystemExit(f"info: {err.args[0]}") from None
    info = {"model": args.model, "num_classes": args.num_classes, **model_complexity(model, args.size)}
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            shown = f"{value:,.3f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else value
            print(f"{key:>16}: {shown}")
    return 0
