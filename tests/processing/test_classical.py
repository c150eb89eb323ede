"""``psdnet:classical`` through Processing: every method, same grid as PSDNet, no torch needed."""

from __future__ import annotations

import numpy as np
import processing
import pytest
from osgeo import gdal

from psdnet_qgis.processing.classical_algorithm import METHODS


@pytest.mark.parametrize("index", range(len(METHODS)))
def test_each_method_on_pan_grid(psdnet_provider, pair, tmp_path, index):
    pan, ms = pair
    out = tmp_path / f"{METHODS[index][0]}.tif"
    processing.run("psdnet:classical", {"PAN": str(pan), "MS": str(ms), "METHOD": index, "OUTPUT": str(out)})
    o, p = gdal.Open(str(out)), gdal.Open(str(pan))
    assert (o.RasterXSize, o.RasterYSize, o.RasterCount) == (p.RasterXSize, p.RasterYSize, 4)
    np.testing.assert_allclose(o.GetGeoTransform(), p.GetGeoTransform())
    assert o.GetRasterBand(1).DataType == gdal.GDT_UInt16
    data = o.ReadAsArray().astype(np.float64)
    ms_mean = gdal.Open(str(ms)).ReadAsArray().astype(np.float64).mean(axis=(1, 2))
    np.testing.assert_allclose(data.mean(axis=(1, 2)), ms_mean, rtol=0.15)


def test_modeler_classical_then_assess(psdnet_provider, pair, tmp_path):
    """psdnet:classical feeds psdnet:assess in a graphical model; the metric is a model output."""
    from qgis.core import (
        QgsProcessingContext,
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterRasterLayer,
    )
    from qgis.core import QgsProcessingModelChildParameterSource as Src

    pan, ms = pair
    model = QgsProcessingModelAlgorithm("sharpen_and_assess", "tests")
    for name in ("pan", "ms"):
        model.addModelParameter(QgsProcessingParameterRasterLayer(name, name), QgsProcessingModelParameter(name))
    sharpen = QgsProcessingModelChildAlgorithm("psdnet:classical")
    sharpen.setChildId("sharpen")
    sharpen.addParameterSources("PAN", [Src.fromModelParameter("pan")])
    sharpen.addParameterSources("MS", [Src.fromModelParameter("ms")])
    sharpen.addParameterSources("METHOD", [Src.fromStaticValue(1)])  # MTF-GLP-HPM
    model.addChildAlgorithm(sharpen)
    assess = QgsProcessingModelChildAlgorithm("psdnet:assess")
    assess.setChildId("assess")
    assess.addParameterSources("FUSED", [Src.fromChildOutput("sharpen", "OUTPUT")])
    assess.addParameterSources("PAN", [Src.fromModelParameter("pan")])
    assess.addParameterSources("MS", [Src.fromModelParameter("ms")])
    out = QgsProcessingModelOutput("report")
    out.setChildOutputName("OUTPUT_HTML")
    assess.setModelOutputs({"report": out})
    model.addChildAlgorithm(assess)
    html = tmp_path / "report.html"
    context = QgsProcessingContext()
    res = processing.run(model, {"pan": str(pan), "ms": str(ms), "assess:report": str(html)}, context=context)
    assert html.exists() and "HQNR" in html.read_text()
    child = context.modelResult().childResults()["assess"].outputs() if hasattr(context, "modelResult") else None
    if child is not None:  # QGIS >= 3.38 keeps child results: the metrics are modeler numbers
        assert 0.0 < child["QNR"] <= 1.0
    assert res["assess:report"] == str(html)
