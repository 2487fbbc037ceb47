"""The code's shape: no import circles inside a package, and engine modules stay small.

Every import counts, including those inside functions (a lazy import is still a circle
for a reader); only ``if TYPE_CHECKING:`` blocks are left out, as they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "engine": ROOT / "engine",
    "airflow_integration": ROOT / "airflow_integration",
}
_EMU = ROOT / "packages" / "azsql-emulator" / "azsql_emulator"
if _EMU.is_dir():
    PACKAGES["azsql_emulator"] = _EMU
MAX_ENGINE_MODULE_LINES = 600
# compiled extension modules (built by CMake, no .py file): importing one is no circle
NATIVE_MODULES = {"engine._fastcast", "engine._bcp", "azsql_emulator._tdsfast"}


def _modules(package: str, root: Path) -> dict[str, Path]:
    found = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join([package, *parts])] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> list[str]:
    names: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # "from p import x" depends on p.x when x is a module, else on p itself
            names.extend(f"{prefix}.{alias.name}|{prefix}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def _graph(package: str, root: Path) -> dict[str, set[str]]:
    modules = _modules(package, root)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        targets = set()
        for imported in _imported_names(tree, name, path.name == "__init__.py"):
            # "from engine.errors import X" names engine.errors; "from engine import errors"
            # names engine.errors. Importing a module runs its packages' __init__ first, but
            # that is Python's mechanics, not a dependency a reader follows.
            submodule, _, parent = imported.partition("|")
            if submodule in NATIVE_MODULES:
                continue
            target = submodule if submodule in modules or not parent else parent
            if target in modules and target != name:
                targets.add(target)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_cycle_finder_finds_a_circle_and_ignores_type_checking() -> None:
    graph = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": {"p.a"}}
    assert _cycles(graph) == [["p.a", "p.b", "p.c"]]
    code = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from p.b import X\n"
            "def f():\n    from p.c import Y\n")
    assert _imported_names(ast.parse(code), "p.a", False) == ["typing.TYPE_CHECKING|typing",
                                                              "p.c.Y|p.c"]


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_import_circles(package: str) -> None:
    cycles = _cycles(_graph(package, PACKAGES[package]))
    assert cycles == [], f"import circles in {package}: {cycles}"


def test_engine_modules_stay_small() -> None:
    long = {name: n for name, path in _modules("engine", PACKAGES["engine"]).items()
            if (n := len(path.read_text(encoding="utf-8").splitlines()))
            > MAX_ENGINE_MODULE_LINES}
    assert long == {}, f"engine modules over {MAX_ENGINE_MODULE_LINES} lines: {long}"
