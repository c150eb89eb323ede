"""Processing provider ``psdnet``."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .icons import PACKAGE_DIR, icon, resources_dir  # noqa: F401 - PACKAGE_DIR, resources_dir: as before
from .managed import activate_managed_torch, managed_target  # noqa: F401 - used by plugin.py and the tests


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
