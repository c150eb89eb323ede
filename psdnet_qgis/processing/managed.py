"""The PyTorch folder the plugin's installer manages inside the running QGIS profile."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsApplication

from ..deps.paths import activate, managed_dir


def managed_target() -> Path:
    """The managed PyTorch folder of the running QGIS profile (``deps.paths.managed_dir``)."""
    return managed_dir(QgsApplication.qgisSettingsDirPath())


def activate_managed_torch() -> bool:
    """Put the profile's managed PyTorch first on ``sys.path`` when installed (imports nothing)."""
    return activate(managed_target())
