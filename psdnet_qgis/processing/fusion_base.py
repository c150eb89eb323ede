"""Shared parameters and run logic of the fusion algorithms (PSDNet and classical).

Both go through the one numeric path ``engine.run.pansharpen``; this class only turns
Processing parameters into its arguments, maps its errors to ``QgsProcessingException``
and styles the output layer.
"""

from __future__ import annotations

from typing import Any

from qgis.core import (
    Qgis,
    QgsContrastEnhancement,
    QgsMultiBandColorRenderer,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QT_TRANSLATE_NOOP

from ..core import mtf
from ..errors import PSDNetCanceled, PSDNetError
from .base import PSDNetAlgorithm
from .checks import chosen_band, pan_ms_problem
from .feedback import ProcessingFeedback
from .sensors import SENSOR, engine_sensor, sensor_choices


class TrueColourStyler(QgsProcessingLayerPostProcessorInterface):
    """Renders the fused layer as true colour with a 2-98 % cumulative-cut stretch.

    Processing calls this on the main thread after the layer is loaded. The instance
    must outlive the algorithm run, hence the class-level reference.
    """

    _instance: TrueColourStyler | None = None

    def __init__(self, rgb: tuple[int, int, int]) -> None:
        super().__init__()
        self.rgb = rgb

    @classmethod
    def create(cls, rgb: tuple[int, int, int]) -> TrueColourStyler:
        cls._instance = cls(rgb)
        return cls._instance

    def postProcessLayer(self, layer, context, feedback) -> None:
        if not isinstance(layer, QgsRasterLayer) or not layer.isValid():
            return
        provider = layer.dataProvider()
        if provider.bandCount() < 3:
            return
        r, g, b = (i + 1 for i in self.rgb)  # renderer bands are 1-based
        renderer = QgsMultiBandColorRenderer(provider, r, g, b)
        for band, setter in ((r, renderer.setRedContrastEnhancement),
                             (g, renderer.setGreenContrastEnhancement),
                             (b, renderer.setBlueContrastEnhancement)):
            lo, hi = provider.cumulativeCut(band, 0.02, 0.98, layer.extent(), 250000)
            ce = QgsContrastEnhancement(provider.dataType(band))
            ce.setContrastEnhancementAlgorithm(QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum)
            ce.setMinimumValue(lo)
            ce.setMaximumValue(hi)
            setter(ce)
        layer.setRenderer(renderer)
        layer.triggerRepaint()


class FusionAlgorithmBase(PSDNetAlgorithm):
    """Inputs, validation and run shared by ``psdnet:pansharpen`` and ``psdnet:classical``."""

    TILE = "TILE"
    OVERLAP = "OVERLAP"
    FLOAT32 = "FLOAT32"
    OUTPUT = "OUTPUT"

    # -- hooks for subclasses -------------------------------------------------------------
    def addExtraParameters(self) -> None:
        """Method-specific parameters, added after the layers."""

    def engineArguments(self, parameters: dict[str, Any], context: QgsProcessingContext) -> dict[str, Any]:
        """Method-specific keyword arguments of ``engine.run.pansharpen``."""
        return {}

    def checkExtra(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str | None:
        """Method-specific pre-run check; returns an error message or None."""
        return None

    # -- QgsProcessingAlgorithm --------------------------------------------------------------
    def initAlgorithm(self, config=None) -> None:
        self.addPanMsParameters()
        self.addExtraParameters()
        self.addChoiceParameter(SENSOR, self.tr("Sensor (MTF gains of the MTF-based steps; auto = from the metadata)"),
                                sensor_choices(), mtf.AUTO)
        for name, label, maximum in (
            (self.TILE, QT_TRANSLATE_NOOP("psdnet", "Tile size in MS pixels (0 = automatic)"), 4096),
            (self.OVERLAP, QT_TRANSLATE_NOOP("psdnet", "Tile overlap in MS pixels (0 = automatic)"), 2048),
        ):
            p = QgsProcessingParameterNumber(name, self.tr(label), Qgis.ProcessingNumberParameterType.Integer,
                                             0, optional=True, minValue=0, maxValue=maximum)
            p.setFlags(p.flags() | Qgis.ProcessingParameterFlag.Advanced)
            self.addParameter(p)
        p = QgsProcessingParameterBoolean(self.FLOAT32, self.tr("Write float32 (default: the MS data type)"), False)
        p.setFlags(p.flags() | Qgis.ProcessingParameterFlag.Advanced)
        self.addParameter(p)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Pansharpened")))

    def _pan_band(self, parameters: dict[str, Any], context: QgsProcessingContext) -> int | None:
        return chosen_band(self, parameters, self.PAN_BAND, context)

    def checkParameterValues(self, parameters, context):
        ok, msg = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, msg
        problem = pan_ms_problem(self, parameters, context, self.PAN, self.PAN_BAND, self.MS)
        if problem:
            return False, problem
        ms = self.parameterAsRasterLayer(parameters, self.MS, context)
        if ms.bandCount() < 2:
            return False, self.tr(
                "MS layer '{}' has a single band, but pansharpening needs the multispectral "
                "image with all its bands. If the bands are separate files, stack them first "
                "(Raster > Miscellaneous > Build Virtual Raster, 'Place each input file into a separate band')."
            ).format(ms.name())
        extra = self.checkExtra(parameters, context)
        if extra:
            return False, extra
        return True, ""

    def processAlgorithm(self, parameters, context, feedback):
        ok, msg = self.checkParameterValues(parameters, context)
        if not ok:  # qgis_process and processing.run check too, but be safe for direct callers
            raise QgsProcessingException(msg)
        pan = self.parameterAsRasterLayer(parameters, self.PAN, context)
        ms = self.parameterAsRasterLayer(parameters, self.MS, context)
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        tile = self.parameterAsInt(parameters, self.TILE, context) or None
        overlap = self.parameterAsInt(parameters, self.OVERLAP, context) or None
        as_float = self.parameterAsBoolean(parameters, self.FLOAT32, context)
        kwargs = self.engineArguments(parameters, context)

        from ..engine.run import pansharpen  # GDAL (and torch, for PSDNet) only when running

        try:
            report = pansharpen(
                pan.source(), ms.source(), out,
                pan_band=self._pan_band(parameters, context) or 1,
                tile=tile, overlap=overlap,
                out_dtype="float32" if as_float else None,
                feedback=ProcessingFeedback(feedback),
                sensor=engine_sensor(self.choiceId(parameters, SENSOR, context)),
                **kwargs,
            )
        except PSDNetError as err:
            raise QgsProcessingException(str(err)) from None
        except PSDNetCanceled:
            raise QgsProcessingException(self.tr("Cancelled by the user; no output was written.")) from None
        rgb = report.rgb
        if rgb is not None and context.willLoadLayerOnCompletion(out):
            context.layerToLoadOnCompletionDetails(out).setPostProcessor(TrueColourStyler.create(tuple(rgb)))
        return {self.OUTPUT: out}
