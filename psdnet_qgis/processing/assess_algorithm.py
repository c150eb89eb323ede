"""``psdnet:assess`` — "Assess pansharpening quality".

QGIS glue only: reads the parameters, checks the layers, runs ``engine.assess.quality.assess`` and
``engine.assess.report.write_html_report``, and returns every metric as a number output so the
modeler can chain on them (e.g. keep the method with the best QNR).
"""

from __future__ import annotations

import os
from typing import Any

from qgis.core import (
    Qgis,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBand,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)
from qgis.PyQt.QtCore import QT_TRANSLATE_NOOP

from ..core import mtf
from ..errors import PSDNetCanceled, PSDNetError
from .base import PSDNetAlgorithm
from .checks import chosen_band, layer_problem, pan_band_problem
from .feedback import ProcessingFeedback
from .sensors import engine_sensor, sensor_choices

#: engine metric key -> output name
METRIC_OUTPUTS = (
    ("Q2n", "Q2N", QT_TRANSLATE_NOOP("psdnet", "Q2n (reduced resolution, higher is better)")),
    ("Q", "Q", QT_TRANSLATE_NOOP("psdnet", "Q (reduced resolution, higher is better)")),
    ("SAM", "SAM", QT_TRANSLATE_NOOP("psdnet", "SAM in degrees (reduced resolution, lower is better)")),
    ("ERGAS", "ERGAS", QT_TRANSLATE_NOOP("psdnet", "ERGAS (reduced resolution, lower is better)")),
    ("SCC", "SCC", QT_TRANSLATE_NOOP("psdnet", "SCC (reduced resolution, higher is better)")),
    ("D_lambda", "D_LAMBDA", QT_TRANSLATE_NOOP("psdnet", "D_lambda (full resolution, lower is better)")),
    ("D_s", "D_S", QT_TRANSLATE_NOOP("psdnet", "D_s (full resolution, lower is better)")),
    ("QNR", "QNR", QT_TRANSLATE_NOOP("psdnet", "QNR (full resolution, higher is better)")),
    ("D_lambda_K", "D_LAMBDA_K", QT_TRANSLATE_NOOP("psdnet", "Khan's D_lambda (full resolution, lower is better)")),
    ("HQNR", "HQNR", QT_TRANSLATE_NOOP("psdnet", "HQNR (full resolution, higher is better)")),
)

#: SENSOR value for "no sensor": generic MTF gains (the SENSOR list is processing.sensors')
UNKNOWN_SENSOR = mtf.UNKNOWN

DEFAULT_MAX_PIXELS = 1_048_576  # = engine.assess.quality.DEFAULT_MAX_PIXELS (not imported: GDAL only when running)


