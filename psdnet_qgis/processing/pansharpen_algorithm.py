"""``psdnet:pansharpen`` — "Pansharpen (PSDNet)"."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from qgis.core import (
    Qgis,
    QgsProcessingException,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..core.options import DEVICES, OTHER_METHODS
from ..core.registry import list_models
from .base import tr
from .classical_algorithm import METHODS as CLASSICAL_METHODS
from .fusion_base import FusionAlgorithmBase

#: Labels of the DEVICE values (``core.options.DEVICES``, whose order the positions of index
#: calls select); a value without a label here is shown as it is.
DEVICE_LABELS = {"auto": "Auto (CUDA if available, else CPU)", "cuda": "CUDA (NVIDIA GPU)", "cpu": "CPU"}


def torch_missing_message() -> str:
    """How to make torch importable by *this* QGIS's Python (the interpreter running us)."""
    return tr(
        "PyTorch is not importable by QGIS's Python (Python {}.{}, {}). "
        "Install it with the plugin's installer: menu Raster > PSDNet > Install PyTorch…, or the "
        "Processing algorithm psdnet:install_pytorch (command line: "
        "'qgis_process run psdnet:install_pytorch -- VARIANT=cpu'); then run this again. "
        "The classical methods (psdnet:classical) work without PyTorch. To install it by hand, see "
        "the plugin README, section 'Making torch importable by QGIS'."
    ).format(sys.version_info.major, sys.version_info.minor, sys.executable)


def torch_broken_message(err: BaseException) -> str:
    """torch is found but does not import: the installer repairs it (a restart may be needed)."""
    return tr(
        "PyTorch is installed but does not import ({}). Repair it: run psdnet:install_pytorch again "
        "(menu Raster > PSDNet > Install PyTorch…; it replaces the plugin's PyTorch folder), then restart "
        "QGIS. Diagnostics: psdnet:diagnostics (About / diagnostics)."
    ).format(err)


