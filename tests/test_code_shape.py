"""The backend's shape, measured: no function in backend/ longer than MOST_LINES lines (issue 25: one was 95). A
longer one is a sign it does several things; split it where its comments already say "then". The web UI's
functions are measured likewise by tests/test_webui_shape.py."""

from __future__ import annotations

import ast
from pathlib import Path

BACKEND = Path(__file__).resolve().parent.parent / "backend"
MOST_LINES = 80


def function_lengths() -> list[tuple[int, str]]:
    """(lines, where) of every function and method in backend/, decorators and docstring included."""
    found = []
    for path in sorted(BACKEND.rglob("*.py")):
        where = path.relative_to(BACKEND.parent).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])
                found.append((node.end_lineno - first + 1, f"{where}:{node.lineno} {node.name}"))
    return found


def test_no_function_in_backend_is_longer_than_80_lines():
    lengths = function_lengths()
    assert len(lengths) > 500  # (the walk found the code)
    too_long = sorted((lines, where) for lines, where in lengths if lines > MOST_LINES)
    assert too_long == [], f"functions over {MOST_LINES} lines: {too_long}"
