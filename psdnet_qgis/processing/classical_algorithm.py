"""``psdnet:classical`` — "Pansharpen (classical)": GSA, MTF-GLP-HPM, MTF-GLP-FS, BDSD-PC, Brovey, EXP."""

from __future__ import annotations

from typing import Any

from qgis.PyQt.QtCore import QT_TRANSLATE_NOOP

from ..core.classical import HELP
from .fusion_base import FusionAlgorithmBase

#: (engine method id = the METHOD value, label); positions are what index calls (METHOD=1)
#: select, so new methods go at the end
METHODS = (
    ("gsa", QT_TRANSLATE_NOOP("psdnet", "GSA (Gram-Schmidt adaptive)")),
    ("mtf_glp_hpm", QT_TRANSLATE_NOOP("psdnet", "MTF-GLP-HPM (generalised Laplacian pyramid, high-pass modulation)")),
    ("brovey", QT_TRANSLATE_NOOP("psdnet", "Weighted Brovey (as GDAL / QGIS's built-in Pansharpening)")),
    ("exp", QT_TRANSLATE_NOOP("psdnet", "Bicubic upsampling of the MS only (EXP, a reference)")),
    ("mtf_glp_fs", QT_TRANSLATE_NOOP("psdnet", "MTF-GLP-FS (Laplacian pyramid, full-scale injection gains)")),
    ("bdsd_pc", QT_TRANSLATE_NOOP("psdnet", "BDSD-PC (band-dependent spatial detail, physical constraints)")),
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
        # when each method is the better choice (the accepted ids are listed after this text)
        items = "".join(f"<li>{self.tr(HELP[mid])}</li>" for mid, _ in METHODS)
        return self.tr(
            "<p>Classical pansharpening with the same inputs, tiling, nodata handling and georeferencing "
            "as 'Pansharpen (PSDNet)', and no PyTorch needed: a fast choice for any sensor and band "
            "count, and a fair baseline on your own data. The methods follow the definitions of Vivone "
            "et al.'s benchmark (IEEE GRSM 2021); their statistics are fitted once per raster.</p>"
            "<ul>{}</ul>"
            "<p><b>Sensor</b>: the MTF gains of the MTF-based steps (GSA's degraded PAN, the MTF-GLP "
            "filters, BDSD-PC's reduced-resolution fit). Auto reads the sensor from the layers' "
            "metadata, else uses the documented defaults; the log says which gains were used.</p>"
            "<p>Compare results with 'Assess pansharpening quality'.</p>"
        ).format(items)
