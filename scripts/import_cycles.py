"""Import cycles between the project's modules, and which top-level package imports which.

Every ``import`` and ``from ... import`` counts, at module level or inside a function or an
``if TYPE_CHECKING:`` block alike: a cycle hidden in a function is still a cycle. ``from a.b import c``
points at ``a.b.c`` when that is a module, else at ``a.b``; a package's ``__init__`` is the module ``a.b``.
Importing a submodule runs its parent package's ``__init__`` too, but that edge is left out: every package
that re-exports its submodules would otherwise be a cycle.

    python scripts/import_cycles.py [PACKAGE ...]    # exits 1 when there is a cycle
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("commands", "router", "classifier", "lora_registry", "experts", "database")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, name: str, is_package: bool, modules: set[str]) -> Iterator[str]:
    """The project modules that one module's import statements name."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # Relative: from the module's own package (itself, for an __init__) up level - 1 packages.
                here = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join(here[: len(here) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for target in targets:
            # `import a.b.c` names a.b.c; keep the longest prefix that is one of ours.
            parts = target.split(".")
            for end in range(len(parts), 0, -1):
                if ".".join(parts[:end]) in modules:
                    yield ".".join(parts[:end])
                    break


def graph(packages: tuple[str, ...]) -> dict[str, set[str]]:
    files = {module_name(p): p for top in packages for p in sorted((ROOT / top).rglob("*.py"))}
    modules = set(files)
    edges: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        edges[name] = set(imported(tree, name, path.name == "__init__.py", modules)) - {name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
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

    sys.setrecursionlimit(10_000)
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def main(argv: list[str]) -> int:
    packages = tuple(argv) or PACKAGES
    edges = graph(packages)
    print(f"{len(edges)} modules, {sum(map(len, edges.values()))} imports between them")
    between: dict[str, set[str]] = {}
    for source, targets in edges.items():
        for target in targets:
            if source.split(".")[0] != target.split(".")[0]:
                between.setdefault(source.split(".")[0], set()).add(target.split(".")[0])
    for top in packages:
        print(f"  {top} -> {', '.join(sorted(between.get(top, ()))) or '(nothing of the project)'}")
    found = cycles(edges)
    for component in found:
        members = set(component)
        print("cycle:", "; ".join(f"{m} -> {', '.join(sorted(edges[m] & members))}" for m in component))
    print(f"{len(found)} import cycle(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
