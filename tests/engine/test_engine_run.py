"""engine.run.pansharpen on generated GeoTIFFs: exactness, tiling, georeference, I/O, cleanup."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr

from psdnet_qgis.engine import output
from psdnet_qgis.engine.run import pansharpen
from psdnet_qgis.errors import PSDNetCanceled, PSDNetOutputError
from tests.helpers import Recorder, bicubic_reference, read
from tests.rasters import ORIGIN, make_pair, synthetic_scene, write_geotiff

MARGIN = 8


# ---------------------------------------------------------------- exactness
@pytest.mark.parametrize("tile,overlap,precision", [(12, 4, "fp32"), (64, 8, "fp32"), (16, 3, "auto")])
def test_zero_residual_psdnet_reproduces_bicubic_whatever_tiling(pair, zero_net, tmp_path, tile, overlap,
                                                                  precision):
    pan, ms = pair
    out = tmp_path / f"zero_{tile}.tif"
    rep = pansharpen(pan, ms, out, model=zero_net, tile=tile, overlap=overlap, out_dtype="float32",
                     device="cpu", margin=MARGIN, precision=precision, calibrate=False)
    ref = bicubic_reference(read(ms), 4, MARGIN)
    got = read(out)
    assert got.shape == ref.shape == (4, 96, 112)
    # float32 rounding only (values up to 2047: 1 ulp = 1.2e-4)
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-3)
    assert rep.tiles == len(__import__("psdnet_qgis.core.tiling", fromlist=["x"]).plan_tiles(24, 28, tile, overlap))


@pytest.mark.parametrize("tile,overlap", [(10, 2), (32, 4)])
def test_exp_method_goes_through_same_path(pair, tmp_path, tile, overlap):
    pan, ms = pair
    out = tmp_path / "exp.tif"
    pansharpen(pan, ms, out, method="exp", tile=tile, overlap=overlap, out_dtype="float32")
    np.testing.assert_allclose(read(out), bicubic_reference(read(ms), 4, MARGIN), rtol=0, atol=2e-3)


# Tiled vs whole-image run of a random-weight PSDNet whose heads are scaled x30 so the
# residuals are large (mean |residual| ~3.6 band std, far more than a trained model's).
# Measured (fp32, this raster, tile 12 / overlap 4 / margin 4 vs one 24 x 28 tile), in band
# std units: width 8 seed 3: max 0.093, mean 0.0031; width 28 seeds 3/4: max 0.114/0.080,
# mean 0.0056/0.0026. The difference comes from PSDNet's global pooling (channel attention)
# and its large receptive field; the bounds below are ~2x the measurement.
TILED_VS_WHOLE_MAX = 0.2
TILED_VS_WHOLE_MEAN = 0.01


def test_tiled_random_model_close_to_whole_image(pair, noisy_net, tmp_path):
    net = noisy_net
    pan, ms = pair
    whole, tiled = tmp_path / "whole.tif", tmp_path / "tiled.tif"
    kw = dict(model=net, out_dtype="float32", device="cpu", precision="fp32", calibrate=False)
    r1 = pansharpen(pan, ms, whole, tile=64, overlap=8, **kw)
    r2 = pansharpen(pan, ms, tiled, tile=12, overlap=4, **kw)
    assert r1.tiles == 1 and r2.tiles > 4
    std = np.asarray(r1.normalizer["ms_std"], dtype=np.float32)[:, None, None]
    lms = bicubic_reference(read(ms), 4, MARGIN)
    assert (np.abs(read(whole) - lms) / std).mean() > 1.0  # the model really changes the image
    diff = np.abs(read(whole) - read(tiled)) / std
    assert np.isfinite(diff).all()
    assert diff.max() < TILED_VS_WHOLE_MAX, diff.max()
    assert diff.mean() < TILED_VS_WHOLE_MEAN, diff.mean()


# ---------------------------------------------------------------- output properties
def test_output_grid_dtype_compression_descriptions(tmp_path, zero_net):
    pan, ms = make_pair(tmp_path, ms_shape=(20, 22), seed=2)
    ds = gdal.Open(str(ms), gdal.GA_Update)
    for b, name in enumerate(["blue", "green", "red", "nir"], 1):
        ds.GetRasterBand(b).SetDescription(name)
    ds = None
    out = tmp_path / "o.tif"
    fb = Recorder()
    rep = pansharpen(pan, ms, out, model=zero_net, tile=12, overlap=2, feedback=fb, device="cpu", calibrate=False)
    o = gdal.Open(str(out))
    p = gdal.Open(str(pan))
    assert o.GetGeoTransform() == p.GetGeoTransform()
    assert osr.SpatialReference(o.GetProjection()).IsSame(osr.SpatialReference(p.GetProjection()))
    assert o.GetRasterBand(1).DataType == gdal.GDT_UInt16
    assert [o.GetRasterBand(b).GetDescription() for b in range(1, 5)] == ["blue", "green", "red", "nir"]
    md = o.GetMetadata("IMAGE_STRUCTURE")
    assert md.get("COMPRESSION") == "DEFLATE"
    assert o.GetRasterBand(1).GetBlockSize() == [256, 256]
    arr = o.ReadAsArray()
    assert arr.min() >= 0 and arr.max() <= 65535
    ref = np.clip(np.rint(bicubic_reference(read(ms), 4, MARGIN)), 0, 65535)
    assert np.abs(arr.astype(np.float32) - ref).max() <= 1
    # report + feedback
    for key in ("model", "device", "ratio", "tiles", "seconds", "out", "threads", "batch_size"):
        assert key in rep.to_dict()
    assert rep.ratio == 4 and rep.out == str(out.resolve())
    assert any("Tile plan" in line for line in fb.lines)
    assert fb.percents[-1] == 100.0 and fb.percents == sorted(fb.percents)


def test_nodata_from_either_input_propagates(tmp_path, zero_net):
    pan_a, ms_a = synthetic_scene((16, 20), 4, 4, seed=4)
    pan_a[:, :8, :12] = 0  # PAN nodata block
    ms_a[:, -3:, -4:] = 0  # MS nodata block
    pan = write_geotiff(tmp_path / "p.tif", pan_a, ORIGIN, 0.5, nodata=0)
    ms = write_geotiff(tmp_path / "m.tif", ms_a, ORIGIN, 2.0, nodata=0)
    out = tmp_path / "o.tif"
    pansharpen(pan, ms, out, model=zero_net, tile=8, overlap=2, device="cpu")
    o = gdal.Open(str(out))
    assert o.GetRasterBand(1).GetNoDataValue() == 0
    arr = o.ReadAsArray()
    assert (arr[:, :8, :12] == 0).all()
    assert (arr[:, -12:, -16:] == 0).all()
    valid = np.ones(arr.shape[1:], bool)
    valid[:8, :12] = False
    valid[-12:, -16:] = False
    assert (arr[:, valid] != 0).all()  # valid pixels are never the nodata value


def test_whole_raster_never_in_memory_blocks_written_once(tmp_path, monkeypatch):
    """The writer receives many rectangles, none taller than a tile row nor wider than a tile;
    it writes every block once, whole, at block-aligned offsets."""
    pan, ms = make_pair(tmp_path, ms_shape=(160, 12), seed=5)  # 640 x 48 PAN px
    calls: list[tuple[int, int]] = []
    orig = output.BlockWriter.add

    def spy(self, arr, row0, col0, valid=None):
        calls.append(arr.shape[1:])
        return orig(self, arr, row0, col0, valid)

    monkeypatch.setattr(output.BlockWriter, "add", spy)
    writes: list[tuple[int, int]] = []
    orig_write = output.BlockWriter._write

    def spy_write(self, data, k, j):
        writes.append((k, j))
        orig_write(self, data, k, j)

    monkeypatch.setattr(output.BlockWriter, "_write", spy_write)
    pansharpen(pan, ms, tmp_path / "o.tif", method="exp", tile=16, overlap=4, batch_size=1)
    assert len(calls) >= 10 and max(n for n, _ in calls) <= 16 * 4
    assert sum(n for n, _ in calls) == 640
    assert sorted(writes) == [(k, 0) for k in range(3)]


def test_stats_computed_once_per_raster(pair, tmp_path, monkeypatch):
    from psdnet_qgis.core import radiometry

    n = {"calls": 0}
    orig = radiometry.Normalizer.from_arrays.__func__

    def counting(cls, *a, **k):
        n["calls"] += 1
        return orig(cls, *a, **k)

    monkeypatch.setattr(radiometry.Normalizer, "from_arrays", classmethod(counting))
    rep = pansharpen(*pair, tmp_path / "o.tif", method="exp", tile=8, overlap=2)
    assert rep.tiles > 4 and n["calls"] == 1


# ---------------------------------------------------------------- georeference
def test_aligned_ms_read_by_georeference_not_index(tmp_path):
    """MS larger than PAN and offset by whole MS pixels: direct windowed read at the offset."""
    pan_a, ms_a = synthetic_scene((30, 30), 4, 4, seed=10)
    ms = write_geotiff(tmp_path / "m.tif", ms_a, ORIGIN, 2.0)
    # PAN = MS rows 5..25, cols 3..23 (PAN px 20..100, 12..92)
    pan = write_geotiff(tmp_path / "p.tif", pan_a[:, 20:100, 12:92], (ORIGIN[0] + 6.0, ORIGIN[1] - 10.0), 0.5)
    out = tmp_path / "o.tif"
    rep = pansharpen(pan, ms, out, method="exp", out_dtype="float32", tile=32)
    assert not rep.ms_warped
    assert gdal.Open(str(out)).GetGeoTransform() == gdal.Open(str(pan)).GetGeoTransform()
    ref = bicubic_reference(read(ms)[:, 5:25, 3:23], 4, MARGIN)
    np.testing.assert_allclose(read(out), ref, rtol=0, atol=2e-3)


def test_pan_larger_than_ms_output_is_the_intersection(tmp_path):
    pan_a, ms_a = synthetic_scene((30, 30), 4, 4, seed=11)
    pan = write_geotiff(tmp_path / "p.tif", pan_a, ORIGIN, 0.5)
    ms = write_geotiff(tmp_path / "m.tif", ms_a[:, 2:22, 4:28], (ORIGIN[0] + 8.0, ORIGIN[1] - 4.0), 2.0)
    out = tmp_path / "o.tif"
    rep = pansharpen(pan, ms, out, method="exp", tile=32)
    o = gdal.Open(str(out))
    assert (o.RasterXSize, o.RasterYSize) == (96, 80) and not rep.ms_warped
    assert o.GetGeoTransform()[:4:3] == (ORIGIN[0] + 8.0, ORIGIN[1] - 4.0)


def test_misaligned_ms_read_through_warped_vrt(tmp_path, zero_net):
    """Landsat case: PAN grid starts half a PAN pixel off the MS grid -> warped VRT."""
    pan_a, ms_a = synthetic_scene((20, 20), 4, 4, seed=6)
    pan = write_geotiff(tmp_path / "p.tif", pan_a, (ORIGIN[0] + 0.25, ORIGIN[1] - 0.25), 0.5)
    ms = write_geotiff(tmp_path / "m.tif", ms_a, ORIGIN, 2.0)
    fb = Recorder()
    out = tmp_path / "o.tif"
    rep = pansharpen(pan, ms, out, model=zero_net, tile=12, overlap=2, feedback=fb, device="cpu",
                     out_dtype="float32")
    assert rep.ms_warped
    assert any("warped VRT" in line for line in fb.lines)
    o = gdal.Open(str(out))
    gt = o.GetGeoTransform()
    # output on the PAN grid: origin is a PAN pixel corner, inside the intersection
    assert gt[1] == 0.5 and gt[5] == -0.5
    assert (gt[0] - (ORIGIN[0] + 0.25)) % 0.5 == pytest.approx(0.0)
    assert gt[0] >= ORIGIN[0] and gt[3] <= ORIGIN[1]
    assert o.RasterXSize % 4 == 0 and o.RasterXSize <= 80
    arr = o.ReadAsArray()
    assert np.isfinite(arr).all() and arr.max() > 100


def test_ms_in_other_crs_is_warped(tmp_path, zero_net):
    pan_a, ms_a = synthetic_scene((16, 16), 4, 4, seed=7)
    pan = write_geotiff(tmp_path / "p.tif", pan_a, ORIGIN, 0.5, epsg=32631)
    # same area, MS in UTM 31N on another datum-equivalent CRS code (ETRS89 / UTM 31N)
    ms = write_geotiff(tmp_path / "m.tif", ms_a, ORIGIN, 2.0, epsg=25831)
    fb = Recorder()
    rep = pansharpen(pan, ms, tmp_path / "o.tif", model=zero_net, tile=12, overlap=2, feedback=fb, device="cpu")
    assert rep.ms_warped and any("another CRS" in line for line in fb.lines)


def test_ratio_rounded_within_two_percent(tmp_path, zero_net):
    pan_a, ms_a = synthetic_scene((16, 16), 4, 4, seed=8)
    pan = write_geotiff(tmp_path / "p.tif", pan_a, ORIGIN, 0.5)
    ms = write_geotiff(tmp_path / "m.tif", ms_a, ORIGIN, 2.02)  # 1 % off
    rep = pansharpen(pan, ms, tmp_path / "o.tif", model=zero_net, tile=16, overlap=2, device="cpu")
    assert rep.ratio == 4 and rep.ms_warped


# ---------------------------------------------------------------- cancel / errors / cleanup
def test_cancel_removes_partial_output(tmp_path):
    pan, ms = make_pair(tmp_path, ms_shape=(24, 24), seed=9)
    out = tmp_path / "o.tif"
    with pytest.raises(PSDNetCanceled):
        pansharpen(pan, ms, out, method="exp", tile=8, overlap=2, feedback=Recorder(cancel_after=2))
    assert not any(Path(p).exists() for p in output.output_paths(str(out)))


def test_error_mid_run_removes_partial_output(pair, tmp_path, monkeypatch):
    from psdnet_qgis.engine.classical_predictor import ClassicalPredictor

    calls = {"n": 0}
    orig = ClassicalPredictor.predict

    def boom(self, ms, pan):
        calls["n"] += 1
        if calls["n"] == 3:
            raise MemoryError("simulated")
        return orig(self, ms, pan)

    monkeypatch.setattr(ClassicalPredictor, "predict", boom)
    out = tmp_path / "o.tif"
    (tmp_path / "o.tif.aux.xml").write_text("<x/>")
    with pytest.raises(MemoryError):
        pansharpen(*pair, out, method="exp", tile=8, overlap=2)
    assert not out.exists() and not (tmp_path / "o.tif.aux.xml").exists()


@pytest.mark.parametrize("short_by", [None, 1, 3000])
def test_full_disk_is_a_clear_error_and_cleans_up(tmp_path, short_by):
    """The output cannot grow to its full size: a clear error, no file, no GDAL noise."""
    from tests.full_disk import run_with_file_size_limit

    pan, ms = make_pair(tmp_path, ms_shape=(64, 64))
    out = tmp_path / "o.tif"
    pansharpen(pan, ms, out, method="exp", out_dtype="float32")
    full = out.stat().st_size
    out.unlink()
    # the first strip already fails / the last bytes fail / the last blocks fail
    result, stderr = run_with_file_size_limit(
        10_000 if short_by is None else full - short_by, "engine",
        {"pan": str(pan), "ms": str(ms), "out": str(out), "method": "exp", "out_dtype": "float32"})
    assert result["error"] == "PSDNetOutputError", result
    assert re.search(r"could not be written .*disk is probably full", result["message"]), result
    assert not out.exists() and not list(tmp_path.glob("o.tif*"))
    assert "Exception ignored" not in stderr


def test_a_truncated_output_is_a_write_error(tmp_path):
    """GDAL 3.10 reports a failed write of the last blocks on stderr only: the engine checks the file."""
    pan, ms = make_pair(tmp_path, ms_shape=(64, 64))
    out = tmp_path / "o.tif"
    pansharpen(pan, ms, out, method="exp", out_dtype="float32")
    output.check_complete(str(out))  # a complete file passes
    os.truncate(out, out.stat().st_size - 3000)
    with pytest.raises(PSDNetOutputError,
                       match=r"could not be written \(block .* ends at byte .*disk is probably full"):
        output.check_complete(str(out))


def test_auto_reads_the_model_registry_once(pair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Auto's choice (a ModelInfo) is loaded as found: each metadata file is read once per run."""
    torch = pytest.importorskip("torch")
    from psdnet_qgis.core import registry
    from psdnet_qgis.model.psdnet import PSDNet
    from psdnet_qgis.model.weights import save_model

    models = tmp_path / "models"
    models.mkdir()
    torch.manual_seed(0)
    save_model(PSDNet(4, 4, width=8).zero_residual_(), models / "tiny_r4_4b.pt", {"version": "9.0"})
    monkeypatch.setenv(registry.ENV_MODELS_DIR, str(models))
    reads: list[str] = []
    from_json = registry.ModelInfo.from_json.__func__

    def counted(cls, meta_path):
        reads.append(Path(meta_path).name)
        return from_json(cls, meta_path)

    monkeypatch.setattr(registry.ModelInfo, "from_json", classmethod(counted))
    pan, ms = pair
    rep = pansharpen(str(pan), str(ms), str(tmp_path / "auto.tif"), model="auto", calibrate=False)
    assert (rep.model, rep.model_version) == ("tiny_r4_4b", "9.0")
    assert reads == ["tiny_r4_4b.json"]
