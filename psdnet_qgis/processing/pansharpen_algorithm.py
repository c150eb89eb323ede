"""``psdnet:pansharpen`` — "Pansharpen (PSDNet)"."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from qgis.core import (
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
)

from ..core.registry import list_models
from .fusion_base import FusionAlgorithmBase

DEVICES = ("auto", "cuda", "cpu")


def torch_missing_message() -> str:
    """How to make torch importable by *this* QGIS's Python (the interpreter running us)."""
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    return (
        f"PyTorch is not importable by QGIS's Python (Python {py}, {sys.executable}). "
        "Install it for that interpreter, then restart QGIS: "
        "Linux: 'python3 -m pip install --user torch' (CPU) or the CUDA build from pytorch.org; "
        "Windows: open the OSGeo4W Shell and run 'python -m pip install torch'; "
        "macOS: '/Applications/QGIS-LTR.app/Contents/MacOS/bin/python3 -m pip install torch'. "
        "See the plugin README, section 'Making torch importable by QGIS'."
    )


class PansharpenAlgorithm(FusionAlgorithmBase):
    """Fuses PAN and MS with the bundled (or a given) PSDNet model."""

    MODEL = "MODEL"
    MODEL_FILE = "MODEL_FILE"
    DEVICE = "DEVICE"

    def createInstance(self):  # noqa: N802
        return PansharpenAlgorithm()

    def name(self) -> str:
        return "pansharpen"

    def displayName(self) -> str:  # noqa: N802
        return self.tr("Pansharpen (PSDNet)")

    def _models(self):
        return list_models()

    def addExtraParameters(self) -> None:  # noqa: N802
        options = [self.tr("Auto (by MS band count and PAN/MS resolution ratio)")]
        options += [f"{m.name}: {', '.join(m.band_names)}, ratio {m.ratio}" for m in self._models()]
        self.addParameter(QgsProcessingParameterEnum(self.MODEL, self.tr("Model"), options, defaultValue=0))
        self.addParameter(QgsProcessingParameterFile(
            self.MODEL_FILE, self.tr("Weights file (overrides Model; .pt with its .json beside it)"),
            extension="pt", optional=True))
        p = QgsProcessingParameterEnum(self.DEVICE, self.tr("Device"),
                                       [self.tr("Auto (CUDA if available, else CPU)"), "CUDA", "CPU"],
                                       defaultValue=0)
        p.setFlags(p.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(p)

    def _model_choice(self, parameters: dict[str, Any], context) -> str:
        path = self.parameterAsFile(parameters, self.MODEL_FILE, context)
        if path:
            return path
        idx = self.parameterAsEnum(parameters, self.MODEL, context)
        return "auto" if idx == 0 else self._models()[idx - 1].name

    def checkExtra(self, parameters, context) -> str | None:  # noqa: N802
        if importlib.util.find_spec("torch") is None:
            return torch_missing_message()
        return None

    def engineArguments(self, parameters, context) -> dict[str, Any]:  # noqa: N802
        try:
            import torch  # noqa: F401  (find_spec passed; a broken install fails here)
        except (ImportError, OSError) as err:
            from qgis.core import QgsProcessingException

            raise QgsProcessingException(f"{torch_missing_message()} (import error: {err})") from None
        return {
            "method": "psdnet",
            "model": self._model_choice(parameters, context),
            "device": DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)],
        }

    def shortHelpString(self) -> str:  # noqa: N802
        models = "".join(
            f"<li><b>{m.name}</b>: {', '.join(m.band_names)} at ratio {m.ratio} "
            f"({m.description}). Trained on: {', '.join(m.training_scenes)}.</li>"
            for m in self._models())
        return self.tr(
            "<p>Fuses a high-resolution panchromatic band (PAN) with a lower-resolution multispectral "
            "image (MS) using PSDNet (Gong et al., 'Multipatch Progressive Pansharpening With Knowledge "
            "Distillation', IEEE TGRS 2023), a deep network trained by this plugin's authors.</p>"
            "<p><b>Inputs</b>: the PAN layer (choose the band when it has several), the MS layer (its "
            "bands in the order the model expects), the model (Auto picks by MS band count and PAN/MS "
            "resolution ratio) or your own weights file. The layers are matched by georeference; the "
            "output covers their overlap on the PAN grid, in the MS data type. Advanced: device, tile "
            "size and overlap (the raster is processed tile by tile with blended seams, so any size fits "
            "in memory).</p>"
            f"<p><b>Bundled models</b>:<ul>{models}</ul></p>"
            "<p><b>When a classical method is the better choice</b>: sensors, band orders or resolution "
            "ratios unlike the training data (the network has only seen the scenes above), very large "
            "rasters on a CPU where minutes matter, or when strict spectral fidelity is required: use "
            "'Pansharpen (classical)' (GSA or MTF-GLP-HPM) and compare both with 'Assess pansharpening "
            "quality'.</p>"
            "<p>Requires PyTorch importable by QGIS's Python (see the README).</p>"
        )
