"""``psdnet:assess`` through the real Processing framework on GeoTIFFs in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import processing
import pytest
from osgeo import gdal
from qgis.core import (
    QgsApplication,
    QgsProcessingException,
    QgsProcessingOutputHtml,
    QgsProcessingOutputNumber,
)

from psdnet_qgis.core.resample import upsample_bicubic
from tests.rasters import write_geotiff

gdal.UseExceptions()

ORIGIN = (500000.0, 5700000.0)  # tests.rasters.make_pair's default origin
REDUCED = ("Q2N", "Q", "SAM", "ERGAS", "SCC")
FULL = ("D_LAMBDA", "D_S", "QNR", "D_LAMBDA_K", "HQNR")


@pytest.fixture
def assess_alg(psdnet_provider):
    """``psdnet:assess`` from the registered provider."""
    alg = QgsApplication.processingRegistry().algorithmById("psdnet:assess")
    assert alg is not None
    return alg


@pytest.fixture
def fused(pair, tmp_path: Path) -> Path:
    """EXP (bicubic MS) written on the PAN grid: a plausible fused product."""
    _, ms = pair
    arr = gdal.Open(str(ms)).ReadAsArray().astype(np.float32)
    return write_geotiff(tmp_path / "exp.tif", upsample_bicubic(arr, 4), ORIGIN, 0.5)


def run(pan, ms, fused, html, **extra) -> dict:
    params = {"FUSED": str(fused), "PAN": str(pan), "MS": str(ms), "OUTPUT_HTML": str(html)}
    params.update(extra)
    return processing.run("psdnet:assess", params)


def test_identical_reference_gives_perfect_scores_and_report(assess_alg, pair, fused, tmp_path):
    pan, ms = pair
    html = tmp_path / "report.html"
    res = run(pan, ms, fused, html, REFERENCE=str(fused), SENSOR=4)  # WorldView-2
    assert res["Q2N"] == pytest.approx(1.0, abs=1e-9)
    assert res["Q"] == pytest.approx(1.0, abs=1e-9)
    assert res["SAM"] == pytest.approx(0.0, abs=1e-6)
    assert res["ERGAS"] == pytest.approx(0.0, abs=1e-9)
    assert res["SCC"] == pytest.approx(1.0, abs=1e-9)
    for name in FULL:
        assert isinstance(res[name], float) and np.isfinite(res[name])
    assert 0.0 < res["QNR"] <= 1.0
    assert res["SAMPLED_PIXELS"] == 160 * 192
    assert res["OUTPUT_HTML"] == str(html)
    text = html.read_text(encoding="utf-8")
    assert "<table class=\"metrics\">" in text and "Q2n" in text and "HQNR" in text
    assert "WorldView-2" in text
    assert (tmp_path / "report_quicklook.png").exists()


def test_without_reference_full_resolution_only(assess_alg, pair, fused, tmp_path):
    pan, ms = pair
    res = run(pan, ms, fused, tmp_path / "r.html")
    assert all(res[name] is None for name in REDUCED)
    assert all(res[name] is not None for name in FULL)


def test_outputs_are_modeler_numbers_and_an_html(assess_alg):
    outs = {o.name(): o for o in assess_alg.outputDefinitions()}
    for name in REDUCED + FULL + ("SAMPLED_PIXELS",):
        assert isinstance(outs[name], QgsProcessingOutputNumber), name
    assert isinstance(outs["OUTPUT_HTML"], QgsProcessingOutputHtml)
    assert assess_alg.displayName() == "Assess pansharpening quality"


def test_fused_band_mismatch_names_layer_and_fix(assess_alg, pair, fused, tmp_path):
    pan, ms = pair
    arr = gdal.Open(str(fused)).ReadAsArray()[:3].astype(np.float32)
    three = write_geotiff(tmp_path / "three_bands.tif", arr, ORIGIN, 0.5)
    with pytest.raises(QgsProcessingException, match=r"three_bands.*3 bands.*same bands"):
        run(pan, ms, three, tmp_path / "r.html")


def test_fused_not_on_pan_grid_is_explained(assess_alg, pair, tmp_path):
    pan, ms = pair
    with pytest.raises(QgsProcessingException, match=r"Fused input .*pixel size.*PAN"):
        run(pan, ms, ms, tmp_path / "r.html")


def test_default_sample_size_matches_the_engine():
    from psdnet_qgis.engine.assess import quality as engine_assess
    from psdnet_qgis.processing import assess_algorithm

    assert assess_algorithm.DEFAULT_MAX_PIXELS == engine_assess.DEFAULT_MAX_PIXELS
