"""The code's shape: small functions and classes, and imports that go one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("nmt", "training", "service")
MAX_FUNCTION_LINES, MAX_CLASS_LINES = 60, 250


def modules(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (ROOT / package).rglob("*.py"))


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (lazy imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_function_over_60_lines_and_no_class_over_250() -> None:
    too_long = []
    for path in modules(*PACKAGES):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            limit = {
                ast.FunctionDef: MAX_FUNCTION_LINES,
                ast.AsyncFunctionDef: MAX_FUNCTION_LINES,
                ast.ClassDef: MAX_CLASS_LINES,
            }.get(type(node))
            if limit is None:
                continue
            assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            lines = (node.end_lineno or node.lineno) - first + 1
            if lines > limit:
                too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {lines}")
    assert not too_long, "\n".join(too_long)


@pytest.mark.parametrize("path", modules("nmt"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_core_package_imports_nothing_from_training_or_service(path: Path) -> None:
    if path == ROOT / "nmt" / "cli.py":  # the command line dispatches to all three
        return
    outside = {m for m in imported(path) if m.split(".")[0] in ("training", "service")}
    assert not outside


@pytest.mark.parametrize("name", ["model", "encoder", "decoder", "attention", "dropout", "search"])
def test_the_model_knows_nothing_of_the_inference_step(name: str) -> None:
    assert not {m for m in imported(ROOT / "nmt" / f"{name}.py") if m.startswith("nmt.inference")}
