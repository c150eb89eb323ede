"""Every bad input is a PSDNetInputError raised before any work, naming the input and a fix."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from psdnet_qgis.engine import output
from psdnet_qgis.engine.run import pansharpen
from psdnet_qgis.errors import PSDNetInputError

from .conftest import ORIGIN, make_pair, synthetic_scene, write_geotiff


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if output creation (= the start of the work) is reached."""
    def boom(*a, **k):
        raise AssertionError("work started before the input was rejected")

    monkeypatch.setattr(output, "create_output", boom)


def run(pan, ms, out, **kw):
    kw.setdefault("method", "exp")
    return pansharpen(pan, ms, out, **kw)


def expect(match: str, pan, ms, out, **kw) -> str:
    with pytest.raises(PSDNetInputError, match=match) as ei:
        run(pan, ms, out, **kw)
    assert not Path(out).exists()
    return str(ei.value)


def test_missing_file(pair, tmp_path, no_work):
    pan, ms = pair
    msg = expect("does not exist", tmp_path / "nope.tif", ms, tmp_path / "o.tif")
    assert msg.startswith("PAN input") and "check the path" in msg
    assert expect("does not exist", pan, tmp_path / "nope.tif", tmp_path / "o.tif").startswith("MS input")


def test_corrupt_file(pair, tmp_path, no_work):
    pan, _ = pair
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00" + os.urandom(500))
    msg = expect("cannot be opened", pan, bad, tmp_path / "o.tif")
    assert "MS input" in msg


def test_truncated_file(tmp_path, no_work):
    pan_a, ms_a = synthetic_scene((32, 32), 4, 4, seed=1)
    pan = write_geotiff(tmp_path / "p.tif", pan_a, ORIGIN, 0.5)
    ms = write_geotiff(tmp_path / "m.tif", ms_a, ORIGIN, 2.0)
    trunc = tmp_path / "p_trunc.tif"
    gdal.Translate(str(trunc), str(pan), creationOptions=["TILED=YES", "BLOCKXSIZE=32", "BLOCKYSIZE=32",
                                                          "COMPRESS=DEFLATE"])
    data = trunc.read_bytes()
    # the directory comes first with gdal.Translate: cut the tail (last tiles)
    trunc.write_bytes(data[: int(len(data) * 0.6)])
    msg = expect("truncated|corrupt", trunc, ms, tmp_path / "o.tif")
    assert "PAN input" in msg


def test_footprints_do_not_intersect(tmp_path, no_work):
    pan_a, ms_a = synthetic_scene((16, 16), 4, 4, seed=2)
    pan = write_geotiff(tmp_path / "p.tif", pan_a, ORIGIN, 0.5)
    ms = write_geotiff(tmp_path / "m.tif", ms_a, (ORIGIN[0] + 1000, ORIGIN[1]), 2.0)
    expect("do not overlap", pan, ms, tmp_path / "o.tif")


def test_crs_missing_on_one_input(tmp_path, no_work):
    pan_a, ms_a = synthetic_scene((16, 16), 4, 4, seed=3)
    pan = write_geotiff(tmp_path / "p.tif", pan_a, ORIGIN, 0.5, epsg=None)
    ms = write_geotiff(tmp_path / "m.tif", ms_a, ORIGIN, 2.0)
    msg = expect("no coordinate reference system", pan, ms, tmp_path / "o.tif")
    assert msg.startswith("PAN input") and "a_srs" in msg


def test_complex_dtype(pair, tmp_path, no_work):
    pan, ms = pair
    cplx = tmp_path / "c.tif"
    gdal.Translate(str(cplx), str(ms), outputType=gdal.GDT_CFloat32)
    assert "MS input" in expect("complex", pan, cplx, tmp_path / "o.tif")


def test_ms_with_one_band(pair, tmp_path, no_work):
    pan, ms = pair
    one = tmp_path / "one.tif"
    gdal.Translate(str(one), str(ms), bandList=[1])
    assert "swapped" in expect("has 1 band", pan, one, tmp_path / "o.tif")


