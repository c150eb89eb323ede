"""``psdnet:adapt`` -- "Adapt PSDNet to a scene": save weights fine-tuned on the user's scene."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    Qgis,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
)

from ..core import mtf
from ..core.options import ADAPT_LOSSES, ADAPT_PARTS, AdaptOptions
from ..errors import PSDNetCanceled, PSDNetError
from .base import PSDNetAlgorithm
from .checks import chosen_band, pan_ms_problem
from .feedback import ProcessingFeedback
from .pansharpen_algorithm import torch_missing_message
from .sensors import SENSOR, engine_sensor, sensor_choices

#: Labels of the LOSSES and PART values (``core.options.ADAPT_LOSSES`` / ``ADAPT_PARTS``).
LOSS_LABELS = {"both": "Full-resolution no-reference losses and reduced-resolution pairs",
               "fullres": "Full-resolution no-reference losses only",
               "wald": "Reduced-resolution pairs (the scene degraded by the ratio) only"}
PART_LABELS = {"head": "Output head (fast: hundreds of steps per minute on a CPU)",
               "all": "All weights (a full training step each)"}


class AdaptAlgorithm(PSDNetAlgorithm):
    """Adapts a PSDNet model to a PAN + MS scene and writes the weights (.pt + .json)."""

    MODEL = "MODEL"
    MODEL_FILE = "MODEL_FILE"
    SECONDS = "SECONDS"
    LOSSES = "LOSSES"
    PART = "PART"
    MAX_STEPS = "MAX_STEPS"
    OUTPUT = "OUTPUT"

    def name(self) -> str:
        return "adapt"

    def displayName(self) -> str:
        return self.tr("Adapt PSDNet to a scene")

    def initAlgorithm(self, config=None) -> None:
        self.addPanMsParameters()
        models = [("auto", self.tr("Auto (by MS band count and PAN/MS resolution ratio)"))]
        models += self.bundledModelChoices()
        self.addChoiceParameter(self.MODEL, self.tr("Model to adapt"), models, "auto")
        self.addParameter(QgsProcessingParameterFile(
            self.MODEL_FILE, self.tr("Weights file to adapt (overrides Model; .pt with its .json beside it)"),
            extension="pt", optional=True))
        self.addChoiceParameter(SENSOR, self.tr("Sensor (MTF gains of the losses; auto = from the metadata)"),
                                sensor_choices(), mtf.AUTO)
        self.addParameter(QgsProcessingParameterNumber(
            self.SECONDS, self.tr("Budget in seconds"), Qgis.ProcessingNumberParameterType.Double, 120.0,
            minValue=1.0, maxValue=36000.0))
        self.addChoiceParameter(self.LOSSES, self.tr("Losses"),
                                [(v, self.tr(LOSS_LABELS.get(v, v))) for v in ADAPT_LOSSES],
                                ADAPT_LOSSES[0], advanced=True)
        self.addChoiceParameter(self.PART, self.tr("Weights adapted"),
                                [(v, self.tr(PART_LABELS.get(v, v))) for v in ADAPT_PARTS],
                                ADAPT_PARTS[0], advanced=True)
        steps = QgsProcessingParameterNumber(
            self.MAX_STEPS, self.tr("Stop after this many steps (0 = the budget decides; a fixed count "
                                    "makes the adapted weights the same on any machine speed)"),
            Qgis.ProcessingNumberParameterType.Integer, 0, minValue=0, maxValue=1_000_000)
        steps.setFlags(steps.flags() | Qgis.ProcessingParameterFlag.Advanced)
        self.addParameter(steps)
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT, self.tr("Adapted weights"), self.tr("PSDNet weights (*.pt)")))

    def checkParameterValues(self, parameters, context):
        ok, msg = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, msg
        problem = pan_ms_problem(self, parameters, context, self.PAN, self.PAN_BAND, self.MS)
        if problem:
            return False, problem
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            return False, torch_missing_message()
        return True, ""

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext, feedback):
        ok, msg = self.checkParameterValues(parameters, context)
        if not ok:
            raise QgsProcessingException(msg)
        pan = self.parameterAsRasterLayer(parameters, self.PAN, context)
        ms = self.parameterAsRasterLayer(parameters, self.MS, context)
        out = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        model = self.parameterAsFile(parameters, self.MODEL_FILE, context) or self.choiceId(
            parameters, self.MODEL, context)

        from ..engine.adapt_scene import adapt_scene  # GDAL and torch only when running

        try:
            meta = adapt_scene(
                pan.source(), ms.source(), out, model=model,
                seconds=self.parameterAsDouble(parameters, self.SECONDS, context),
                sensor=engine_sensor(self.choiceId(parameters, SENSOR, context)),
                pan_band=chosen_band(self, parameters, self.PAN_BAND, context) or 1,
                feedback=ProcessingFeedback(feedback),
                adapt_options=AdaptOptions(
                    losses=self.choiceId(parameters, self.LOSSES, context),
                    part=self.choiceId(parameters, self.PART, context),
                    max_steps=self.parameterAsInt(parameters, self.MAX_STEPS, context) or None))
        except PSDNetError as err:
            raise QgsProcessingException(str(err)) from None
        except PSDNetCanceled:
            raise QgsProcessingException(self.tr("Cancelled by the user; no weights were written.")) from None
        return {self.OUTPUT: out, "SHA256": meta["sha256"]}

    def helpText(self) -> str:
        return self.tr(
            "<p>Fine-tunes a copy of a PSDNet model on your own PAN + MS scene, without any reference, "
            "within a time budget, and saves it (a .pt file with its .json sidecar: SHA-256, base model, "
            "scene, sensor, losses, budget, and the held-out quality before/after). Use the file as "
            "'Weights file' of 'Pansharpen (PSDNet)' on other scenes of the same sensor or campaign.</p>"
            "<p>The scene is cut into crops spread over it, free of nodata and chosen by detail; some are "
            "held out. The weights are written only when the adapted copy is better than the model on "
            "the held-out crops (HQNR, from Khan's D_lambda and D_s); otherwise the run fails with a "
            "message saying so.</p>"
        )
