"""The package's module-level imports form no cycle.

A cycle means two modules each need the other half-built at import time; it is
how "the table imports its backends and the backends import the table" starts.
Imports inside functions count too, and so does a backend table's
`lazy("module", ...)`: deferring one of the two imports into a function hides a cycle from the interpreter but leaves the two modules just as
tangled. (Deferred imports of vendor libraries - pygame, cv2, onnxruntime - are
outside the package and do not count.) Imports under `if TYPE_CHECKING:` never
run and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import firmware

PACKAGE_ROOT = Path(firmware.__file__).resolve().parent
PACKAGE = "firmware"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def resolve_from(current: str, package: bool, level: int, module: str | None) -> str:
    """The absolute name a `from ... import` refers to, as Python resolves it."""
    if level == 0:
        return module or ""
    base = current.split(".") if package else current.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def is_lazy_backend(node: ast.AST) -> bool:
    """`lazy("firmware.devices.camera.file", ...)` in a backend table (firmware/devices/backend_table.py)."""
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "lazy"
            and bool(node.args) and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str))


def package_imports(path: Path, known: set[str]) -> set[str]:
    """The package modules `path` imports, at module level or inside a function."""
    tree = ast.parse(path.read_text(), filename=str(path))
    current, package = module_name(path), is_package(path)
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = resolve_from(current, package, node.level, node.module)
            found.add(target)
            # `from pkg import mod` imports the sub-module pkg.mod.
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif is_lazy_backend(node):  # a backend table's deferred import, by name
            found.add(node.args[0].value)
        if is_type_checking(node):  # never runs: annotations only
            for child in node.orelse:
                visit(child)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {name for name in found if name in known and name != current}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE_ROOT.rglob("*.py"))
    known = {module_name(path) for path in paths}
    return {module_name(path): package_imports(path, known) for path in paths}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strongconnect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                strongconnect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
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

    for node in sorted(graph):
        if node not in index:
            strongconnect(node)
    return found


def test_the_cycle_finder_finds_a_cycle_and_passes_a_chain():
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_relative_imports_resolve_like_python():
    assert resolve_from("firmware.devices.camera", False, 1, "base") == "firmware.devices.base"
    assert resolve_from("firmware.devices", True, 1, "base") == "firmware.devices.base"
    assert resolve_from("firmware.devices.camera", False, 2, "config") == "firmware.config"


def test_the_package_imports_form_no_cycle():
    found = cycles(import_graph())
    assert found == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in found)
