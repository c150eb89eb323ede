"""The plugin's icon, shared by the provider, every algorithm and the plugin's menu.

A module of its own so that the algorithms need not import the provider, which imports them.
"""

from __future__ import annotations

from pathlib import Path

from qgis.PyQt.QtGui import QIcon

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def resources_dir() -> Path:
    """``resources/`` inside the installed plugin folder, else the repository's top-level one."""
    inside = PACKAGE_DIR / "resources"
    return inside if inside.is_dir() else PACKAGE_DIR.parent / "resources"


def icon() -> QIcon:
    return QIcon(str(resources_dir() / "icon.svg"))
