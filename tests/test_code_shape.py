"""The code's shape, measured: no function in backend/ or webui/ longer than MOST_LINES lines (issue 25: the longest
was 729). A longer one is a sign it does several things; split it where its comments already say "then".

The Chat tab's modules are being rebuilt as a package of their own and are measured once they are (SKIPPED)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MOST_LINES = 80
SKIPPED = {f"webui/{name}.py" for name in ("chat", "history", "compare", "presets", "chat_list", "reply", "streaming")}


def function_lengths() -> list[tuple[int, str]]:
    """(lines, where) of every function and method in backend/ and webui/, decorators and docstring included."""
    found = []
    for package in ("backend", "webui"):
        for path in sorted((ROOT / package).rglob("*.py")):
            where = path.relative_to(ROOT).as_posix()
            if where in SKIPPED:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    first = min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])
                    found.append((node.end_lineno - first + 1, f"{where}:{node.lineno} {node.name}"))
    return found


def test_no_function_is_longer_than_80_lines():
    lengths = function_lengths()
    assert len(lengths) > 500  # (the walk found the code)
    too_long = sorted((lines, where) for lines, where in lengths if lines > MOST_LINES)
    assert too_long == [], f"functions over {MOST_LINES} lines: {too_long}"
