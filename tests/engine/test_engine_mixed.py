"""8-band MS with a 4-band model (engine.mixed): the network on its bands, a classical method on the rest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from psdnet_qgis.engine.calibration import CANDIDATES
from psdnet_qgis.engine.run import pansharpen
from psdnet_qgis.errors import PSDNetInputError
from tests.helpers import classical_mix, read
from tests.rasters import NET_BANDS, ORIGIN, worldview8_scene, write_geotiff, write_worldview

OTHER = [0, 3, 5, 7]


def write8(folder: Path, order=range(8), descriptions=None, name="wv8") -> tuple[Path, Path]:
    return write_worldview(folder, order, descriptions, name)


@pytest.fixture(scope="module")
def bundled_vhr4():
    pytest.importorskip("torch")
    from psdnet_qgis.core.registry import list_models

    if not any(m.name == "psdnet_vhr4" for m in list_models()):
        pytest.skip("bundled psdnet_vhr4 weights not present")
    return "psdnet_vhr4"


def test_auto_fuses_all_eight_bands(tmp_path, bundled_vhr4):
    pan, ms = write8(tmp_path)
    lines: list[str] = []
    rep = pansharpen(pan, ms, tmp_path / "out8.tif", out_dtype="float32",
                     feedback=type("F", (), {"info": lambda s, m: lines.append(m), "progress": lambda s, p: None,
                                             "is_canceled": lambda s: False})())
    assert rep.bands == 8 and rep.model == "psdnet_vhr4"
    assert rep.band_methods == {"psdnet_vhr4": [2, 3, 5, 7], "mtf_glp_fs": [1, 4, 6, 8]}
    assert rep.rgb == [4, 2, 1]  # red, green, blue in MS band numbers (0-based)
    assert any("checked on the pixels: confirmed" in m for m in lines), lines

    out8 = read(tmp_path / "out8.tif")
    # the network's bands are what a 4-band run of those bands gives
    from osgeo import gdal

    sub = tmp_path / "sub4.tif"
    gdal.Translate(str(sub), str(ms), bandList=[b + 1 for b in NET_BANDS])
    pansharpen(pan, sub, tmp_path / "out4.tif", model="psdnet_vhr4", out_dtype="float32")
    np.testing.assert_allclose(out8[NET_BANDS], read(tmp_path / "out4.tif"), rtol=0, atol=0.05)
    # the others are the calibrated mix of the classical candidates fitted on all 8 bands (MTF-GLP-FS,
    # the other bands' method, among them; GSA's intensity from the network's bands), with the
    # reported weights and no network detail
    cal = rep.calibration
    w = np.asarray(cal["weights"], np.float32)
    assert cal["candidates"][1:] == list(CANDIDATES) and (w[OTHER, 0] == 0).all()
    assert cal["intensity_bands"] == [b + 1 for b in NET_BANDS]
    assert any(m == "GSA candidate: intensity from bands 2, 3, 5, 7 only (the network's bands)." for m in lines)
    pansharpen(pan, ms, tmp_path / "exp.tif", method="exp", out_dtype="float32")
    lms = read(tmp_path / "exp.tif")[OTHER]
    expect = classical_mix(pan, ms, tmp_path, w, lms, bands=OTHER, consistency=cal["consistency"],
                           intensity=NET_BANDS, out_dtype="float32")
    # the report rounds the weights to 1e-4; the consistency step reads the engine's padding within
    # 5 MS px of the raster's edge, not the helper's: the edge is left out
    e = 5 * 4
    np.testing.assert_allclose(out8[OTHER][:, e:-e, e:-e], expect[:, e:-e, e:-e], rtol=0,
                               atol=0.05 + 2e-4 * float(np.abs(expect - lms).max()))


def test_reversed_bands_are_refused_and_nothing_is_written(tmp_path, bundled_vhr4):
    pan, ms = write8(tmp_path, order=range(7, -1, -1))
    out = tmp_path / "rev.tif"
    with pytest.raises(PSDNetInputError) as err:
        pansharpen(pan, ms, out)
    msg = str(err.value)
    assert str(ms) in msg and "Model bands" in msg and "2,3,5,7" in msg
    assert not out.exists()


def test_bands_set_by_the_user_win(tmp_path, bundled_vhr4):
    pan, ms = write8(tmp_path, order=range(7, -1, -1))  # reversed: NIR1 is band 2, red 4, green 6, blue 7
    rep = pansharpen(pan, ms, tmp_path / "set.tif", model_bands="7,6,4,2", other_method="mtf_glp_hpm")
    assert rep.band_methods == {"psdnet_vhr4": [7, 6, 4, 2], "mtf_glp_hpm": [1, 3, 5, 8]}


def test_band_descriptions_decide_the_bands(tmp_path, bundled_vhr4):
    order = [1, 2, 4, 6, 0, 3, 5, 7]  # blue, green, red, NIR1 first, then the others
    names = ["Blue", "Green", "Red", "NIR1", "Coastal", "Yellow", "Red Edge", "NIR2"]
    pan, ms = write8(tmp_path, order=order, descriptions=names)
    rep = pansharpen(pan, ms, tmp_path / "desc.tif")
    assert rep.band_methods["psdnet_vhr4"] == [1, 2, 3, 4]
    from osgeo import gdal

    ds = gdal.Open(str(tmp_path / "desc.tif"))
    assert [ds.GetRasterBand(b).GetDescription() for b in range(1, 9)] == names


@pytest.mark.parametrize("bad", ["2,3,5", "2,3,5,9", "2,2,5,7", "blue,green"])
def test_bad_model_bands_name_the_input_and_the_fix(tmp_path, bundled_vhr4, bad):
    pan, ms = write8(tmp_path)
    with pytest.raises(PSDNetInputError, match="Model bands") as err:
        pansharpen(pan, ms, tmp_path / "bad.tif", model_bands=bad)
    assert "e.g. 2,3,5,7" in str(err.value)


def test_unknown_band_count_without_descriptions_asks_for_model_bands(tmp_path, bundled_vhr4):
    pan, ms8 = worldview8_scene((24, 28), 4, seed=5)
    p = write_geotiff(tmp_path / "p.tif", pan, ORIGIN, 0.5)
    m = write_geotiff(tmp_path / "m6.tif", ms8[:6], ORIGIN, 2.0)
    with pytest.raises(PSDNetInputError, match="6 MS bands|Model bands"):
        pansharpen(p, m, tmp_path / "o.tif", model="psdnet_vhr4")
    rep = pansharpen(p, m, tmp_path / "o.tif", model="psdnet_vhr4", model_bands="2,3,5,1")
    assert rep.band_methods["psdnet_vhr4"] == [2, 3, 5, 1]
