"""The layer order of senet/: packages import only from packages below them, never in a circle, and senet
code is imported at the top of each module (an import inside a function hides a cycle).

The order, bottom to top (README, "Layout"); a package may import any package on a lower floor:
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "senet"

# Floors, bottom first. Packages on one floor do not import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("_validation", "_choices", "_markdown", "_plural", "_subsets", "_errors", "utils", "io"),
    ("layers",),
    ("models",),
    ("convert", "profiler", "data"),
    ("pretrained",),
    ("retrofit",),
    ("factory",),
    ("export", "analysis", "train", "predict"),
    ("bench",),
    ("experiments",),
    ("cli",),
    ("__main__",),
)
FLOOR = {package: floor for floor, packages in enumerate(LAYERS) for package in packages}
# Where senet code may be imported inside a function: the CLI (so that `senet --help` does not import
# torch) and the package's own __init__ (public names imported on first use).
LAZY_ALLOWED = ("cli/", "__init__.py", "__main__.py")


def _package(module: str) -> str | None:
    """``senet.train.run`` -> ``train``; ``senet`` itself -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "senet" else None


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported senet module, line, inside a function) for every import of senet code in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    here = _module_name(path).split(".")
    is_package = path.name == "__init__.py"
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                continue  # annotations only: never executed
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, in_function) for a in child.names if a.name.startswith("senet"))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = here if is_package else here[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    module = ".".join(base + ([child.module] if child.module else []))
                else:
                    module = child.module or ""
                if module.startswith("senet"):
                    if child.module is None or module.count(".") == 0:  # `from . import x`, `from senet import x`
                        found.extend((f"{module}.{a.name}" if _is_module(f"{module}.{a.name}") else module,
                                      child.lineno, in_function) for a in child.names)  # fmt: skip
                    else:
                        found.append((module, child.lineno, in_function))
            visit(child, nested)

    visit(tree, False)
    return found


def _is_module(name: str) -> bool:
    """Whether ``senet.x.y`` names a module or package of the tree (not a name defined in one)."""
    path = ROOT.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _files() -> list[Path]:
    return sorted(ROOT.rglob("*.py"))


def package_graph() -> dict[str, set[str]]:
    """Package -> the senet packages it imports (top-level and function-level imports alike)."""
    graph: dict[str, set[str]] = {}
    for path in _files():
        source = _package(_module_name(path))
        if source is None:
            continue
        for module, _, _ in _imports(path):
            target = _package(module)
            if target is not None and target != source:
                graph.setdefault(source, set()).add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = dfs(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = dfs(node)
            if found:
                return found
    return None


def upward_imports() -> list[str]:
    """Every import of a package on a higher floor (or on the same floor, from another package)."""
    bad = []
    for path in _files():
        source = _package(_module_name(path))
        if source is None:
            continue
        for module, line, _ in _imports(path):
            target = _package(module)
            if target is None or target == source:
                continue
            if target not in FLOOR or source not in FLOOR:
                bad.append(f"{path.relative_to(ROOT.parent)}:{line}: {source} or {target} has no floor in LAYERS")
            elif FLOOR[target] >= FLOOR[source]:
                bad.append(f"{path.relative_to(ROOT.parent)}:{line}: {source} (floor {FLOOR[source]}) imports "
                           f"{module} (floor {FLOOR[target]})")
    return bad


def test_every_package_has_a_floor():
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    modules = {p.stem for p in ROOT.glob("_*.py") if p.name not in ("__init__.py", "__main__.py")}
    assert packages | modules <= set(FLOOR), sorted((packages | modules) - set(FLOOR))


def test_no_import_climbs_to_a_higher_floor():
    assert upward_imports() == []


def test_no_cycle_between_packages():
    assert find_cycle(package_graph()) is None


def test_no_cycle_between_modules():
    graph: dict[str, set[str]] = {}
    names = {_module_name(p) for p in _files()}
    for path in _files():
        graph[_module_name(path)] = {m for m, _, _ in _imports(path) if m in names and m != _module_name(path)}
    # A package's __init__ re-exports its modules: the edge module -> its own package's __init__ is the
    # only kind of cycle Python resolves by design, so those edges are left out.
    for module, targets in graph.items():
        graph[module] = {t for t in targets if not module.startswith(t + ".")}
    assert find_cycle(graph) is None


def test_senet_code_is_imported_at_the_top_of_each_module():
    inside = [
        f"{path.relative_to(ROOT.parent)}:{line}: {module}"
        for path in _files()
        if not any(str(path.relative_to(ROOT)).startswith(a) or path.name == a for a in LAZY_ALLOWED)
        for module, line, in_function in _imports(path)
        if in_function
    ]
    assert inside == []


@pytest.mark.parametrize("plant", ["upward", "cycle", "lazy"])
def test_the_checks_catch_what_they_guard_against(plant, tmp_path, monkeypatch):
    """Planted on a copy of the tree: an upward import, a cycle, a function-level import each fail."""
    import shutil

    copy = tmp_path / "senet"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__", "embedded"))
    monkeypatch.setitem(globals(), "ROOT", copy)
    target = copy / "layers" / "common.py"
    if plant == "upward":
        target.write_text(target.read_text() + "\nfrom senet.train.config import TrainConfig as _planted\n")
        assert any("layers" in b and "senet.train.config" in b for b in upward_imports())
    elif plant == "cycle":
        graph = package_graph()
        graph.setdefault("layers", set()).add("models")
        assert find_cycle(graph) is not None
    else:
        target.write_text(target.read_text() + "\ndef _planted():\n    from senet.models import registry\n")
        with pytest.raises(AssertionError):
            test_senet_code_is_imported_at_the_top_of_each_module()
