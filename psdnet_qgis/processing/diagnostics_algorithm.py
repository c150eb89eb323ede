"""``psdnet:diagnostics`` — "About / diagnostics": the text of ``deps.doctor`` as an output."""

from __future__ import annotations

from qgis.core import Qgis, QgsProcessingOutputString

from ..deps.doctor import diagnostics_text
from .managed import managed_target
from .setup_base import SetupAlgorithm


def qgis_diagnostics() -> str:
    """The diagnostics of this QGIS: its version and the profile's managed PyTorch folder."""
    return diagnostics_text(qgis_version=Qgis.version(), target=managed_target())


class DiagnosticsAlgorithm(SetupAlgorithm):
    """Reports plugin, QGIS, Python, PyTorch, device, precision and bundled-model facts."""

    TEXT = "TEXT"

    def name(self) -> str:
        return "diagnostics"

    def displayName(self) -> str:
        return self.tr("About / diagnostics")

    def initAlgorithm(self, config=None) -> None:
        self.addOutput(QgsProcessingOutputString(self.TEXT, self.tr("Diagnostics text")))

    def processAlgorithm(self, parameters, context, feedback):
        text = qgis_diagnostics()
        for line in text.splitlines():
            feedback.pushInfo(line)
        return {self.TEXT: text}

    def helpText(self) -> str:
        return self.tr(
            "<p>Lists the plugin version, QGIS and Python versions, where PyTorch was loaded from (the "
            "plugin's managed folder or elsewhere), the CUDA device and whether it is used, the CPU's vector "
            "class and the precision PSDNet will compute in, and the bundled models with their SHA-256. "
            "Paste it into a bug report. Command line without QGIS: <code>python -m psdnet_qgis doctor</code>.</p>")