class AssessAlgorithm(PSDNetAlgorithm):
    """Full-resolution (QNR, HQNR) and, with a reference, reduced-resolution quality metrics."""

    FUSED = "FUSED"
    REFERENCE = "REFERENCE"
    SENSOR = "SENSOR"
    MAX_PIXELS = "MAX_PIXELS"
    OUTPUT_HTML = "OUTPUT_HTML"
    SAMPLED_PIXELS = "SAMPLED_PIXELS"

    # -- identity -------------------------------------------------------------------------
    def name(self) -> str:
        return "assess"

    def displayName(self) -> str:
        return self.tr("Assess pansharpening quality")

    def helpText(self) -> str:
        return self.tr(
            "<p>Measures how good a pansharpened image is, with the community's standard metrics "
            "(Vivone et al. toolbox conventions).</p>"
            "<p><b>Full resolution</b> (always, no reference needed): the fused image is compared "
            "with the PAN and MS it was made from. <b>D_lambda</b> (spectral distortion) and "
            "<b>D_s</b> (spatial distortion): lower is better, 0 is perfect; <b>QNR</b> = "
            "(1 - D_lambda)(1 - D_s) and <b>HQNR</b> (with Khan's spectral distortion, uses the "
            "sensor's MTF): higher is better, 1 is perfect.</p>"
            "<p><b>Reduced resolution</b> (only with a reference image on the fused grid, e.g. "
            "the original MS when you fused degraded PAN and MS): <b>Q2n</b>, <b>Q</b>, "
            "<b>SCC</b> (higher is better, 1 is perfect), <b>SAM</b> in degrees and "
            "<b>ERGAS</b> (lower is better, 0 is perfect).</p>"
            "<p>Layers are matched by georeference; no-data borders are left out. Images larger "
            "than 'Maximum pixels' (default about 1 megapixel) are evaluated on a seeded random "
            "sample of 256 x 256 pixel blocks free of no-data, of that many pixels in total; "
            "the report states the sample. The HTML report holds the table and a quicklook "
            "(MS upsampled | fused | PAN). Every metric is also an output usable in the "
            "modeler; metrics that cannot be computed (no reference) are empty.</p>"
            "<p>Pick the sensor for correct MTF gains in HQNR; 'Unknown' uses 0.3 per MS band "
            "and 0.15 for PAN.</p>"
        )

    # -- parameters and outputs -----------------------------------------------------------
    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.FUSED, self.tr("Pansharpened (fused) layer")))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.PAN, self.tr("Panchromatic (PAN) layer it was made from")))
        self.addParameter(QgsProcessingParameterBand(
            self.PAN_BAND, self.tr("PAN band (needed only when the PAN layer has several bands)"),
            None, self.PAN, optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.MS, self.tr("Multispectral (MS) layer it was made from")))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.REFERENCE, self.tr("Reference at the fused resolution (optional: enables "
                                    "reduced-resolution metrics)"), optional=True))
        self.addChoiceParameter(self.SENSOR, self.tr("Sensor (MTF gains for HQNR)"), sensor_choices(),
                                UNKNOWN_SENSOR)
        p = QgsProcessingParameterNumber(
            self.MAX_PIXELS, self.tr("Maximum pixels evaluated (larger images are sampled by blocks)"),
            Qgis.ProcessingNumberParameterType.Integer, DEFAULT_MAX_PIXELS, optional=True,
            minValue=65536)
        p.setFlags(p.flags() | Qgis.ProcessingParameterFlag.Advanced)
        self.addParameter(p)
        # an .html file destination also creates the HTML output Processing's results viewer opens
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_HTML, self.tr("Quality report"), self.tr("HTML files (*.html)")))
        for _, out, label in METRIC_OUTPUTS:
            self.addOutput(QgsProcessingOutputNumber(out, self.tr(label)))
        self.addOutput(QgsProcessingOutputNumber(
            self.SAMPLED_PIXELS, self.tr("Number of fused pixels evaluated")))

    # -- checks ---------------------------------------------------------------------------
    def _pan_band(self, parameters: dict[str, Any], context: QgsProcessingContext) -> int | None:
        return chosen_band(self, parameters, self.PAN_BAND, context)

    def checkParameterValues(self, parameters, context):
        ok, msg = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, msg
        fused = self.parameterAsRasterLayer(parameters, self.FUSED, context)
        pan = self.parameterAsRasterLayer(parameters, self.PAN, context)
        ms = self.parameterAsRasterLayer(parameters, self.MS, context)
        ref = self.parameterAsRasterLayer(parameters, self.REFERENCE, context)
        problem = (layer_problem(fused, self.tr("fused")) or layer_problem(pan, "PAN")
                   or layer_problem(ms, "MS") or layer_problem(ref, self.tr("reference"), False))
        if problem:
            return False, problem
        if ms.bandCount() < 2:
            return False, self.tr(
                "MS layer '{}' has a single band: give the multispectral image the fused "
                "layer was made from, with all its bands.").format(ms.name())
        if fused.bandCount() != ms.bandCount():
            return False, self.tr(
                "Fused layer '{}' has {} bands but MS layer '{}' has {}: give the pansharpened "
                "result of this MS (same bands, same order)."
            ).format(fused.name(), fused.bandCount(), ms.name(), ms.bandCount())
        if ref is not None and ref.bandCount() != ms.bandCount():
            return False, self.tr(
                "Reference layer '{}' has {} bands but MS layer '{}' has {}: the reference must "
                "hold the MS bands in the same order."
            ).format(ref.name(), ref.bandCount(), ms.name(), ms.bandCount())
        problem = pan_band_problem(pan, self._pan_band(parameters, context))
        if problem:
            return False, problem
        return True, ""

    # -- run ------------------------------------------------------------------------------
    def processAlgorithm(self, parameters, context, feedback):
        ok, msg = self.checkParameterValues(parameters, context)
        if not ok:
            raise QgsProcessingException(msg)
        fused = self.parameterAsRasterLayer(parameters, self.FUSED, context)
        pan = self.parameterAsRasterLayer(parameters, self.PAN, context)
        ms = self.parameterAsRasterLayer(parameters, self.MS, context)
        ref = self.parameterAsRasterLayer(parameters, self.REFERENCE, context)
        sensor = engine_sensor(self.choiceId(parameters, self.SENSOR, context))
        if sensor == mtf.AUTO:
            from ..engine.sensor import sensor_from_metadata  # GDAL only when running

            sensor = sensor_from_metadata(ms.source()) or sensor_from_metadata(pan.source())
            feedback.pushInfo(self.tr("Sensor: {}; {}.").format(
                sensor or "unknown", mtf.describe_gains(sensor, ms.bandCount())))
        max_pixels = self.parameterAsInt(parameters, self.MAX_PIXELS, context) or DEFAULT_MAX_PIXELS
        html_path = self.parameterAsFileOutput(parameters, self.OUTPUT_HTML, context)
        if not html_path.lower().endswith((".html", ".htm")):
            html_path += ".html"
        folder = os.path.dirname(os.path.abspath(html_path))
        if not os.path.isdir(folder):
            raise QgsProcessingException(self.tr(
                "Quality report: folder '{}' does not exist; choose another file name.").format(folder))
        png_path = os.path.splitext(html_path)[0] + "_quicklook.png"

        from ..engine.assess.quality import assess  # GDAL only when running
        from ..engine.assess.report import write_html_report

        try:
            results = assess(
                fused.source(), pan.source(), ms.source(),
                reference_path=ref.source() if ref is not None else None,
                sensor=sensor, max_pixels=max_pixels, feedback=ProcessingFeedback(feedback),
                pan_band=self._pan_band(parameters, context) or 1, quicklook_png=png_path,
            )
        except PSDNetError as err:
            raise QgsProcessingException(str(err)) from None
        except PSDNetCanceled:
            raise QgsProcessingException(self.tr("Cancelled by the user; no report was written.")) from None
        write_html_report(results, html_path)

        metrics = results.metrics
        for key, _, _ in METRIC_OUTPUTS:
            value = metrics.get(key)
            if value is not None:
                feedback.pushInfo(f"{key}: {value:.4f}")
        feedback.pushInfo(self.tr("Evaluated {} of {} fused pixels ({}).").format(
            results.sampled_pixels, results.region_pixels, results.mode))
        for note in results.notes:
            feedback.pushInfo(self.tr("Note: {}").format(note))
        out: dict[str, Any] = {self.OUTPUT_HTML: html_path, self.SAMPLED_PIXELS: results.sampled_pixels}
        for key, name, _ in METRIC_OUTPUTS:
            out[name] = metrics.get(key)
        return out
