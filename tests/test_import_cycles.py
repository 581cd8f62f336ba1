"""No import cycles between convviz's modules, read statically from the source.

Every ``import`` / ``from ... import`` counts, including the ones inside functions (a
lazy import that closes a cycle still ties the two modules together). A package's
``__init__`` counts as a module too: ``from convviz import plot`` depends on the
module ``convviz.plot`` only, but ``import convviz`` or ``from convviz import explain``
depends on ``convviz/__init__.py``, which imports most of the package, so a module it
imports must not do that.
"""

from __future__ import annotations

import ast
import pathlib

# The source tree next to tests/, read without importing it (no backend needed).
PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[1] / "convviz"


def _module_name(path: pathlib.Path, root: pathlib.Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: pathlib.Path) -> dict[str, set[str]]:
    """Module -> the package modules it imports (anywhere in its source)."""
    modules = {_module_name(p, root): p for p in root.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    here = name.split(".") if is_package else name.split(".")[:-1]
                    here = here[: len(here) - (node.level - 1)]
                    base = ".".join(here + ([base] if base else []))
                # ``from pkg import sub`` needs the submodule pkg.sub when there is one,
                # and pkg's __init__ otherwise (a name defined there).
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
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
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found)


def test_the_checker_finds_lazy_and_relative_cycles(tmp_path):
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("from pkg import a, b\nfrom pkg.sub import c\n")
    (root / "a.py").write_text("import pkg.b\n")
    (root / "b.py").write_text("def f():\n    from . import a  # lazy, relative\n")
    (root / "sub" / "__init__.py").write_text("")
    (root / "sub" / "c.py").write_text("from ..b import f\n")
    (root / "d.py").write_text("from pkg import plot_thing\n")  # a name, not a module
    edges = import_graph(root)
    assert edges["pkg"] == {"pkg.a", "pkg.b", "pkg.sub.c"}  # the package's own imports count
    assert edges["pkg.sub.c"] == {"pkg.b"}
    assert edges["pkg.d"] == {"pkg"}  # a name defined in pkg/__init__.py
    assert cycles(edges) == [["pkg.a", "pkg.b"]]  # d is not imported by pkg: no cycle
    # A module the package imports that reads a name from the package is a cycle.
    (root / "sub" / "c.py").write_text("import pkg\n")
    assert cycles(import_graph(root)) == [["pkg", "pkg.sub.c"], ["pkg.a", "pkg.b"]]


def test_convviz_has_no_import_cycles():
    found = cycles(import_graph(PACKAGE_DIR))
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)
