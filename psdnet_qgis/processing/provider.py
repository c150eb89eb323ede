"""Processing provider ``psdnet``."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsApplication, QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..deps.paths import activate, managed_dir

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def resources_dir() -> Path:
    """``resources/`` inside the installed plugin folder, else the repository's top-level one."""
    inside = PACKAGE_DIR / "resources"
    return inside if inside.is_dir() else PACKAGE_DIR.parent / "resources"


def icon() -> QIcon:
    return QIcon(str(resources_dir() / "icon.svg"))


def managed_target() -> Path:
    """The managed PyTorch folder of the running QGIS profile (``deps.paths.managed_dir``)."""
    return managed_dir(QgsApplication.qgisSettingsDirPath())


def activate_managed_torch() -> bool:
    """Put the profile's managed PyTorch first on ``sys.path`` when installed (imports nothing)."""
    return activate(managed_target())


class PSDNetProvider(QgsProcessingProvider):
    """Holds the PSDNet algorithms; algorithms import torch only when they run."""

    def id(self) -> str:
        return "psdnet"

    def name(self) -> str:
        return "PSDNet"

    def longName(self) -> str:
        return "PSDNet pansharpening"

    def icon(self) -> QIcon:
        return icon()

    def loadAlgorithms(self) -> None:
        from .adapt_algorithm import AdaptAlgorithm
        from .assess_algorithm import AssessAlgorithm
        from .classical_algorithm import ClassicalAlgorithm
        from .diagnostics_algorithm import DiagnosticsAlgorithm
        from .install_algorithm import InstallPytorchAlgorithm
        from .pansharpen_algorithm import PansharpenAlgorithm

        # here too, not only at plugin start: scripts and tests register the provider directly
        activate_managed_torch()
        self.addAlgorithm(PansharpenAlgorithm())
        self.addAlgorithm(ClassicalAlgorithm())
        self.addAlgorithm(AssessAlgorithm())
        self.addAlgorithm(AdaptAlgorithm())
        self.addAlgorithm(InstallPytorchAlgorithm())
        self.addAlgorithm(DiagnosticsAlgorithm())
