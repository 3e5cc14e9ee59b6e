"""No module of the acsprov package imports itself, directly or through others.

The graph is built from the source with :mod:`ast`, not by importing: every
``import`` and ``from ... import`` statement counts, at module level and inside
functions alike (a deferred import is still a dependency; deferring one only hides
a cycle until the function runs).  ``from package import name`` is an edge to the
submodule ``package.name`` when that is a module, and to the package otherwise.
Importing a submodule runs its parent package first; that implicit edge is left
out, as Python resolves it without a cycle so long as the package's ``__init__``
does not import back from what imports it (which the explicit edges catch).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "acsprov"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """Absolute name of ``from <level dots><target> import ...`` inside `module`."""
    if level == 0:
        return target or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the acsprov modules it imports (anywhere in its source)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node.level, node.module)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:  # "import a.b.c" -> nearest module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), as sorted lists."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(groups)


def test_the_graph_sees_module_and_function_level_imports():
    graph = import_graph(_modules())
    # module level, absolute
    assert "acsprov.calib.imset" in graph["acsprov.calib.fitsio"]
    # inside a function, relative: engine.calacs defers the native engine's import
    assert "acsprov.calib.calacs" in graph["acsprov.engine"]
    # "from acsprov.calib.acsrej import find_root" (in a function): the package
    assert "acsprov.calib.acsrej" in graph["acsprov.calib.calacs"]
    # "from . import bestrefs, ..." in a package's function: its submodules
    assert "acsprov.actions.bestrefs" in graph["acsprov.actions"]
    # "from .context import Context" in a submodule: its sibling
    assert "acsprov.actions.context" in graph["acsprov.actions.bestrefs"]
    # nothing outside the package
    assert all(t.startswith("acsprov") for edges in graph.values() for t in edges)


def test_find_cycles_reports_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_the_package_has_no_import_cycles():
    cycles = find_cycles(import_graph(_modules()))
    assert cycles == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def dangling_imports(modules: dict[str, Path]) -> list[str]:
    """``from .x import y`` statements inside acsprov whose module ``x`` does not exist
    (an import deferred into a function is found only when the function runs)."""
    missing = []
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                target = _resolve(name, is_package, node.level, node.module)
                if target not in modules:
                    missing.append(f"{name}:{node.lineno}: {target}")
            elif isinstance(node, ast.Import):
                missing += [f"{name}:{node.lineno}: {a.name}" for a in node.names
                            if a.name.startswith("acsprov.") and a.name not in modules]
    return missing


def test_every_import_inside_the_package_names_a_module_that_exists():
    assert dangling_imports(_modules()) == []


def test_a_dangling_import_is_found(tmp_path):
    (tmp_path / "a.py").write_text("def f():\n    from .gone import x\n")
    (tmp_path / "b.py").write_text("from .a import f\n")
    modules = {"pkg.a": tmp_path / "a.py", "pkg.b": tmp_path / "b.py"}
    assert dangling_imports(modules) == ["pkg.a:2: pkg.gone"]
