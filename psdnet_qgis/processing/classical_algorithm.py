"""``psdnet:classical`` — "Pansharpen (classical)": EXP, Brovey, GSA, MTF-GLP-HPM."""

from __future__ import annotations

from typing import Any

from qgis.PyQt.QtCore import QT_TRANSLATE_NOOP

from .fusion_base import FusionAlgorithmBase

#: (engine method id = the METHOD value, label); positions are what index calls (METHOD=1)
#: select, so new methods go at the end
METHODS = (
    ("gsa", QT_TRANSLATE_NOOP("psdnet", "GSA (Gram-Schmidt adaptive)")),
    ("mtf_glp_hpm", QT_TRANSLATE_NOOP("psdnet", "MTF-GLP-HPM (generalised Laplacian pyramid, high-pass modulation)")),
    ("brovey", QT_TRANSLATE_NOOP("psdnet", "Weighted Brovey (as GDAL / QGIS's built-in Pansharpening)")),
    ("exp", QT_TRANSLATE_NOOP("psdnet", "Bicubic upsampling of the MS only (EXP, a reference)")),
)


class ClassicalAlgorithm(FusionAlgorithmBase):
    """Classical pansharpening through the same tiled engine as PSDNet."""

    METHOD = "METHOD"

    def name(self) -> str:
        return "classical"

    def displayName(self) -> str:
        return self.tr("Pansharpen (classical)")

    def addExtraParameters(self) -> None:
        self.addChoiceParameter(self.METHOD, self.tr("Method"),
                                [(mid, self.tr(label)) for mid, label in METHODS], METHODS[0][0])

    def engineArguments(self, parameters, context) -> dict[str, Any]:
        return {"method": self.choiceId(parameters, self.METHOD, context)}

    def helpText(self) -> str:
        return self.tr(
            "<p>Classical pansharpening with the same inputs, tiling, nodata handling and georeferencing "
            "as 'Pansharpen (PSDNet)', and no PyTorch needed: a fast choice for any sensor and band "
            "count, and a fair baseline on your own data.</p><ul>"
            "<li><b>GSA</b>: component substitution; intensity from a least-squares fit of the degraded "
            "PAN on the MS bands, detail injected with per-band covariance gains. Sharp, good colours.</li>"
            "<li><b>MTF-GLP-HPM</b>: multiresolution; PAN detail extracted with the sensor's MTF-matched "
            "filter and injected multiplicatively. Usually the best spectral fidelity.</li>"
            "<li><b>Weighted Brovey</b>: ratio method, what QGIS's own Pansharpening (GDAL) runs.</li>"
            "<li><b>EXP</b>: bicubic upsampling only; the reference every method must beat.</li></ul>"
            "<p>Compare results with 'Assess pansharpening quality'.</p>"
        )
