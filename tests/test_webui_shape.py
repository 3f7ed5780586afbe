"""The web UI's shape, read from its source: every function short enough to read at once, and handlers that name
the components they change instead of matching outputs by position (no `gr.skip()` padding, no counts of
outputs). The Chat tab was once one 752-line function whose handlers answered with tuples like
`(gr.skip(),) * 11`: a new output meant counting every answer again."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

WEBUI = Path(__file__).resolve().parent.parent / "webui"
LONGEST = 80  # lines, a function's `def` to its last line


def modules() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(WEBUI.rglob("*.py")):
        yield path.relative_to(WEBUI.parent), ast.parse(path.read_text(encoding="utf-8"))


def is_gr(node: ast.AST, *names: str) -> bool:
    """Whether `node` is a call of gr.<one of names>()."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "gr"
        and node.func.attr in names
    )


def test_every_function_in_webui_is_at_most_80_lines():
    long = [
        f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path, tree in modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > LONGEST
    ]
    assert long == []


def test_no_handler_pads_its_outputs_by_position():
    padded = []
    for path, tree in modules():
        for node in ast.walk(tree):
            # (gr.skip(), ...), [gr.skip(), ...]: an output left alone by its place among the outputs.
            if isinstance(node, ast.Tuple | ast.List) and any(is_gr(item, "skip") for item in node.elts):
                padded.append(f"{path}:{node.lineno} gr.skip() among positional outputs")
            # (gr.skip(),) * 11, [gr.update(...)] * 3: outputs counted.
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
                sides = [side for side in (node.left, node.right) if isinstance(side, ast.Tuple | ast.List)]
                if any(is_gr(item, "skip", "update") for side in sides for item in side.elts):
                    padded.append(f"{path}:{node.lineno} outputs multiplied by a count")
            # said(message, 11), verdict(problem, inputs=9): helpers told how many outputs or inputs there are.
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                if node.func.id == "said" and len(node.args) + len(node.keywords) > 1:
                    padded.append(f"{path}:{node.lineno} said() given a count")
                if node.func.id == "verdict" and any(keyword.arg == "inputs" for keyword in node.keywords):
                    padded.append(f"{path}:{node.lineno} verdict() given a count")
    assert padded == []


def test_the_tabs_handlers_answer_with_dicts_not_tuples():
    """A handler's `return` or `yield` of several values by position is how padding starts again."""
    positional = []
    for path, tree in modules():
        for handlers in ast.walk(tree):
            if not (isinstance(handlers, ast.ClassDef) and handlers.name.endswith("Handlers")):
                continue
            for method in handlers.body:
                if isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef) and not method.name.startswith("_"):
                    positional += [
                        f"{path}:{node.lineno} {handlers.name}.{method.name}"
                        for node in ast.walk(method)
                        if isinstance(node, ast.Return | ast.Yield) and isinstance(node.value, ast.Tuple)
                    ]
    assert positional == []
