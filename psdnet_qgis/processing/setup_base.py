"""What the "Set-up" algorithms (``psdnet:install_pytorch``, ``psdnet:diagnostics``) share."""

from __future__ import annotations

from qgis.core import Qgis

from .base import PSDNetAlgorithm


class SetupAlgorithm(PSDNetAlgorithm):
    """An algorithm of the "Set-up" group: no layers, hidden from the model designer."""

    def group(self) -> str:
        return self.tr("Set-up")

    def groupId(self) -> str:
        return "setup"

    def flags(self):
        return super().flags() | Qgis.ProcessingAlgorithmFlag.HideFromModeler
