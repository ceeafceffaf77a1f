"""The scores modules import one another in one direction only (issue 18, item 9): no circle,
not even through an import hidden inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import dreamer_pipeline.pipelines.scores as scores_package

PACKAGE = Path(scores_package.__file__).parent


def sibling_imports(path: Path) -> set[str]:
    """The scores modules `path` imports anywhere in its code (`from .name import ...`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return path[path.index(module):] + [module]
        if module in done:
            return None
        for imported in sorted(graph.get(module, ())):
            circle = visit(imported, path + [module])
            if circle:
                return circle
        done.add(module)
        return None

    for module in sorted(graph):
        circle = visit(module, [])
        if circle:
            return circle
    return None


def test_scores_modules_import_without_a_circle():
    graph = {path.stem: sibling_imports(path) for path in PACKAGE.glob("*.py")}
    assert "reference_curves" in graph["games"]   # the graph is read, not empty
    assert find_circle(graph) is None, " -> ".join(find_circle(graph))


def test_the_circle_finder_finds_a_circle():
    assert find_circle({"games": {"reference_curves"}, "reference_curves": {"games"}}) == [
        "games", "reference_curves", "games"]
