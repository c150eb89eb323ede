"""The shared SENSOR parameter of psdnet:classical / psdnet:pansharpen / psdnet:assess and the
new classical methods through Processing (the same numbers as the engine call)."""

from __future__ import annotations

import numpy as np
import processing
import pytest
from osgeo import gdal

from psdnet_qgis.core import mtf
from psdnet_qgis.engine.run import pansharpen
from psdnet_qgis.processing.sensors import SENSOR_IDS, engine_sensor, sensor_choices


def _read(path) -> np.ndarray:
    return gdal.Open(str(path)).ReadAsArray().astype(np.float64)


def test_one_list_with_gains_in_the_labels() -> None:
    assert SENSOR_IDS == mtf.SENSOR_CHOICES
    labels = dict(sensor_choices())
    assert "0.34, 0.32, 0.3, 0.22" in labels["QuickBird"] and "metadata" in labels["auto"]
    assert engine_sensor("unknown") is None and engine_sensor("auto") == "auto"


@pytest.mark.parametrize("method", ["mtf_glp_fs", "bdsd_pc", "gsa"])
def test_classical_sensor_reaches_the_engine(psdnet_provider, pair, tmp_path, method) -> None:
    pan, ms = pair
    out = tmp_path / "alg.tif"
    processing.run("psdnet:classical", {"PAN": str(pan), "MS": str(ms), "METHOD": method,
                                        "SENSOR": "IKONOS", "OUTPUT": str(out)})
    pansharpen(str(pan), str(ms), str(tmp_path / "eng.tif"), method=method, sensor="IKONOS")
    np.testing.assert_array_equal(_read(out), _read(tmp_path / "eng.tif"))
    pansharpen(str(pan), str(ms), str(tmp_path / "def.tif"), method=method, sensor="unknown")
    assert not np.array_equal(_read(out), _read(tmp_path / "def.tif"))


def test_classical_default_sensor_is_auto(psdnet_provider, pair, tmp_path) -> None:
    pan, ms = pair
    out = tmp_path / "auto.tif"
    processing.run("psdnet:classical", {"PAN": str(pan), "MS": str(ms), "METHOD": "mtf_glp_fs", "OUTPUT": str(out)})
    pansharpen(str(pan), str(ms), str(tmp_path / "eng.tif"), method="mtf_glp_fs", sensor="auto")
    np.testing.assert_array_equal(_read(out), _read(tmp_path / "eng.tif"))


def test_help_says_when_each_method_is_better(psdnet_provider) -> None:
    from qgis.core import QgsApplication

    text = QgsApplication.processingRegistry().algorithmById("psdnet:classical").shortHelpString()
    for fragment in ("MTF-GLP-FS:", "BDSD-PC:", "<b>bdsd_pc</b>", "<b>auto</b>"):
        assert fragment in text, fragment


def test_assess_accepts_auto(psdnet_provider, pair, tmp_path) -> None:
    pan, ms = pair
    fused = tmp_path / "f.tif"
    processing.run("psdnet:classical", {"PAN": str(pan), "MS": str(ms), "METHOD": "gsa", "OUTPUT": str(fused)})
    res = processing.run("psdnet:assess", {"FUSED": str(fused), "PAN": str(pan), "MS": str(ms), "SENSOR": "auto",
                                           "OUTPUT_HTML": str(tmp_path / "r.html")})
    assert 0.0 < res["QNR"] <= 1.0
