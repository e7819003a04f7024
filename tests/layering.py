"""The import graph of ``emulator/``, read from the source with ``ast`` (nothing imported).

Every import counts, wherever it stands: at module level, inside a function, or under
``TYPE_CHECKING`` (a cycle hidden in a function is still a cycle in the design).

    python -m tests.layering          # print module and package cycles, exit 1 if any

``tests/unit/test_layering.py`` asserts there are none and that the pure packages import
no I/O.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "emulator"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}


def imports_of(path: Path, name: str, is_package: bool) -> set[str]:
    """Every module name imported by the file (absolute, resolved relative imports)."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    base = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                target = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                target = node.module or ""
            found.add(target)
            # ``from pkg import mod`` imports the module pkg.mod
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def module_graph() -> dict[str, set[str]]:
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        targets = imports_of(path, name, path.name == "__init__.py")
        graph[name] = {t for t in targets if t in known and t != name}
    return graph


def package_of(module: str) -> str:
    """``emulator.broker.codec`` -> ``emulator.broker``; top-level modules are their own."""
    parts = module.split(".")
    return ".".join(parts[:2])


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, targets in module_graph().items():
        package = package_of(module)
        edges = graph.setdefault(package, set())
        for target in targets:
            other = package_of(target)
            # the root package's __init__ is not a dependency of its children
            if other != package and other != PACKAGE:
                edges.add(other)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
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
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def external_imports(package: str) -> dict[str, set[str]]:
    """Top-level names of everything the modules of ``package`` import from outside it."""
    known = modules()
    found: dict[str, set[str]] = {}
    for name, path in known.items():
        if name == package or name.startswith(package + "."):
            targets = imports_of(path, name, path.name == "__init__.py")
            found[name] = {t.split(".")[0] for t in targets if t}
    return found


def _show(title: str, groups: Iterable[list[str]]) -> int:
    count = 0
    for group in groups:
        count += 1
        print(f"{title} cycle: {' <-> '.join(group)}")
    return count


def main() -> int:
    found = _show("module", cycles(module_graph())) + _show("package", cycles(package_graph()))
    if not found:
        print(f"no import cycles between modules or packages under {PACKAGE}/")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
