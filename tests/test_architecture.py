"""The layer rules of docs/ARCHITECTURE.md, held by reading every module's imports (AST);
and no import cycles between the project's modules (imports inside functions included).

Each module of ``psdnet_qgis`` belongs to a layer (its sub-package). A layer may import the
standard library, the third-party packages listed for it, and the layers of the project it
stands on. "Lazy" packages may only be imported inside a function (so that importing the
module stays cheap: the engine imports torch and the model only when a model runs).
A failure names file:line and the rule.
"""

from __future__ import annotations

import ast
import itertools
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "psdnet_qgis"
STDLIB = set(sys.stdlib_module_names) | {"__future__"}
QGIS = {"qgis", "processing"}


@dataclass(frozen=True)
class Layer:
    """What one layer may import: at module level, and only inside functions (lazy)."""

    third_party: frozenset[str]
    project: frozenset[str]
    lazy: frozenset[str] = frozenset()


def _layer(third: set[str], project: set[str], lazy: set[str] = frozenset()) -> Layer:
    return Layer(frozenset(third), frozenset(project), frozenset(lazy))


# psdnet_qgis.<name> for project layers; "errors" is the shared exception module.
RULES: dict[str, Layer] = {
    "errors": _layer(set(), set()),
    "core": _layer({"numpy"}, {"core", "errors"}),
    # openvino: the optional CPU runtime (model/ovruntime.py), only inside the functions that run it
    "model": _layer({"torch", "numpy"}, {"model", "core", "errors"}, lazy={"openvino"}),
    "training": _layer({"torch", "numpy", "osgeo", "tqdm"}, {"training", "model", "engine", "core", "errors"}),
    # GDAL + numpy; torch, the model and dask only inside the functions that need them
    "engine": _layer({"numpy", "osgeo"}, {"engine", "core", "errors"},
                     lazy={"torch", "model", "dask", "distributed", "tqdm", "PIL"}),
    # QGIS glue: no numpy or torch maths; the engine lazily, when an algorithm runs (torch only
    # to tell the user it is not importable)
    # PyTorch for QGIS's Python (managed folder, pip installer, diagnostics): stdlib + the model
    # registry; torch and the model only inside the diagnostics that report on them
    "deps": _layer(set(), {"deps", "core", "errors"}, lazy={"torch", "model"}),
    "processing": _layer(QGIS, {"processing", "core", "deps", "errors"}, lazy={"engine", "model", "torch"}),
    "plugin": _layer(QGIS, {"processing", "deps", "errors"}),
    "__init__": _layer(set(), set(), lazy={"plugin"}),
    # the command line: engine + core; the model and the engine lazily
    "__main__": _layer(set(), {"core", "errors"}, lazy={"engine", "model", "tqdm", "torch", "deps"}),
}


