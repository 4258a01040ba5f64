"""Names on the wire defined once: the dotted span, event and log attribute names that one
package writes and another reads live in :mod:`tbmon.attributes`, and nowhere else spells them.

The generic ones (``exchange``, ``symbol``, ``side``, ``strategy``) are also ccxt's argument
names and the exchange's JSON fields, so only the dotted ones are looked for as string literals.
"""

from __future__ import annotations

import ast
from pathlib import Path

from support import CHECKOUT

from tbmon import attributes

#: Where writers and readers of these names live.
FOLDERS = ("core", "instrumentation", "processors", "health", "alert_bridge", "stack", "bench")
DOTTED = frozenset(
    value
    for name, value in vars(attributes).items()
    if name.isupper() and isinstance(value, str) and "." in value and not value.endswith(".")
)


def _literals(path: Path) -> list[tuple[int, str]]:
    """The string constants of ``path`` that are one of the names, docstrings aside."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value in DOTTED
        and id(node) not in docstrings
    ]


def test_the_names_are_spelled_only_in_tbmon_attributes() -> None:
    assert {"order.price", "trade.pnl_usd", "execution.slow", "trade.closed"} <= DOTTED
    module = Path(attributes.__file__).resolve()
    found = [
        f"{path.relative_to(CHECKOUT)}:{line}: {value!r}"
        for folder in FOLDERS
        for path in sorted((CHECKOUT / folder).rglob("*.py"))
        if path.resolve() != module
        for line, value in _literals(path)
    ]
    assert not found, "use tbmon.attributes instead of:\n" + "\n".join(found)
