"""The import graph keeps data flowing one way (data -> engine -> report; models, metrics, io on the ground floor):
no module below report/ imports ctranscnn.report, and only the CLI table imports ctranscnn.commands. Imports are
read with ast, so lazy imports inside functions count too."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ctranscnn"
BELOW_REPORT = ("data", "engine", "models", "phantom", "gradcam.py")


def module_name(path: Path, root: Path = PACKAGE.parent) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path = PACKAGE.parent) -> set[str]:
    """Absolute names of every module `path` (under `root`) imports, anywhere in the file (relative imports
    resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            # `from ctranscnn import report` imports the subpackage
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return names


def violations(files: list[Path], forbidden: str) -> dict[str, list[str]]:
    found = {}
    for path in files:
        bad = sorted(n for n in imported_modules(path) if n == forbidden or n.startswith(forbidden + "."))
        if bad:
            found[str(path.relative_to(PACKAGE.parent))] = bad
    return found


def python_files(*roots: str) -> list[Path]:
    out = []
    for root in roots:
        path = PACKAGE / root
        out += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return out


def test_the_parser_sees_lazy_relative_and_subpackage_imports(tmp_path: Path) -> None:
    """The oracle for the rules below: a hand-written module with every import form."""
    fake = tmp_path / "ctranscnn" / "engine" / "probe.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("import os\nfrom ctranscnn import report\n\ndef f():\n    from ..report.tables import x\n"
                    "    from . import setup\n    import ctranscnn.commands.bench\n")
    names = imported_modules(fake, root=tmp_path)
    assert {"os", "ctranscnn.report", "ctranscnn.report.tables", "ctranscnn.engine.setup",
            "ctranscnn.commands.bench"} <= names
    assert violations([PACKAGE / "io.py"], "ctranscnn.report") == {}


def test_nothing_below_report_imports_report() -> None:
    files = python_files(*BELOW_REPORT)
    assert len(files) > 20  # the walk found the package
    assert violations(files, "ctranscnn.report") == {}


def test_only_the_cli_imports_commands() -> None:
    files = [p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "cli.py" and PACKAGE / "commands" not in p.parents]
    assert violations(files, "ctranscnn.commands") == {}


@pytest.mark.parametrize("ground", ["io.py", "metrics.py", "losses.py", "registry.py", "bench.py", "models"])
def test_ground_floor_imports_nothing_above_it(ground: str) -> None:
    files = python_files(ground)
    for above in ("ctranscnn.data", "ctranscnn.engine", "ctranscnn.report", "ctranscnn.commands"):
        assert violations(files, above) == {}, above


def test_the_metric_columns_are_listed_once() -> None:
    """METRIC_COLUMNS is compute_metrics' scalar summary, and no other module spells the list out again."""
    from ctranscnn.metrics import METRIC_COLUMNS, compute_metrics

    out = compute_metrics([[1, 0], [0, 1], [1, 1], [0, 0]], [[0.9, 0.2], [0.3, 0.8], [0.6, 0.4], [0.1, 0.7]])
    assert tuple(k for k, v in out.items() if isinstance(v, float)) == METRIC_COLUMNS
    spelt = '"mAUC", "mAP", "CP"'
    again = [str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*.py")
             if p.name != "metrics.py" and spelt in p.read_text(encoding="utf-8")]
    assert again == []
