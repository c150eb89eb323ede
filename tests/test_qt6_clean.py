"""Qt 6 / QGIS 4 readiness of the plugin code, held by reading it (QGIS 4 cannot be installed here).

QGIS 4 runs PyQt6, where enums are scoped only (``Qt.AlignmentFlag.AlignLeft``, not
``Qt.AlignLeft``; QGIS's own enums likewise), ``exec_()`` is gone and PyQt5 cannot be
imported. Qt 5.15 / QGIS 3.40 already accept every scoped spelling, so the plugin can use
them today. This test walks the AST of every module of ``psdnet_qgis`` and fails with
file:line on: an import of PyQt5 / PyQt6 / PySide (Qt only through ``qgis.PyQt``), a call of
``exec_``, and an enum value reached without its enum type on a Qt or QGIS class.
"""

from __future__ import annotations

import ast
import enum
import importlib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "psdnet_qgis"
QT_MODULES = ("qgis.PyQt", "qgis.core", "qgis.gui")


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _is_enum_type(obj: Any) -> bool:
    if isinstance(obj, type) and issubclass(obj, enum.Enum):
        return True
    return type(obj).__name__ == "enumtype"  # sip's enum types (PyQt5)


def _is_enum_value(obj: Any) -> bool:
    return isinstance(obj, enum.Enum) or _is_enum_type(type(obj))


def _qt_names(tree: ast.Module) -> dict[str, Any]:
    """Names bound by ``from qgis.PyQt... / qgis.core / qgis.gui import X`` anywhere in a module."""
    names: dict[str, Any] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(QT_MODULES):
            mod = importlib.import_module(node.module)
            for alias in node.names:
                if hasattr(mod, alias.name):
                    names[alias.asname or alias.name] = getattr(mod, alias.name)
    return names


def _resolve(node: ast.AST, names: dict[str, Any]) -> Any:
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, names)
        return None if base is None else getattr(base, node.attr, None)
    return None


def _problems(src: str, rel: str) -> list[str]:
    tree = ast.parse(src, filename=rel)
    out = []
    for node in ast.walk(tree):
        mods = []
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            mods = [node.module]
        for m in mods:
            if m.split(".")[0] in ("PyQt5", "PyQt6", "PySide2", "PySide6", "sip"):
                out.append(f"{rel}:{node.lineno}: imports {m}: import Qt through qgis.PyQt")
        if isinstance(node, ast.Attribute) and node.attr == "exec_":
            out.append(f"{rel}:{node.lineno}: exec_() does not exist in PyQt6: call exec()")
    names = _qt_names(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        owner = _resolve(node.value, names)
        if owner is None or _is_enum_type(owner):
            continue  # not Qt / QGIS, or already scoped (Enum.Value)
        value = getattr(owner, node.attr, None)
        if _is_enum_value(value):
            scoped = f"{type(value).__qualname__}.{getattr(value, 'name', node.attr)}"
            out.append(f"{rel}:{node.lineno}: unscoped enum {ast.unparse(node)}: write {scoped} "
                       "(QGIS 3.40 / Qt 5.15 accept it too)")
    return out


def test_the_checker_sees_what_it_must() -> None:
    """The checker itself: it flags an unscoped Qt enum, exec_ and PyQt5, and passes scoped ones."""
    src = ("from qgis.PyQt.QtCore import Qt\nfrom PyQt5 import QtCore\n"
           "a = Qt.AlignLeft\nb = Qt.AlignmentFlag.AlignLeft\nd.exec_()\n")
    found = _problems(src, "probe.py")
    assert any(":3: unscoped enum Qt.AlignLeft" in p for p in found), found
    assert any(":2: imports PyQt5" in p for p in found), found
    assert any(":5: exec_()" in p for p in found), found
    assert not any(":4:" in p for p in found), found


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_is_qt6_clean(path: Path) -> None:
    problems = _problems(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert not problems, "\n".join(problems)


def test_metadata_admits_qgis_4_and_the_tested_minimum() -> None:
    import configparser

    from qgis.core import Qgis

    meta = configparser.ConfigParser()
    meta.read(ROOT / "metadata.txt", encoding="utf-8")
    general = meta["general"]
    assert general["qgisMaximumVersion"] == "4.99"  # QGIS 4 takes plugins whose maximum is 4.x
    minimum = tuple(int(x) for x in general["qgisMinimumVersion"].split("."))
    running = tuple(int(x) for x in Qgis.version().split("-")[0].split(".")[:2])
    assert (3, 40) <= minimum <= running  # scoped Qgis.* enums need >= 3.36; 3.40 is the oldest tested
    assert "supportsQt6" not in general  # deprecated: the maximum version says it
