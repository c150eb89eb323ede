"""Every bad input is a PSDNetInputError raised before any work, naming the input and a fix."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr

from psdnet_qgis.engine import output
from psdnet_qgis.engine.run import pansharpen
from psdnet_qgis.errors import PSDNetInputError
from tests.helpers import Recorder
from tests.rasters import ORIGIN, make_pair, synthetic_scene, write_geotiff


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


def tiled_pair(folder: Path, ms_side: int, seed: int) -> tuple[Path, Path]:
    """A generated scene: its PAN as a tiled, deflated GeoTIFF (blocks of 32 px, to damage one) and its MS."""
    pan_a, ms_a = synthetic_scene((ms_side, ms_side), 4, 4, seed=seed)
    pan = write_geotiff(folder / "p.tif", pan_a, ORIGIN, 0.5)
    ms = write_geotiff(folder / "m.tif", ms_a, ORIGIN, 2.0)
    tiled = folder / "p_tiled.tif"
    gdal.Translate(str(tiled), str(pan), creationOptions=["TILED=YES", "BLOCKXSIZE=32", "BLOCKYSIZE=32",
                                                          "COMPRESS=DEFLATE"])
    return tiled, ms


def test_truncated_file(tmp_path, no_work):
    trunc, ms = tiled_pair(tmp_path, 32, seed=1)
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
    pan, ms = make_pair(tmp_path, ms_shape=(12, 12), bands=3, seed=6)
    with pytest.raises(PSDNetInputError, match="no bundled model for 3 MS bands at ratio 4") as ei:
        pansharpen(pan, ms, tmp_path / "o.tif", method="psdnet", model="auto")
    assert not (tmp_path / "o.tif").exists()
    assert "band" in str(ei.value).lower()
    msg = str(ei.value)
    assert f"MS input '{ms}'" in msg  # the input
    assert "--model-bands" in msg and "classical method" in msg  # and the fixes


def test_bad_options(pair, tmp_path, no_work):
    expect("unknown", *pair, tmp_path / "o.tif", method="magic")
    expect("overlap", *pair, tmp_path / "o.tif", tile=16, overlap=12)
    expect("out_dtype", *pair, tmp_path / "o.tif", out_dtype="complex64")
    with pytest.raises(PSDNetInputError, match="also an input"):
        run(pair[0], pair[1], pair[1])
    assert Path(pair[1]).exists()  # the input is untouched


# ---------------------------------------------------------------- MS in another CRS (issue 21)
def _to_4326(src: Path, dst: Path, square_ground: bool = False, alg: str = "cubic") -> Path:
    """``gdal.Warp`` of a UTM 31N raster to EPSG:4326: GDAL's default resolution (square in
    degrees, so about 1.7 x 2.8 m on the ground at 51 deg N for a 2 m MS), or, with
    ``square_ground``, degree steps giving the source pixel size along both axes at the centre."""
    opts: dict = dict(dstSRS="EPSG:4326", resampleAlg=alg)
    if square_ground:
        ds = gdal.Open(str(src))
        gt, w, h = ds.GetGeoTransform(), ds.RasterXSize, ds.RasterYSize
        utm, geo = osr.SpatialReference(), osr.SpatialReference()
        utm.ImportFromEPSG(32631)
        geo.ImportFromEPSG(4326)
        for srs in (utm, geo):
            srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        ct = osr.CoordinateTransformation(utm, geo)
        x, y = gt[0] + gt[1] * w / 2, gt[3] + gt[5] * h / 2
        c, ex, ey = (np.array(ct.TransformPoint(*p)[:2]) for p in ((x, y), (x + gt[1], y), (x, y + gt[5])))
        opts.update(xRes=float(np.hypot(*(ex - c))), yRes=float(np.hypot(*(ey - c))))
    gdal.Warp(str(dst), str(src), **opts)
    return dst


def _crs_scene(tmp_path: Path, x0: float, square_ground: bool) -> tuple[Path, Path, Path]:
    """PAN (UTM 31N, 160 x 128 px of 0.5 m) 4 MS px inside its ratio-4 MS on every side, the
    MS in UTM and the MS warped to EPSG:4326: the 4326 footprint's edges stay off the output."""
    pan, ms = make_pair(tmp_path, ms_shape=(40, 48), seed=1, origin=(x0, ORIGIN[1]))
    pan_in = tmp_path / "pan_in.tif"
    gdal.Translate(str(pan_in), str(pan), srcWin=[16, 16, 160, 128])
    return pan_in, ms, _to_4326(ms, tmp_path / "ms_4326.tif", square_ground)


def _rel_rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)) / np.mean(a))


@pytest.mark.parametrize("method", ["mtf_glp_fs", "psdnet"])
@pytest.mark.parametrize("x0, square_ground", [(ORIGIN[0], False), (300000.0, True)],
                         ids=["gdalwarp-default-central-meridian", "square-ground-2deg-off-meridian"])
