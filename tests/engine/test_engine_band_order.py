"""An MS with as many bands as the model: the band order from the descriptions, checked on the pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from psdnet_qgis.engine.run import pansharpen
from psdnet_qgis.errors import PSDNetInputError
from tests.helpers import read
from tests.rasters import write_worldview

BGRN = [1, 2, 4, 6]  # blue, green, red, NIR1 of the WorldView 8-band order (0-based)
RGBN = [4, 2, 1, 6]  # red, green, blue, NIR1: a Pleiades / SPOT export


class _Log:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.warnings: list[str] = []

    def info(self, msg: str) -> None:
        self.lines.append(msg)

    def warning(self, msg: str) -> None:
        self.warnings.append(msg)

    def progress(self, p: float) -> None:
        pass

    def is_canceled(self) -> bool:
        return False


def write4(folder: Path, order: list[int], descriptions: list[str] | None, name: str) -> tuple[Path, Path]:
    """A 4-band pair from the 8-band synthetic WorldView scene (haze and vegetation like real ones)."""
    return write_worldview(folder, order, descriptions, name)


@pytest.fixture(scope="module")
def vhr4():
    pytest.importorskip("torch")
    from psdnet_qgis.core.registry import list_models

    if not any(m.name == "psdnet_vhr4" for m in list_models()):
        pytest.skip("bundled psdnet_vhr4 weights not present")
    return "psdnet_vhr4"


def test_red_green_blue_nir_descriptions_give_the_network_its_order(tmp_path, vhr4):
    names = ["Red", "Green", "Blue", "NIR"]
    pan, ms = write4(tmp_path, RGBN, names, "rgbn")
    log = _Log()
    rep = pansharpen(pan, ms, tmp_path / "rgbn.tif", model=vhr4, out_dtype="float32", feedback=log)
    assert rep.band_methods == {"psdnet_vhr4": [3, 2, 1, 4]}  # the network's blue is MS band 3
    assert rep.rgb == [0, 1, 2]  # true colour in MS band numbers
    assert any("in the model's band order" in m and "checked on the pixels: confirmed" in m for m in log.lines)
    assert not log.warnings
    # the same as the model on the file in its own order, written back in the input order
    pan2, ms2 = write4(tmp_path, BGRN, None, "bgrn")
    pansharpen(pan2, ms2, tmp_path / "bgrn.tif", model=vhr4, out_dtype="float32")
    np.testing.assert_allclose(read(tmp_path / "rgbn.tif")[[2, 1, 0, 3]], read(tmp_path / "bgrn.tif"),
                               rtol=0, atol=0.05)
    ds = gdal.Open(str(tmp_path / "rgbn.tif"))
    assert [ds.GetRasterBand(b).GetDescription() for b in range(1, 5)] == names


def test_descriptions_the_pixels_contradict_are_refused(tmp_path, vhr4):
    pan, ms = write4(tmp_path, BGRN[::-1], ["Blue", "Green", "Red", "NIR"], "rev")  # NIR, red, green, blue
    out = tmp_path / "rev.tif"
    with pytest.raises(PSDNetInputError) as err:
        pansharpen(pan, ms, out, model=vhr4)
    msg = str(err.value)
    assert str(ms) in msg and "contradict the band descriptions" in msg and "Model bands" in msg
    assert not out.exists()


def test_without_descriptions_the_models_order_is_checked_and_a_doubt_warned(tmp_path, vhr4):
    pan, ms = write4(tmp_path, BGRN, None, "ok")
    log = _Log()
    pansharpen(pan, ms, tmp_path / "ok.tif", model=vhr4, feedback=log)
    assert not log.warnings
    assert any("in the model's band order (the bands have no descriptions); checked on the pixels: confirmed" in m
               for m in log.lines), log.lines
    pan, ms = write4(tmp_path, RGBN, None, "doubt")  # red where the model takes blue: fused, but not silently
    log = _Log()
    rep = pansharpen(pan, ms, tmp_path / "doubt.tif", model=vhr4, feedback=log)
    assert rep.band_methods is None
    assert len(log.warnings) == 1 and str(ms) in log.warnings[0] and "Model bands" in log.warnings[0]


def test_model_bands_set_by_the_user_reorder_the_bands(tmp_path, vhr4):
    pan, ms = write4(tmp_path, RGBN, None, "set")
    rep = pansharpen(pan, ms, tmp_path / "set.tif", model=vhr4, model_bands="3,2,1,4")
    assert rep.band_methods == {"psdnet_vhr4": [3, 2, 1, 4]}


def test_adapting_on_reordered_bands_is_refused(tmp_path, vhr4):
    from psdnet_qgis.engine.adapt_scene import adapt_scene

    pan, ms = write4(tmp_path, RGBN, ["Red", "Green", "Blue", "NIR"], "adapt")
    with pytest.raises(PSDNetInputError, match="gdal_translate -b 3 -b 2 -b 1 -b 4"):
        adapt_scene(str(pan), str(ms), str(tmp_path / "a.pt"), model=vhr4, seconds=5)
    assert not (tmp_path / "a.pt").exists()


def test_small_correctly_described_eight_band_ms_is_fused(tmp_path: Path) -> None:
    """Issue 21: a correctly ordered, described 8-band MS of 32 x 32 px was refused on its pixels."""
    pytest.importorskip("torch")
    names = ["Coastal", "Blue", "Green", "Yellow", "Red", "Red Edge", "NIR1", "NIR2"]
    p, m = write_worldview(tmp_path, descriptions=names, name="small", ms_shape=(32, 32), seed=11)
    rep = pansharpen(str(p), str(m), str(tmp_path / "o.tif"), model="psdnet_vhr4_fast", device="cpu")
    assert rep.bands == 8 and rep.band_methods["psdnet_vhr4_fast"] == [2, 3, 5, 7]
    assert np.isfinite(read(tmp_path / "o.tif")).all()
