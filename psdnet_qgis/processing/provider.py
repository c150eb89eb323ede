"""Processing provider ``psdnet``."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .icons import PACKAGE_DIR, icon, resources_dir  # noqa: F401 - PACKAGE_DIR, resources_dir: as before


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
        from .pansharpen_algorithm import PansharpenAlgorithm

        self.addAlgorithm(PansharpenAlgorithm())
        self.addAlgorithm(ClassicalAlgorithm())
        self.addAlgorithm(AssessAlgorithm())
        self.addAlgorithm(AdaptAlgorithm())
