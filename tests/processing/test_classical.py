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


def test_ms_in_another_crs_is_warped_onto_the_pan(psdnet_provider, pair, tmp_path):
    """Issue 21: an MS reprojected to EPSG:4326 over a UTM PAN runs (ratio from ground sizes) and
    gives the native-CRS result up to the resampling of the reprojection."""
    pan, ms = pair
    ms4326 = tmp_path / "ms_4326.tif"
    gdal.Warp(str(ms4326), str(ms), dstSRS="EPSG:4326", resampleAlg="cubic")
    native, warped = tmp_path / "native.tif", tmp_path / "warped.tif"
    for src, out in ((ms, native), (ms4326, warped)):
        processing.run("psdnet:classical", {"PAN": str(pan), "MS": str(src), "METHOD": "mtf_glp_fs",
                                            "FLOAT32": True, "OUTPUT": str(out)})
    a, b = gdal.Open(str(native)), gdal.Open(str(warped))
    assert b.GetGeoTransform()[1] == a.GetGeoTransform()[1]  # the PAN's pixel size and CRS
    assert b.GetSpatialRef().IsSame(a.GetSpatialRef())
    # compare the interior shared by both footprints (the 4326 footprint can lose an edge column)
    ga, gb = a.GetGeoTransform(), b.GetGeoTransform()
    dx, dy = round((gb[0] - ga[0]) / ga[1]), round((gb[3] - ga[3]) / ga[5])
    x = a.ReadAsArray().astype(np.float64)[:, dy + 16:dy + b.RasterYSize - 16, dx + 16:dx + b.RasterXSize - 16]
    y = b.ReadAsArray().astype(np.float64)[:, 16:-16, 16:-16]
    rel = np.sqrt(np.mean((x - y) ** 2)) / np.mean(x)
    assert rel < 0.05, rel
