"""A Landsat MS with more bands than psdnet_landsat3 (blue, green, red): named by band numbers, fused mixed.

Generated GeoTIFFs only: a Landsat 8 scene of bands 1-7 (``tests.rasters.landsat_scene``), written
as one file per band named like a USGS product (``LC08_..._B5.TIF``) with the PAN ``..._B8.TIF``
(the sensor comes from the file names), stacked by VRTs, or as one GeoTIFF with band descriptions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from psdnet_qgis.engine.run import pansharpen
from psdnet_qgis.errors import PSDNetInputError
from tests.helpers import Recorder, read
from tests.rasters import LANDSAT7, SAME, write_landsat


@pytest.fixture(scope="module")
def landsat(tmp_path_factory) -> dict[str, Path]:
    pytest.importorskip("torch")
    from psdnet_qgis.core.registry import list_models

    if not any(m.name == "psdnet_landsat3" for m in list_models()):
        pytest.skip("bundled psdnet_landsat3 weights not present")
    return write_landsat(tmp_path_factory.mktemp("landsat"))


@pytest.fixture(scope="module")
def runs(landsat, tmp_path_factory) -> dict[str, tuple]:
    """The runs the tests compare, each once: (report, output array, log lines)."""
    folder = tmp_path_factory.mktemp("landsat_out")
    done = {}
    for key, ms, kw in (
        ("ms3", "ms3", {"calibrate": False}),
        ("ms3_cal", "ms3", {}),
        ("ms4", "ms4_tif", {"calibrate": False}),
        ("ms7", "ms7", {"calibrate": False}),
        ("ms7_cal", "ms7", {}),
        ("fs4", "ms4_tif", {"method": "mtf_glp_fs"}),
        ("fs7", "ms7", {"method": "mtf_glp_fs"}),
        ("exp7", "ms7", {"method": "exp"}),
    ):
        fb = Recorder()
        out = folder / f"{key}.tif"
        rep = pansharpen(landsat["pan"], landsat[ms], out, out_dtype="float32", device="cpu", feedback=fb, **kw)
        done[key] = (rep, read(out), fb.lines, out)
    return done


def descriptions(path: Path) -> list[str]:
    ds = gdal.Open(str(path))
    return [ds.GetRasterBand(b).GetDescription() for b in range(1, ds.RasterCount + 1)]


@pytest.mark.slow
def test_four_bands_by_their_descriptions(runs):
    rep, out, lines, path = runs["ms4"]
    assert rep.model == "psdnet_landsat3" and rep.bands == 4
    assert rep.band_methods == {"psdnet_landsat3": [1, 2, 3], "mtf_glp_fs": [4]}
    assert any("Bands 1, 2, 3 (blue, green, red) by psdnet_landsat3; bands 4 (nir) by mtf_glp_fs" in m
               and "Landsat 8/9 OLI bands" in m for m in lines), lines
    assert descriptions(path) == ["SR_B2", "SR_B3", "SR_B4", "SR_B5"]
    np.testing.assert_allclose(out[:3], runs["ms3"][1], rtol=0, atol=SAME)  # the network's bands
    np.testing.assert_allclose(out[3], runs["fs4"][1][3], rtol=0, atol=SAME)  # MTF-GLP-FS on the NIR


@pytest.mark.slow
def test_seven_bands_of_a_vrt_of_band_files(runs):
    rep, out, lines, path = runs["ms7"]
    assert rep.model == "psdnet_landsat3" and rep.bands == 7 and rep.rgb == [3, 2, 1]
    assert rep.band_methods == {"psdnet_landsat3": [2, 3, 4], "mtf_glp_fs": [1, 5, 6, 7]}
    line = next(m for m in lines if m.startswith("Bands 2, 3, 4"))
    assert "bands 1, 5, 6, 7 (coastal, nir, swir1, swir2) by mtf_glp_fs" in line
    assert "from the VRT's source file names" in line and "checked on the pixels: confirmed" in line
    assert any(m.startswith("Sensor: Landsat 8 OLI") and "a source of ms7.vrt" in m for m in lines), lines
    assert descriptions(path) == list(LANDSAT7)  # the bands had none: named in the output
    np.testing.assert_allclose(out[[1, 2, 3]], runs["ms3"][1], rtol=0, atol=SAME)
    np.testing.assert_allclose(out[[0, 4, 5, 6]], runs["fs7"][1][[0, 4, 5, 6]], rtol=0, atol=SAME)


@pytest.mark.slow
def test_calibrated_swir_bands_keep_the_upsampled_ms(runs):
    rep, out, lines, _ = runs["ms7_cal"]
    assert any(m.startswith("swir1, swir2: no PAN detail (outside the PAN's spectral range)") for m in lines), lines
    w = np.asarray(rep.calibration["weights"])
    assert (w[5:] == 0).all() and (w[:5].sum(axis=1) > 0.99).all()
    assert any("swir1: no detail (upsampled MS)" in m for m in lines)
    # the upsampled MS is method "exp" (bicubic) of the same bands
    np.testing.assert_allclose(out[5:], runs["exp7"][1][5:], rtol=0, atol=SAME)
    # the network's bands: a calibrated 3-band run of them. Both fit per-band weights on the same
    # degraded windows with the same MTF gains (the Landsat table's mean for 3 and 7 bands), and
    # MTF-GLP-FS fits each band on its own, so the weights agree; the outputs differ by float
    # rounding (measured 0.001 DN of values up to 15000): allowed 0.5 DN, 1e-3 on the weights
    ref_rep, ref, _, _ = runs["ms3_cal"]
    np.testing.assert_allclose(w[[1, 2, 3]], np.asarray(ref_rep.calibration["weights"]), rtol=0, atol=1e-3)
    np.testing.assert_allclose(out[[1, 2, 3]], ref, rtol=0, atol=0.5)


def test_a_band_number_names_nothing_without_a_landsat_sensor(landsat, tmp_path):
    with pytest.raises(PSDNetInputError) as err:
        pansharpen(landsat["pan"], landsat["ms4_tif"], tmp_path / "x.tif", sensor="unknown")
    msg = str(err.value)
    assert "Model 'auto'" in msg and str(landsat["ms4_tif"]) in msg and "sensor" in msg
    assert not (tmp_path / "x.tif").exists()
    # the same file with the sensor named: the band numbers are Landsat's
    rep = pansharpen(landsat["pan"], landsat["ms4_tif"], tmp_path / "y.tif", sensor="Landsat 8/9 OLI",
                     calibrate=False)
    assert rep.band_methods == {"psdnet_landsat3": [1, 2, 3], "mtf_glp_fs": [4]}


def test_bands_no_model_knows_are_refused_with_the_fix(landsat, tmp_path):
    vrt = tmp_path / "swir.vrt"
    src = gdal.Open(str(landsat["ms7"]))
    files = [f for f in src.GetFileList()[1:] if f.endswith(("_B5.TIF", "_B6.TIF", "_B7.TIF"))]
    gdal.BuildVRT(str(vrt), sorted(files), separate=True)
    with pytest.raises(PSDNetInputError) as err:
        pansharpen(landsat["pan"], vrt, tmp_path / "x.tif")
    msg = str(err.value)
    assert "nir, swir1, swir2" in msg and "classical method" in msg and str(vrt) in msg


def test_batch_auto_takes_the_model_by_band_names(landsat, tmp_path):
    from psdnet_qgis.engine.batch.jobs import Job
    from psdnet_qgis.engine.batch.runner import _worker_model

    job = Job(2, str(landsat["pan"]), str(landsat["ms7"]), str(tmp_path / "b.tif"), {"model": "auto"})
    net, _ = _worker_model("auto", job, "cpu")
    assert net.psdnet_meta.name == "psdnet_landsat3"
