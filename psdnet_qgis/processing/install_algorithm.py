"""``psdnet:install_pytorch`` — "Install PyTorch (for QGIS's Python)".

Processing glue around :func:`psdnet_qgis.deps.installer.install`: the dialog (also opened by
the plugin menu's "Install PyTorch…") runs it as a background task with a progress bar and a
Cancel button; ``qgis_process run psdnet:install_pytorch`` runs the same code headless.
"""

from __future__ import annotations

import os

from qgis.core import (
    Qgis,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputFolder,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterString,
)

from ..core.options import TORCH_VARIANTS
from ..deps import installer
from ..errors import PSDNetCanceled
from .feedback import ProcessingFeedback
from .managed import managed_target
from .setup_base import SetupAlgorithm

#: Labels of the VARIANT values (``core.options.TORCH_VARIANTS``).
VARIANT_LABELS = {"auto": "Auto: CUDA when nvidia-smi lists an NVIDIA GPU, else CPU",
                  "cpu": "CPU (about 200 MB download, runs everywhere)",
                  "cuda": "CUDA (NVIDIA GPU; about 3 GB download)"}


class InstallPytorchAlgorithm(SetupAlgorithm):
    """Installs (or removes) PyTorch in the managed folder of the QGIS profile."""

    VARIANT = "VARIANT"
    FIND_LINKS = "FIND_LINKS"
    INDEX_URL = "INDEX_URL"
    OFFLINE = "OFFLINE"
    SPEC = "SPEC"
    UNINSTALL = "UNINSTALL"
    TARGET = "TARGET"
    TORCH_VERSION = "TORCH_VERSION"
    LOG = "LOG"

    def name(self) -> str:
        return "install_pytorch"

    def displayName(self) -> str:
        return self.tr("Install PyTorch (for QGIS's Python)")

    def initAlgorithm(self, config=None) -> None:
        self.addChoiceParameter(self.VARIANT, self.tr("Variant"),
                                [(v, self.tr(VARIANT_LABELS.get(v, v))) for v in TORCH_VARIANTS], "auto")
        self.addParameter(QgsProcessingParameterFile(
            self.FIND_LINKS, self.tr("Local folder of wheels (optional; pip's --find-links)"),
            behavior=QgsProcessingParameterFile.Behavior.Folder, optional=True))
        self.addParameter(QgsProcessingParameterString(
            self.INDEX_URL, self.tr("Package index URL (optional; replaces PyTorch's wheel index)"), optional=True))
        self.addParameter(QgsProcessingParameterBoolean(
            self.OFFLINE, self.tr("Local wheels only (no index: the folder above or pip's configured ones)"),
            False, optional=True))
        spec = QgsProcessingParameterString(self.SPEC, self.tr("Requirement (e.g. torch==2.13.0+cpu)"),
                                            "torch", optional=True)
        spec.setFlags(spec.flags() | Qgis.ProcessingParameterFlag.Advanced)
        self.addParameter(spec)
        self.addParameter(QgsProcessingParameterBoolean(
            self.UNINSTALL, self.tr("Uninstall: remove the managed PyTorch folder instead"), False, optional=True))
        self.addOutput(QgsProcessingOutputFolder(self.TARGET, self.tr("Managed PyTorch folder")))
        self.addOutput(QgsProcessingOutputString(self.TORCH_VERSION, self.tr("Installed PyTorch version")))
        self.addOutput(QgsProcessingOutputFile(self.LOG, self.tr("pip log")))

    def checkParameterValues(self, parameters, context):
        ok, msg = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, msg
        folder = self.parameterAsFile(parameters, self.FIND_LINKS, context)
        if folder and not os.path.isdir(folder):
            return False, self.tr("Local folder of wheels (FIND_LINKS): '{}' is not a folder; choose the folder "
                                  "holding the .whl files, or leave it empty.").format(folder)
        url = (self.parameterAsString(parameters, self.INDEX_URL, context) or "").strip()
        if url and not url.startswith(("https://", "http://", "file:")):
            return False, self.tr("Package index URL (INDEX_URL): '{}' is not a URL; give e.g. "
                                  "https://download.pytorch.org/whl/cpu, or leave it empty.").format(url)
        return True, ""

    def processAlgorithm(self, parameters, context, feedback):
        target = managed_target()
        fb = ProcessingFeedback(feedback)
        log = str(target.parent / installer.LOG_NAME)
        try:
            if self.parameterAsBoolean(parameters, self.UNINSTALL, context):
                installer.uninstall(target, fb)
                return {self.TARGET: str(target), self.TORCH_VERSION: "", self.LOG: log}
            options = installer.InstallOptions(
                target=target,
                variant=self.choiceId(parameters, self.VARIANT, context),
                find_links=self.parameterAsFile(parameters, self.FIND_LINKS, context) or None,
                index_url=(self.parameterAsString(parameters, self.INDEX_URL, context) or "").strip() or None,
                offline=self.parameterAsBoolean(parameters, self.OFFLINE, context),
                spec=(self.parameterAsString(parameters, self.SPEC, context) or "").strip() or "torch")
            result = installer.install(options, fb)
        except installer.InstallError as err:
            raise QgsProcessingException(self.tr("PyTorch was not installed: {}").format(err)) from None
        except PSDNetCanceled:
            raise QgsProcessingException(self.tr("Cancelled by the user; the managed PyTorch folder is unchanged.")) \
                from None
        feedback.pushInfo(result.summary())
        return {self.TARGET: result.target, self.TORCH_VERSION: result.torch_version, self.LOG: result.log}

    def helpText(self) -> str:
        return self.tr(
            "<p>Installs PyTorch for the Python interpreter QGIS runs, with pip, into a folder of the "
            "QGIS profile managed by this plugin (<i>&lt;profile&gt;/python/psdnet_deps/pyX.Y</i>). PSDNet "
            "finds it there without any PYTHONPATH; it is usable at once, unless this QGIS session had "
            "already loaded another torch (then restart QGIS).</p>"
            "<p><b>Variant</b>: CPU (default where no NVIDIA GPU is found) or CUDA (an NVIDIA GPU and a "
            "recent driver; detected with nvidia-smi). The wheels come from PyTorch's index "
            "(https://download.pytorch.org/whl/cpu or .../cu126); numpy is pinned to the version QGIS "
            "already has. pip's own configuration (proxy, certificates, mirrors) applies.</p>"
            "<p><b>Offline</b>: download the wheels on another machine with the same Python version "
            "('pip download torch --index-url https://download.pytorch.org/whl/cpu -d wheels'), then give "
            "that folder as the local folder of wheels and tick 'Local wheels only'.</p>"
            "<p><b>Repair or switch CPU/CUDA</b>: run it again (the folder is replaced), or tick Uninstall "
            "to remove it. pip's whole output is kept in <i>install.log</i> beside the folder.</p>"
            "<p>Command line: <code>qgis_process run psdnet:install_pytorch -- VARIANT=cpu</code>.</p>")