def _layer_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(tree: ast.Module, module: str) -> list[tuple[int, str, bool]]:
    """(line, imported top-level name or 'psdnet_qgis.<layer>', inside a function?) of a module."""
    found: list[tuple[int, str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    found.append((child.lineno, alias.name, inside))
            elif isinstance(child, ast.ImportFrom):
                name = child.module or ""
                if child.level:  # relative: resolve against this module's package
                    base = module.split(".")[: -child.level]
                    name = ".".join(base + ([name] if name else []))
                    if not child.module:  # "from . import x": x are modules of that package
                        found.extend((child.lineno, f"{name}.{a.name}", inside) for a in child.names)
                        continue
                found.append((child.lineno, name, inside))
            visit(child, inside)

    visit(tree, False)
    return found


def _violations(path: Path) -> list[str]:
    rel = path.relative_to(ROOT)
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    if module.endswith(".__init__"):
        module = module[: -len(".__init__")] + ".__init__"
    layer = _layer_of(path)
    rule = RULES.get(layer)
    if rule is None:
        return [f"{rel}: module in no layer of RULES (add it to docs/ARCHITECTURE.md and this test)"]
    out = []
    for line, name, inside in _imports(ast.parse(path.read_text(encoding="utf-8")), module):
        parts = name.split(".")
        if parts[0] == "psdnet_qgis":
            if len(parts) == 1:
                continue
            target = parts[1]
            allowed, lazy = rule.project, rule.lazy
        else:
            target = parts[0]
            if target in STDLIB:
                continue
            allowed, lazy = rule.third_party, rule.lazy
        if target in allowed or (inside and target in lazy):
            continue
        where = "at module level" if target in lazy else ""
        out.append(f"{rel}:{line}: layer '{layer}' imports {name} {where}".rstrip()
                   + f" (allowed: {sorted(allowed)}; inside functions also {sorted(lazy)})")
    return out


def _sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_follows_its_layer(path: Path) -> None:
    problems = _violations(path)
    assert not problems, "\n".join(problems)


def test_the_checker_flags_a_wrong_way_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "psdnet_qgis"
    (fake / "model").mkdir(parents=True)
    bad = fake / "model" / "bad.py"
    bad.write_text("import numpy\nfrom psdnet_qgis.engine import raster\nfrom osgeo import gdal\n"
                   "def f():\n    import qgis.core\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = _violations(bad)
    assert [p.split(":")[1] for p in found] == ["2", "3", "5"], found


def test_import_psdnet_qgis_imports_nothing_heavy() -> None:
    heavy = ("torch", "numpy", "osgeo", "rasterio", "qgis", "dask", "distributed")
    code = ("import sys, psdnet_qgis; "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


# ------------------------------------------------------------------------- import cycles
def _module_name(path: Path) -> str:
    """``psdnet_qgis.a.b`` of a file (a package's ``__init__.py``: the package's name)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_graph() -> dict[str, dict[str, str]]:
    """Every module of the package -> {project module it imports: "file:line" of the import}.

    Imports inside functions count too: a lazy import keeps an import cheap, but a circle of
    modules that need each other is still one tangled unit (``processing.base`` imported the
    provider, which imports every algorithm). ``from pkg import name`` is an edge to
    ``pkg.name`` when that is a module, else to ``pkg``.
    """
    files = {_module_name(p): p for p in _sources()}
    graph: dict[str, dict[str, str]] = {}
    for module, path in files.items():
        own = module + ".__init__" if path.name == "__init__.py" else module  # relative imports' base
        edges: dict[str, str] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(own.split(".")[: -node.level] + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            else:
                continue
            for target in targets:
                if target in files and target != module:
                    edges.setdefault(target, f"{path.relative_to(ROOT)}:{node.lineno}")
        graph[module] = edges
    return graph


def _find_cycle(graph: dict[str, dict[str, str]]) -> list[str]:
    """One circle of imports as "a imports b (file:line)" steps; [] when the graph has none."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(m: str) -> list[str]:
        state[m] = 1
        path.append(m)
        for n in sorted(graph.get(m, {})):
            if state.get(n) == 1:
                loop = path[path.index(n):] + [n]
                return [f"{a} imports {b} ({graph[a][b]})" for a, b in itertools.pairwise(loop)]
            if n not in state and (found := visit(n)):
                return found
        path.pop()
        state[m] = 2
        return []

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return []


def test_no_import_cycles() -> None:
    cycle = _find_cycle(_module_graph())
    assert not cycle, "import cycle (move what both sides need into a module of its own):\n" + "\n".join(cycle)


def test_the_cycle_search_finds_a_lazy_circle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "psdnet_qgis"
    (fake / "processing").mkdir(parents=True)
    (fake / "__init__.py").write_text("", encoding="utf-8")
    (fake / "processing" / "__init__.py").write_text("", encoding="utf-8")
    (fake / "processing" / "provider.py").write_text("def load():\n    from . import base\n", encoding="utf-8")
    (fake / "processing" / "base.py").write_text("from .icons import icon\nfrom .provider import x\n",
                                                 encoding="utf-8")
    (fake / "processing" / "icons.py").write_text("import os\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    cycle = _find_cycle(_module_graph())
    assert cycle == [
        f"psdnet_qgis.processing.base imports psdnet_qgis.processing.provider "
        f"({Path('psdnet_qgis/processing/base.py')}:2)",
        f"psdnet_qgis.processing.provider imports psdnet_qgis.processing.base "
        f"({Path('psdnet_qgis/processing/provider.py')}:2)",
    ], cycle
    (fake / "processing" / "base.py").write_text("from .icons import icon\n", encoding="utf-8")
    assert _find_cycle(_module_graph()) == []


def test_test_modules_share_helpers_not_each_other() -> None:
    """Helpers shared by tests live in tests/rasters.py, tests/cpu.py, ... or a conftest fixture:
    a test module imported by another one runs its module-level code (and collects) twice."""
    tests = ROOT / "tests"
    found = []
    for path in sorted(tests.rglob("test_*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for line, name, _ in _imports(ast.parse(path.read_text(encoding="utf-8")), module):
            if name.startswith("tests.") and name.rsplit(".", 1)[-1].startswith("test_"):
                found.append(f"{path.relative_to(ROOT)}:{line}: imports {name}")
    assert not found, "\n".join(found)
