"""QGIS plugin object: registers the Processing provider, a Raster-menu entry and a toolbar button."""

from __future__ import annotations

from qgis.core import QgsApplication

from .processing.base import tr
from .processing.provider import PSDNetProvider, icon

MENU = "&PSDNet"  # the menu title is the plugin's name: not translated


class PSDNetPlugin:
    """Plugin wrapper; works with ``iface=None`` (``qgis_process``, headless scripts)."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider: PSDNetProvider | None = None
        self.action = None

    def initProcessing(self) -> None:
        # Idempotent: QGIS calls this for qgis_process and again from initGui.
        if self.provider is None:
            self.provider = PSDNetProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        self.initProcessing()
        if self.iface is None:
            return
        from qgis.PyQt.QtGui import QAction  # QtGui in Qt 6; qgis.PyQt maps it for Qt 5

        self.action = QAction(icon(), tr("Pansharpen (PSDNet)…"), self.iface.mainWindow())
        self.action.setObjectName("psdnetPansharpenAction")
        self.action.setToolTip(tr("Fuse a panchromatic band and a multispectral image with the PSDNet network"))
        self.action.triggered.connect(self.open_dialog)
        self.iface.addPluginToRasterMenu(MENU, self.action)
        self.iface.addRasterToolBarIcon(self.action)

    def open_dialog(self) -> None:
        import processing

        processing.execAlgorithmDialog("psdnet:pansharpen", {})

    def unload(self) -> None:
        if self.action is not None and self.iface is not None:
            self.iface.removePluginRasterMenu(MENU, self.action)
            self.iface.removeRasterToolBarIcon(self.action)
            self.action.deleteLater()
            self.action = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
