"""QGIS plugin object: registers the Processing provider, PSDNet menu entries and a toolbar button."""

from __future__ import annotations

from qgis.core import QgsApplication

from .processing.base import tr
from .processing.icons import icon
from .processing.managed import activate_managed_torch
from .processing.provider import PSDNetProvider

MENU = "&PSDNet"  # the menu title is the plugin's name: not translated
INSTALL_ALG = "psdnet:install_pytorch"


class PSDNetPlugin:
    """Plugin wrapper; works with ``iface=None`` (``qgis_process``, headless scripts)."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider: PSDNetProvider | None = None
        self.action = None
        #: the other menu entries ("Install PyTorch…", "About / diagnostics…")
        self.menu_actions: list = []
        # before anything imports torch: a PyTorch installed by psdnet:install_pytorch is found
        activate_managed_torch()

    def initProcessing(self) -> None:
        # Idempotent: QGIS calls this for qgis_process and again from initGui.
        if self.provider is None:
            self.provider = PSDNetProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        self.initProcessing()
        if self.iface is None:
            return
        self.action = self._menu_action(
            tr("Pansharpen (PSDNet)…"), "psdnetPansharpenAction",
            tr("Fuse a panchromatic band and a multispectral image with the PSDNet network"), self.open_dialog,
            with_icon=True)
        self.iface.addRasterToolBarIcon(self.action)
        self.menu_actions = [
            self._menu_action(tr("Install PyTorch…"), "psdnetInstallTorchAction",
                              tr("Install PyTorch for QGIS's Python (CPU or CUDA), needed by PSDNet"),
                              self.open_installer),
            self._menu_action(tr("About / diagnostics…"), "psdnetDiagnosticsAction",
                              tr("Versions, PyTorch location, device and precision, bundled models"),
                              self.open_diagnostics),
        ]

    def _menu_action(self, text: str, name: str, tip: str, slot, with_icon: bool = False):
        from qgis.PyQt.QtGui import QAction  # QtGui in Qt 6; qgis.PyQt maps it for Qt 5

        action = QAction(icon(), text, self.iface.mainWindow()) if with_icon else QAction(text, self.iface.mainWindow())
        action.setObjectName(name)
        action.setToolTip(tip)
        action.triggered.connect(slot)
        self.iface.addPluginToRasterMenu(MENU, action)
        return action

    def open_dialog(self) -> None:
        import importlib.util

        import processing

        if importlib.util.find_spec("torch") is None and self._offer_installer():
            return
        processing.execAlgorithmDialog("psdnet:pansharpen", {})

    def _offer_installer(self) -> bool:
        """No torch: ask whether to open the installer instead; True when it was opened."""
        from qgis.PyQt.QtWidgets import QMessageBox

        answer = QMessageBox.question(
            self.iface.mainWindow(), tr("PSDNet"),
            tr("PSDNet needs PyTorch, which QGIS's Python cannot import yet. Open the installer "
               "(PSDNet ▸ Install PyTorch…) now? The classical methods work without it."))
        if answer != QMessageBox.StandardButton.Yes:
            return False
        self.open_installer()
        return True

    def open_installer(self) -> None:
        """The installer's Processing dialog: a background task with progress bar and Cancel."""
        import processing

        processing.execAlgorithmDialog(INSTALL_ALG, {})

    def diagnostics_dialog(self):
        """The "About / diagnostics" window (not shown)."""
        from .processing.diagnostics_algorithm import qgis_diagnostics
        from .processing.diagnostics_dialog import DiagnosticsDialog

        return DiagnosticsDialog(qgis_diagnostics(), self.iface.mainWindow() if self.iface else None)

    def open_diagnostics(self) -> None:
        self.diagnostics_dialog().exec()

    def unload(self) -> None:
        if self.iface is not None:
            for action in [self.action, *self.menu_actions]:
                if action is None:
                    continue
                self.iface.removePluginRasterMenu(MENU, action)
                action.deleteLater()
            if self.action is not None:
                self.iface.removeRasterToolBarIcon(self.action)
        self.action = None
        self.menu_actions = []
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