def test_multiband_pan_band_out_of_range(pair, tmp_path, no_work):
    pan, ms = pair
    pan2 = tmp_path / "pan2.tif"
    gdal.Translate(str(pan2), str(pan), bandList=[1, 1])
    msg = expect("pan_band=3", pan2, ms, tmp_path / "o.tif", pan_band=3)
    assert "between 1 and 2" in msg


def test_multiband_pan_band_in_range_works(pair, tmp_path):
    pan, ms = pair
    pan2 = tmp_path / "pan2.tif"
    gdal.Translate(str(pan2), str(pan), bandList=[1, 1])
    assert run(pan2, ms, tmp_path / "o.tif", pan_band=2, tile=32).tiles == 1


def test_all_nodata(tmp_path, no_work):
    pan_a, ms_a = synthetic_scene((16, 16), 4, 4, seed=4)
    pan = write_geotiff(tmp_path / "p.tif", np.zeros_like(pan_a), ORIGIN, 0.5, nodata=0)
    ms = write_geotiff(tmp_path / "m.tif", ms_a, ORIGIN, 2.0)
    assert "PAN input" in expect("entirely nodata", pan, ms, tmp_path / "o.tif")
    pan = write_geotiff(tmp_path / "p2.tif", pan_a, ORIGIN, 0.5)
    ms = write_geotiff(tmp_path / "m2.tif", np.zeros_like(ms_a), ORIGIN, 2.0, nodata=0)
    assert "MS input" in expect("entirely nodata", pan, ms, tmp_path / "o.tif")


def test_output_folder_missing(pair, tmp_path, no_work):
    msg = expect("does not exist", *pair, tmp_path / "missing" / "o.tif")
    assert msg.startswith("Output")


def test_output_folder_not_writable(pair, tmp_path, no_work):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK) and os.geteuid() == 0:
            target = Path("/proc/psdnet_out.tif")  # root writes anywhere except pseudo file systems
        else:
            target = ro / "o.tif"
        msg = expect("cannot create files|not writable", *pair, target)
        assert msg.startswith("Output")
    finally:
        ro.chmod(0o755)


def test_ratio_not_integer_and_swapped(tmp_path, no_work):
    pan_a, ms_a = synthetic_scene((16, 16), 4, 4, seed=5)
    pan = write_geotiff(tmp_path / "p.tif", pan_a, ORIGIN, 0.5)
    ms = write_geotiff(tmp_path / "m.tif", ms_a, ORIGIN, 1.75)  # ratio 3.5
    expect("not an integer", pan, ms, tmp_path / "o.tif")
    ms_ok = write_geotiff(tmp_path / "m2.tif", ms_a, ORIGIN, 2.0)
    expect("swapped", ms_ok, pan, tmp_path / "o.tif")


def test_no_bundled_model_for_band_count(tmp_path, no_work):
    pytest.importorskip("psdnet_qgis.core.registry")
    pan, ms = make_pair(tmp_path, ms_shape=(12, 12), bands=3, seed=6)
    with pytest.raises(PSDNetInputError, match="3") as ei:
        pansharpen(pan, ms, tmp_path / "o.tif", method="psdnet", model="auto")
    assert not (tmp_path / "o.tif").exists()
    assert "band" in str(ei.value).lower()


def test_bad_options(pair, tmp_path, no_work):
    expect("unknown", *pair, tmp_path / "o.tif", method="magic")
    expect("overlap", *pair, tmp_path / "o.tif", tile=16, overlap=12)
    expect("out_dtype", *pair, tmp_path / "o.tif", out_dtype="complex64")
    with pytest.raises(PSDNetInputError, match="also an input"):
        run(pair[0], pair[1], pair[1])
    assert Path(pair[1]).exists()  # the input is untouched