def test_ms_in_4326_gives_the_native_crs_result(tmp_path, zero_net, method, x0, square_ground):
    """An MS reprojected to EPSG:4326 over a UTM PAN: ratio from ground pixel sizes, read through
    the warped VRT onto the PAN's CRS at 2 m, and fused like the native-CRS MS.

    Measured (GDAL 3.6, seed 1, interior 8 PAN px in from the edges): relative RMSE to the
    native run 0.024 (gdalwarp's default 4326 grid, cubic, 1.73 x 2.77 m ground pixels) and
    0.017 (4326 grid with 2 x 2 m ground pixels, 200 km off the central meridian), the same
    for both methods; seeds 2, 3 give 0.011 - 0.027; nearest-neighbour 4326 copies 0.044 - 0.055.
    For scale: the native MS moved by 1 PAN px (0.5 m) gives 0.036. Bound: 0.03, and the
    agreement is best at zero shift (not one PAN px off).
    """
    pan, ms_utm, ms_4326 = _crs_scene(tmp_path, x0, square_ground)
    kw: dict = dict(method=method, out_dtype="float32")
    if method == "psdnet":
        kw.update(model=zero_net, device="cpu", calibrate=False)
    native, other = tmp_path / "native.tif", tmp_path / "other.tif"
    rep0 = pansharpen(pan, ms_utm, native, **kw)
    fb = Recorder()
    rep = pansharpen(pan, ms_4326, other, feedback=fb, **kw)
    assert not rep0.ms_warped and rep.ms_warped and rep.ratio == rep0.ratio == 4
    line = next(x for x in fb.lines if "warped VRT" in x)
    assert "MS in EPSG:4326, PAN in EPSG:32631 (another CRS): warped onto the PAN's CRS at 2 m, ratio 4 " \
           "from ground pixel sizes MS 2" in line and "PAN 0.5 m" in line
    a_ds, b_ds = gdal.Open(str(native)), gdal.Open(str(other))
    assert b_ds.GetGeoTransform() == a_ds.GetGeoTransform()
    assert (b_ds.RasterXSize, b_ds.RasterYSize) == (a_ds.RasterXSize, a_ds.RasterYSize) == (160, 128)
    a, b = (d.ReadAsArray().astype(np.float64) for d in (a_ds, b_ds))
    m = 8
    inner = (slice(None), slice(m, -m), slice(m, -m))
    err = _rel_rmse(a[inner], b[inner])
    assert err < 0.03
    assert np.corrcoef(a[inner].ravel(), b[inner].ravel())[0, 1] > 0.99
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):  # placed where the native MS is, not a PAN px off
        moved = (slice(None), slice(m + dy, a.shape[1] - m + dy), slice(m + dx, a.shape[2] - m + dx))
        assert _rel_rmse(a[moved], b[inner]) > err


def test_ms_in_4326_with_non_integer_ground_ratio_is_refused(tmp_path, no_work):
    """Ground pixel 3.5 x the PAN's: refused, the message giving both ground sizes in metres."""
    pan_a, ms_a = synthetic_scene((16, 16), 4, 4, seed=5)
    pan = write_geotiff(tmp_path / "p.tif", pan_a, ORIGIN, 0.5)
    ms = _to_4326(write_geotiff(tmp_path / "m.tif", ms_a, ORIGIN, 1.75), tmp_path / "m4326.tif")
    msg = expect("not an integer", pan, ms, tmp_path / "o.tif")
    assert msg.startswith(f"MS input '{ms}' is in EPSG:4326, PAN input '{pan}' in EPSG:32631")
    assert "MS ground pixel in the PAN's CRS is 1.75" in msg and " m (it spans " in msg
    assert "the PAN's is 0.5 m: a ratio of 3.5" in msg and "gdalwarp -t_srs EPSG:32631 -tr 2 2" in msg
    # the same MS with square 1.75 m ground pixels: refused the same way
    sq = _to_4326(tmp_path / "m.tif", tmp_path / "m4326sq.tif", square_ground=True)
    assert "a ratio of 3.50" in expect("not an integer", pan, sq, tmp_path / "o.tif")


def test_pan_and_ms_swapped_across_crs(tmp_path, no_work):
    """A 0.5 m 4-band raster in EPSG:4326 given as MS over a 2 m UTM 'PAN': looks swapped."""
    pan_a, ms_a = synthetic_scene((16, 16), 4, 4, seed=5)
    pan4 = write_geotiff(tmp_path / "p4.tif", np.repeat(pan_a, 4, axis=0), ORIGIN, 0.5)
    ms = write_geotiff(tmp_path / "m.tif", ms_a, ORIGIN, 2.0)
    msg = expect("swapped", ms, _to_4326(pan4, tmp_path / "p4_4326.tif", square_ground=True), tmp_path / "o.tif")
    assert "smaller ground pixels in the PAN's CRS (0.5" in msg and "(EPSG:32631, 2 m)" in msg


def test_a_damaged_block_inside_the_raster_is_named_when_read(tmp_path):
    """A block in the middle of the PAN is damaged (the first and last rows read fine, so opening
    passes): the tile, calibration or statistics read that meets it names both inputs and the fix."""
    from psdnet_qgis.engine.raster import open_inputs

    tiled, ms = tiled_pair(tmp_path, 24, seed=3)
    ds = gdal.Open(str(tiled))
    offset = int(ds.GetRasterBand(1).GetMetadataItem("BLOCK_OFFSET_1_1", "TIFF"))
    ds = None
    data = bytearray(tiled.read_bytes())
    data[offset:offset + 64] = b"\xff" * 64  # the deflate stream of block (1, 1): PAN px 32-63
    tiled.write_bytes(bytes(data))
    inputs = open_inputs(str(tiled), str(ms))
    ms_w, ms_v, pan_w, pan_v = inputs.read_tile(0, 0, 4, 4, 2)  # PAN px -8..23: block (0, 0) only
    assert ms_w.shape == (4, 8, 8) and pan_w.shape == (1, 32, 32) and pan_v[8:, 8:].all()
    with pytest.raises(PSDNetInputError) as err:
        inputs.read_tile(10, 10, 4, 4, 2)
    msg = str(err.value)
    assert str(tiled) in msg and str(ms) in msg and "read failed at MS row 10, col 10" in msg
    assert msg.endswith("the file is damaged: copy it again.")