class PansharpenAlgorithm(FusionAlgorithmBase):
    """Fuses PAN and MS with the bundled (or a given) PSDNet model."""

    MODEL = "MODEL"
    MODEL_FILE = "MODEL_FILE"
    DEVICE = "DEVICE"
    ADAPT_SECONDS = "ADAPT_SECONDS"
    MODEL_BANDS = "MODEL_BANDS"
    OTHER_METHOD = "OTHER_METHOD"
    CALIBRATE = "CALIBRATE"

    def name(self) -> str:
        return "pansharpen"

    def displayName(self) -> str:
        return self.tr("Pansharpen (PSDNet)")

    def addExtraParameters(self) -> None:
        # "auto", then the registry's order: the positions index calls (MODEL=2) select. A new
        # bundled model can shift them, which is why the stored value is the model's name.
        models = [("auto", self.tr("Auto (by MS band names, else band count, and PAN/MS resolution ratio)")),
                  ("auto_fast", self.tr("Auto (fast): the PSDNet-Fast model for the bands and ratio "
                                        "(several times faster on a CPU, slightly lower quality)"))]
        models += self.bundledModelChoices()
        self.addChoiceParameter(
            self.MODEL, self.tr("Model (auto = by MS band names, else band count, and PAN/MS resolution ratio)"),
            models, "auto")
        self.addParameter(QgsProcessingParameterFile(
            self.MODEL_FILE, self.tr("Weights file (overrides Model; .pt with its .json beside it)"),
            extension="pt", optional=True))
        self.addParameter(QgsProcessingParameterBoolean(
            self.CALIBRATE,
            self.tr("Calibrate on this scene (network + classical detail mix)"), True, optional=True))
        self.addChoiceParameter(self.DEVICE, self.tr("Device (auto = CUDA if available, else CPU)"),
                                [(d, self.tr(DEVICE_LABELS.get(d, d))) for d in DEVICES], "auto", advanced=True)
        # 0 (off) and advanced: with the bundled models it did not reliably help (model card,
        # "Adapt to this scene"), and the whole-scene check keeps the original model whenever any
        # of its metrics gets worse, so most runs would pay the budget for nothing
        p = QgsProcessingParameterNumber(
            self.ADAPT_SECONDS,
            self.tr("Adapt to this scene: seconds of unsupervised fine-tuning (0 = off; experimental, "
                    "rarely helps, see the help)"),
            Qgis.ProcessingNumberParameterType.Double, 0.0, optional=True, minValue=0.0, maxValue=3600.0)
        p.setFlags(p.flags() | Qgis.ProcessingParameterFlag.Advanced)
        self.addParameter(p)
        p = QgsProcessingParameterString(
            self.MODEL_BANDS,
            self.tr("Model bands: MS bands the network takes when the MS has more (e.g. 2,3,5,7; "
                    "empty = from the band names or the WorldView 8-band order)"),
            optional=True)
        p.setFlags(p.flags() | Qgis.ProcessingParameterFlag.Advanced)
        self.addParameter(p)
        labels = dict(CLASSICAL_METHODS)
        self.addChoiceParameter(self.OTHER_METHOD, self.tr("Method for the MS bands the model does not know"),
                                [(m, self.tr(labels[m])) for m in OTHER_METHODS], OTHER_METHODS[0], advanced=True)

    def _model_choice(self, parameters: dict[str, Any], context) -> str:
        path = self.parameterAsFile(parameters, self.MODEL_FILE, context)
        if path:
            return path
        return self.choiceId(parameters, self.MODEL, context)

    def checkExtra(self, parameters, context) -> str | None:
        if importlib.util.find_spec("torch") is None:
            return torch_missing_message()
        return None

    def engineArguments(self, parameters, context) -> dict[str, Any]:
        try:
            import psdnet_qgis.model  # noqa: F401, I001  (before torch: its allocator settings)
            import torch  # noqa: F401  (find_spec passed; a broken install fails here)
        except (ImportError, OSError) as err:
            raise QgsProcessingException(torch_broken_message(err)) from None
        return {
            "method": "psdnet",
            "model": self._model_choice(parameters, context),
            "device": self.choiceId(parameters, self.DEVICE, context),
            "adapt_seconds": self.parameterAsDouble(parameters, self.ADAPT_SECONDS, context) or 0.0,
            "model_bands": self.parameterAsString(parameters, self.MODEL_BANDS, context) or None,
            "other_method": self.choiceId(parameters, self.OTHER_METHOD, context),
            "calibrate": self._calibrate(parameters, context),
        }

    def _calibrate(self, parameters, context) -> bool:
        """CALIBRATE, True when not given (callers from before the parameter existed get the default)."""
        if parameters.get(self.CALIBRATE) is None:
            return True
        return self.parameterAsBoolean(parameters, self.CALIBRATE, context)

    def helpText(self) -> str:
        models = "".join(
            self.tr("<li><b>{}</b>: {} at ratio {} ({}). Trained on: {}.</li>").format(
                m.name, ", ".join(m.band_names), m.ratio, m.description, ", ".join(m.training_scenes))
            for m in list_models())
        return self.tr(
            "<p>Fuses a high-resolution panchromatic band (PAN) with a lower-resolution multispectral "
            "image (MS) using PSDNet (Gong et al., 'Multipatch Progressive Pansharpening With Knowledge "
            "Distillation', IEEE TGRS 2023), a deep network trained by this plugin's authors.</p>"
            "<p><b>Inputs</b>: the PAN layer (choose the band when it has several), the MS layer (its "
            "bands in the order the model expects; for an MS with more bands see below), the model (Auto "
            "picks by MS band names, else band count, and PAN/MS "
            "resolution ratio) or your own weights file. The layers are matched by georeference; the "
            "output covers their overlap on the PAN grid, in the MS data type. Advanced: device, tile "
            "size and overlap (the raster is processed tile by tile with blended seams, so any size fits "
            "in memory).</p>"
            "<p><b>Bundled models</b>:<ul>{}</ul></p>"
            "<p><b>Auto (fast)</b> picks the PSDNet-Fast model (<b>psdnet_*_fast</b>) for the bands "
            "and ratio, or the full model where there is none. A fast model is a slimmed copy of the "
            "full one (fewer feature channels) trained to reproduce it: it trades a little quality "
            "(see the model card's fast-model rows) for several times less CPU time per megapixel; "
            "Auto keeps the full model, on the CPU too: calibrated, the fast model was 1-4 % worse in "
            "ERGAS on the scenes it was trained on and within 2 % on those it never saw, for about a "
            "sixth of the CPU time (make bench, 2026-12-06, AVX2 CPU). On a large scene on a CPU, "
            "choose Auto (fast).</p>"
            "<p><b>When a classical method is the better choice</b>: sensors, band orders or resolution "
            "ratios unlike the training data (the network has only seen the scenes above), very large "
            "rasters on a CPU where minutes matter, or when strict spectral fidelity is required: use "
            "'Pansharpen (classical)' (GSA, MTF-GLP-HPM, MTF-GLP-FS or BDSD-PC) and compare both with "
            "'Assess pansharpening quality'.</p>"
            "<p><b>More MS bands than the model</b> (an 8-band WorldView-2/3 MS: coastal, blue, green, "
            "yellow, red, red edge, NIR1, NIR2): the network fuses the bands it knows and the method "
            "for the other bands (advanced; MTF-GLP-FS by default) fuses the rest, fitted on the same "
            "scene; the output keeps all bands in the input order and the log says which band came "
            "from which method. The bands are found from the band descriptions, else the WorldView "
            "8-band order is assumed, and the choice is checked on the pixels (haze falls and NIR "
            "bands correlate with each other): a contradiction stops the run. <b>Model bands</b> "
            "sets them explicitly (1-based, in the model's band order, e.g. 2,3,5,7).</p>"
            "<p><b>Landsat with NIR and SWIR</b> (e.g. a VRT of the band files B1-B7, or B2-B5, made with "
            "gdalbuildvrt -separate): when the sensor is Landsat (MTL file, product name of the files or "
            "the Sensor choice), the bands are named by their Landsat band numbers (band descriptions such "
            "as B5, Band 5, SR_B5, or the VRT's source file names such as LC08_..._B5.TIF); Auto then "
            "takes psdnet_landsat3 on blue, green and red and the other method on coastal, NIR and SWIR. "
            "With calibration the SWIR bands get no PAN detail (the PAN does not reach the short-wave "
            "infrared): they keep the upsampled MS, and the log says so.</p>"
            "<p><b>Calibrate on this scene</b> (on by default): before the tiles run, your PAN and MS are "
            "degraded by the resolution ratio with the sensor's MTF (Wald's protocol); the network, "
            "MTF-GLP-FS, MTF-GLP-HPM and GSA (its intensity from the network's bands) fuse that smaller copy, "
            "and for each band the mix of their detail "
            "that best gives "
            "back your real MS is fitted (non-negative weights summing to one). The same weights are used in "
            "every tile. Where the network does not know the sensor or the scene, the classical detail "
            "takes over; where it does, it keeps the network. The log lists the weights and the "
            "reduced-resolution ERGAS and SAM of each. Switch it off to get the network's output as it comes "
            "(for comparison, or bit-for-bit reproducibility with earlier versions).</p>"
            "<p><b>Adapt to this scene</b> (advanced, seconds, 0 = off; experimental): before fusing, a "
            "copy of the model is fine-tuned on crops of your own PAN + MS without any reference (the "
            "fused image, blurred with the sensor MTF, must give back the MS; its detail must follow the "
            "PAN; and the scene degraded by the ratio must be restored). The copy is used only when "
            "held-out crops improve and, on windows spread over the whole scene, none of HQNR, "
            "D_lambda, D_s, the consistency with the MS and the reduced-resolution ERGAS and SAM gets "
            "worse, both networks judged calibrated as the run writes them when calibration is on (a scene "
            "too small for that reduced-resolution check keeps the original); otherwise the "
            "original model runs and the log says so. Measured with the bundled "
            "models it rarely helps (the model card gives the table), so it is off by default; the "
            "calibration above is what adjusts the result to your scene. 'Adapt PSDNet to a scene' saves "
            "adapted weights for reuse.</p>"
            "<p>Requires PyTorch importable by QGIS's Python (see the README).</p>"
        ).format(models)
