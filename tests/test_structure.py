"""The project's shape (docs/architecture.md): import rules, no cycles, focused modules.

Imports are read from the source (every ``import`` statement, those inside functions too,
but not those under ``if TYPE_CHECKING:``), so a lazy import that closes a cycle counts.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mosaic", "tasks", "flows", "cli")
MAX_LINES = 500
"""Longest module (docs/architecture.md: one concern per module), tests included."""
SIZED = (*PACKAGES, "deployments", "benchmarks", "tests")
LAYERS = {
    "mosaic": {"mosaic"},
    "tasks": {"mosaic", "tasks"},
    "flows": {"mosaic", "tasks", "flows"},
    "cli": {"mosaic", "flows", "cli"},
}
"""What each package may import of the project: the core nothing above it, tasks the core,
flows tasks and the core, the command line the flows and the core (never the tasks)."""
FORBIDDEN_IN_CORE = {"prefect", "flows", "tasks", "cli"}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Every module ``module`` imports (project modules resolved, others by top name)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _project(name: str, known: set[str]) -> str | None:
    """The project module ``name`` is (or is inside), None for third-party modules."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def test_the_core_never_imports_prefect_or_the_layers_above_it(graph):
    offending = {module: sorted(name for name in imports
                                if name.split(".")[0] in FORBIDDEN_IN_CORE)
                 for module, imports in graph.items() if module.split(".")[0] == "mosaic"}
    assert {module: names for module, names in offending.items() if names} == {}


def test_each_package_imports_only_the_layers_below_it(graph):
    wrong = {}
    for module, imports in graph.items():
        allowed = LAYERS[module.split(".")[0]]
        bad = sorted(name for name in imports
                     if name.split(".")[0] in LAYERS and name.split(".")[0] not in allowed)
        if bad:
            wrong[module] = bad
    assert wrong == {}


def test_there_is_no_import_cycle(graph):
    known = set(graph)
    edges = {module: {target for name in imports
                      if (target := _project(name, known)) and target != module}
             for module, imports in graph.items()}
    cycles = _cycles(edges)
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


def test_cycles_are_found_when_there_are_some():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_is_over_the_size_limit():
    paths = [path for folder in SIZED for path in sorted((ROOT / folder).rglob("*.py"))]
    long = {str(path.relative_to(ROOT)): lines for path in paths
            if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert paths and long == {}
