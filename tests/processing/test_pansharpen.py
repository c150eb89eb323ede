"""``psdnet:pansharpen`` through the real Processing framework on GeoTIFFs in tmp_path."""

from __future__ import annotations

import numpy as np
import processing
import pytest
from osgeo import gdal
from qgis.core import (
    QgsApplication,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
)

from tests.helpers import bicubic_reference

gdal.UseExceptions()


def read(path) -> np.ndarray:
    return gdal.Open(str(path)).ReadAsArray().astype(np.float64)


def params(pan, ms, out, weights, **extra) -> dict:
    p = {"PAN": str(pan), "MS": str(ms), "MODEL_FILE": str(weights), "OUTPUT": str(out), "FLOAT32": True}
    p.update(extra)
    return p


class Lines(QgsProcessingFeedback):
    """Processing feedback that keeps the info lines."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def pushInfo(self, info: str) -> None:
        self.lines.append(info)


def assert_on_pan_grid(out, pan, ms_bands: int) -> None:
    o, p = gdal.Open(str(out)), gdal.Open(str(pan))
    assert (o.RasterXSize, o.RasterYSize) == (p.RasterXSize, p.RasterYSize)
    assert o.RasterCount == ms_bands
    np.testing.assert_allclose(o.GetGeoTransform(), p.GetGeoTransform())
    assert o.GetSpatialRef().IsSame(p.GetSpatialRef())


def test_zero_residual_model_gives_bicubic_ms(psdnet_provider, pair, zero_weights, tmp_path):
    pan, ms = pair
    out = tmp_path / "fused.tif"
    res = processing.run("psdnet:pansharpen", params(pan, ms, out, zero_weights, TILE=16, OVERLAP=4,
                                                     CALIBRATE=False))
    assert res["OUTPUT"] == str(out)
    assert_on_pan_grid(out, pan, 4)
    assert gdal.Open(str(out)).GetRasterBand(1).DataType == gdal.GDT_Float32
    # Bicubic with reflection-padded borders: the engine's definition of the upsampled MS.
    expected = bicubic_reference(read(ms).astype(np.float32), 4, margin=4)
    np.testing.assert_allclose(read(out), expected, atol=1e-2)  # DN scale 0..2047


def test_calibrated_by_default_and_switch_off(psdnet_provider, pair, zero_weights, tmp_path):
    """The default run is calibrated (the log says so, the zero-detail network takes MTF-GLP-FS's detail);
    CALIBRATE=False gives the network's output as it comes."""
    from qgis.core import QgsApplication

    pan, ms = pair
    fb = Lines()
    on, off = tmp_path / "on.tif", tmp_path / "off.tif"
    processing.run("psdnet:pansharpen", params(pan, ms, on, zero_weights), feedback=fb)
    processing.run("psdnet:pansharpen", params(pan, ms, off, zero_weights, CALIBRATE=False))
    assert any("Calibration on the scene degraded by the ratio" in line for line in fb.lines)
    expected = bicubic_reference(read(ms).astype(np.float32), 4, margin=4)
    np.testing.assert_allclose(read(off), expected, atol=1e-2)
    assert np.abs(read(on) - expected).max() > 1.0  # the classical detail came in
    alg = QgsApplication.processingRegistry().algorithmById("psdnet:pansharpen")
    p = alg.parameterDefinition("CALIBRATE")
    assert p is not None and p.defaultValue() is True


def test_default_output_keeps_ms_dtype(psdnet_provider, pair, zero_weights, tmp_path):
    pan, ms = pair
    out = tmp_path / "fused_u16.tif"
    processing.run("psdnet:pansharpen", params(pan, ms, out, zero_weights, FLOAT32=False))
    assert gdal.Open(str(out)).GetRasterBand(1).DataType == gdal.GDT_UInt16


def test_background_task(psdnet_provider, pair, zero_weights, tmp_path):
    pan, ms = pair
    out = tmp_path / "task.tif"
    alg = QgsApplication.processingRegistry().createAlgorithmById("psdnet:pansharpen")
    assert alg is not None
    context, feedback = QgsProcessingContext(), QgsProcessingFeedback()
    context.setProject(QgsProject.instance())
    done: dict = {}
    task = QgsProcessingAlgRunnerTask(alg, params(pan, ms, out, zero_weights), context, feedback)
    task.executed.connect(lambda ok, results: done.update(ok=ok, results=results))
    QgsApplication.taskManager().addTask(task)
    import time

    deadline = time.time() + 120
    while "ok" not in done and time.time() < deadline:
        QgsApplication.processEvents()
        time.sleep(0.02)
    assert done.get("ok"), feedback.textLog() if hasattr(feedback, "textLog") else done
    assert_on_pan_grid(out, pan, 4)


def test_graphical_model_clip_then_pansharpen(psdnet_provider, pair, zero_weights, tmp_path):
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterRasterLayer,
    )

    pan, ms = pair
    model = QgsProcessingModelAlgorithm("clip_and_sharpen", "tests")
    for name in ("pan", "ms"):
        model.addModelParameter(QgsProcessingParameterRasterLayer(name, name), QgsProcessingModelParameter(name))
    pan_ds = gdal.Open(str(pan))
    gt = pan_ds.GetGeoTransform()
    # Clip the PAN to its left half (an extent on MS pixel boundaries), then pansharpen.
    xmin, ymax = gt[0], gt[3]
    xmax, ymin = gt[0] + gt[1] * pan_ds.RasterXSize / 2, gt[3] + gt[5] * pan_ds.RasterYSize
    clip = QgsProcessingModelChildAlgorithm("gdal:cliprasterbyextent")
    clip.setChildId("clip")
    clip.addParameterSources("INPUT", [QgsProcessingModelChildParameterSource.fromModelParameter("pan")])
    clip.addParameterSources("PROJWIN", [QgsProcessingModelChildParameterSource.fromStaticValue(
        f"{xmin},{xmax},{ymin},{ymax} [EPSG:32631]")])
    model.addChildAlgorithm(clip)
    sharpen = QgsProcessingModelChildAlgorithm("psdnet:pansharpen")
    sharpen.setChildId("sharpen")
    sharpen.addParameterSources("PAN", [QgsProcessingModelChildParameterSource.fromChildOutput("clip", "OUTPUT")])
    sharpen.addParameterSources("MS", [QgsProcessingModelChildParameterSource.fromModelParameter("ms")])
    sharpen.addParameterSources(
        "MODEL_FILE", [QgsProcessingModelChildParameterSource.fromStaticValue(str(zero_weights))])
    out_def = QgsProcessingModelOutput("fused")
    out_def.setChildOutputName("OUTPUT")
    sharpen.setModelOutputs({"fused": out_def})
    model.addChildAlgorithm(sharpen)
    assert not model.validate()[1] or model.validate()[0], model.validate()[1]
    out = tmp_path / "model_out.tif"
    res = processing.run(model, {"pan": str(pan), "ms": str(ms), "sharpen:fused": str(out)})
    ds = gdal.Open(res["sharpen:fused"])
    assert (ds.RasterXSize, ds.RasterYSize) == (pan_ds.RasterXSize // 2, pan_ds.RasterYSize)
    assert ds.RasterCount == 4


class CancelAfterFirstProgress(QgsProcessingFeedback):
    def __init__(self):
        super().__init__()
        self.progressChanged.connect(lambda p: p > 0 and self.cancel())


def test_cancel_removes_output(psdnet_provider, tmp_path, zero_weights):
    from tests.rasters import make_pair

    pan, ms = make_pair(tmp_path, ms_shape=(96, 96))
    out = tmp_path / "cancelled.tif"
    with pytest.raises(QgsProcessingException, match="[Cc]ancel"):
        processing.run("psdnet:pansharpen", params(pan, ms, out, zero_weights, TILE=16, OVERLAP=4),
                       feedback=CancelAfterFirstProgress())
    assert not out.exists()


def test_real_bundled_model_auto(psdnet_provider, pair, tmp_path):
    """The bundled vhr4 model, picked by Auto (4 bands, ratio 4), runs and stays near the MS radiometry."""
    from psdnet_qgis.core.registry import list_models

    if not any(m.bands == 4 and m.ratio == 4 for m in list_models()):
        pytest.skip("no bundled 4-band ratio-4 model yet")
    pan, ms = pair
    out = tmp_path / "auto.tif"
    processing.run("psdnet:pansharpen", {"PAN": str(pan), "MS": str(ms), "OUTPUT": str(out)})
    fused = read(out)
    assert np.isfinite(fused).all()
    lr_mean = read(ms).mean(axis=(1, 2))
    np.testing.assert_allclose(fused.mean(axis=(1, 2)), lr_mean, rtol=0.1)


def test_result_loaded_on_map_as_true_colour(psdnet_provider, pair, zero_weights, tmp_path, qgis_iface, monkeypatch):
    from qgis.core import QgsLayerTreeModel, QgsMultiBandColorRenderer
    from qgis.gui import QgsLayerTreeView

    # Processing's result loading hands the layer tree view to C++ since QGIS 3.44: pytest-qgis's
    # interface answers with a mock, so give it a real view of the project's layer tree
    model = QgsLayerTreeModel(QgsProject.instance().layerTreeRoot())
    view = QgsLayerTreeView()
    view.setModel(model)
    monkeypatch.setattr(qgis_iface, "layerTreeView", lambda: view)
    pan, ms = pair
    out = tmp_path / "loaded.tif"
    processing.runAndLoadResults("psdnet:pansharpen", params(pan, ms, out, zero_weights))
    QgsApplication.processEvents()
    layers = [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.source() == str(out)]
    assert len(layers) == 1
    renderer = layers[0].renderer()
    assert isinstance(renderer, QgsMultiBandColorRenderer)
    # zero4's metadata: rgb = [2, 1, 0] (0-based) -> bands 3, 2, 1 as red, green, blue
    assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (3, 2, 1)
    ce = renderer.redContrastEnhancement()
    assert ce is not None and ce.minimumValue() < ce.maximumValue()
    QgsProject.instance().removeMapLayer(layers[0].id())


def test_eight_band_ms_fused_whole(psdnet_provider, zero_weights, tmp_path):
    """An 8-band WorldView-like MS with a 4-band model: all 8 bands out, in order, with descriptions;
    the model's bands are the zero-residual network's (bicubic), the others MTF-GLP-FS."""
    from tests.rasters import NET_BANDS, write_worldview

    names = ["Coastal", "Blue", "Green", "Yellow", "Red", "Red Edge", "NIR1", "NIR2"]
    pan, ms = write_worldview(tmp_path, descriptions=names)
    out = tmp_path / "wv8.tif"
    processing.run("psdnet:pansharpen", params(pan, ms, out, zero_weights, CALIBRATE=False))
    ds = gdal.Open(str(out))
    assert ds.RasterCount == 8
    assert [ds.GetRasterBand(b).GetDescription() for b in range(1, 9)] == names
    fused = read(out)
    ref = bicubic_reference(read(ms)[NET_BANDS], 4, 4)  # the default PSDNet margin is 4 MS px
    np.testing.assert_allclose(fused[NET_BANDS], ref, atol=0.05)
    assert np.isfinite(fused).all()


def test_eight_band_ms_reversed_is_refused(psdnet_provider, zero_weights, tmp_path):
    from tests.rasters import write_worldview

    pan, ms = write_worldview(tmp_path, bands=range(7, -1, -1))
    out = tmp_path / "rev.tif"
    with pytest.raises(QgsProcessingException, match="Model bands"):
        processing.run("psdnet:pansharpen", params(pan, ms, out, zero_weights))
    assert not out.exists()
    # the user's bands win
    processing.run("psdnet:pansharpen", params(pan, ms, out, zero_weights, MODEL_BANDS="7,6,4,2",
                                               OTHER_METHOD="gsa"))
    assert gdal.Open(str(out)).RasterCount == 8


@pytest.mark.slow
def test_landsat_seven_band_vrt_fused_whole(psdnet_provider, tmp_path):
    """A VRT of Landsat 8 band files B1-B7 (named like a USGS product), Auto: psdnet_landsat3 on blue,
    green, red (as a 3-band run of them), MTF-GLP-FS on coastal, NIR, SWIR (as MTF-GLP-FS on the
    MS), every band out in order and named; a 4-band B2-B5 GeoTIFF the same by its descriptions;
    calibrated, the SWIR bands are the upsampled MS."""

    from psdnet_qgis.core.registry import list_models
    from psdnet_qgis.engine.run import pansharpen
    from tests.rasters import LANDSAT7, SAME, write_landsat

    if not any(m.name == "psdnet_landsat3" for m in list_models()):
        pytest.skip("bundled psdnet_landsat3 weights not present")

    files = write_landsat(tmp_path)
    base = {"PAN": str(files["pan"]), "MS": str(files["ms7"]), "FLOAT32": True, "DEVICE": "cpu"}
    fb, out = Lines(), tmp_path / "l7.tif"
    processing.run("psdnet:pansharpen", {**base, "OUTPUT": str(out), "CALIBRATE": False}, feedback=fb)
    ds = gdal.Open(str(out))
    assert [ds.GetRasterBand(b).GetDescription() for b in range(1, 8)] == list(LANDSAT7)
    assert any("Bands 2, 3, 4 (blue, green, red) by psdnet_landsat3; bands 1, 5, 6, 7 (coastal, nir, swir1, "
               "swir2) by mtf_glp_fs" in line for line in fb.lines), fb.lines
    ref = {}
    for key, ms, kw in (("net", "ms3", {"calibrate": False}), ("fs", "ms7", {"method": "mtf_glp_fs"}),
                        ("exp", "ms7", {"method": "exp"})):
        pansharpen(files["pan"], files[ms], tmp_path / f"{key}.tif", out_dtype="float32", device="cpu", **kw)
        ref[key] = read(tmp_path / f"{key}.tif")
    fused = read(out)
    np.testing.assert_allclose(fused[[1, 2, 3]], ref["net"], rtol=0, atol=SAME)
    np.testing.assert_allclose(fused[[0, 4, 5, 6]], ref["fs"][[0, 4, 5, 6]], rtol=0, atol=SAME)
    # the 4-band GeoTIFF of B2-B5 described "SR_B2" .. "SR_B5" (the sensor from the PAN's file name)
    out4 = tmp_path / "l4.tif"
    processing.run("psdnet:pansharpen", {**base, "MS": str(files["ms4_tif"]), "OUTPUT": str(out4),
                                         "CALIBRATE": False})
    ds = gdal.Open(str(out4))
    assert [ds.GetRasterBand(b).GetDescription() for b in range(1, 5)] == ["SR_B2", "SR_B3", "SR_B4", "SR_B5"]
    np.testing.assert_allclose(read(out4)[:3], ref["net"], rtol=0, atol=SAME)
    fb, cal = Lines(), tmp_path / "cal.tif"
    processing.run("psdnet:pansharpen", {**base, "OUTPUT": str(cal)}, feedback=fb)
    assert any(line.startswith("swir1, swir2: no PAN detail") for line in fb.lines), fb.lines
    np.testing.assert_allclose(read(cal)[5:], ref["exp"][5:], rtol=0, atol=SAME)
