"""The package's import graph has no cycle (STYLE rule 13).

Every ``import`` counts, wherever it is: at the top, inside a function (a
lazy import is still an edge), or under ``TYPE_CHECKING``. A module that
needs code from a module that imports it receives a callable instead (the
front ends receive ``classify_words``).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

import statetrace_guard

ROOT = Path(statetrace_guard.__file__).resolve().parent


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (packages by their __init__)."""
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _targets(
    current: str, node: ast.Import | ast.ImportFrom, known: Mapping[str, Path]
) -> list[str]:
    """The package modules one import statement loads."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in known]
    base = node.module or ""
    if node.level:
        package = current.split(".")
        if known[current].name != "__init__.py":
            package = package[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    out = []
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        out.append(submodule if submodule in known else base)
    return [name for name in out if name in known]


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (every import statement)."""
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[name].update(t for t in _targets(name, node, known) if t != name)
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


class TestImportGraph:
    def test_package_has_no_import_cycle(self):
        """No module reaches itself through imports, lazy or typing-only ones included."""
        assert cycles(import_graph()) == []

    def test_lazy_imports_are_edges(self):
        """An import inside a function is in the graph (dispatch loads powershell late)."""
        graph = import_graph()
        assert (
            "statetrace_guard.classify.powershell"
            in graph["statetrace_guard.classify.dispatch"]
        )
        assert "statetrace_guard.supervise" in graph["statetrace_guard.runner"]

    def test_cycle_finder_finds_a_cycle(self):
        """The finder reports a cycle when there is one (so the first test can fail)."""
        graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
        assert cycles(graph) == [["a", "b", "c"]]
