"""The tile loop's block accumulator and block writer (engine.tileloop, engine.output.BlockWriter).

The engine sums weighted tiles into one tile of open columns plus the seam rows shared with
the next tile row, and writes each GeoTIFF block once it is complete. These tests hold it to
a whole-raster accumulator (what the row-strip accumulator it replaced computed, in the same
summation order): bit-identical outputs, each block written once and whole, and no buffer
as wide as the raster taller than the seam.
"""

from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal

from psdnet_qgis.core.radiometry import Normalizer
from psdnet_qgis.core.tiling import plan_tiles, tile_weights
from psdnet_qgis.engine import output, tileloop
from psdnet_qgis.engine.run import pansharpen
from tests.helpers import read
from tests.rasters import ORIGIN, synthetic_scene, write_geotiff

torch = pytest.importorskip("torch")


class NoiseNet(torch.nn.Module):
    """A "network" whose output is fresh noise on every call: every tile differs from its
    neighbours in the overlaps, so the blend is visible in every output pixel there."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.gen = torch.Generator().manual_seed(7)

    def forward(self, ms: torch.Tensor, pan: torch.Tensor) -> torch.Tensor:
        b, c = ms.shape[:2]
        noise = torch.randn((b, c) + tuple(pan.shape[-2:]), generator=self.gen)
        return 0.5 + 0.3 * noise * self.scale


def _run_recording(monkeypatch, pan, ms, out, tile, overlap, out_dtype, margin=4):
    """pansharpen with NoiseNet; returns the report and every tile's denormalised core (in order)."""
    cores: list[np.ndarray] = []
    orig = Normalizer.denorm_ms

    def spy(self, v):
        res = orig(self, v)
        cores.append(res.copy())
        return res

    monkeypatch.setattr(Normalizer, "denorm_ms", spy)
    rep = pansharpen(pan, ms, out, model=NoiseNet(), tile=tile, overlap=overlap, margin=margin,
                     out_dtype=out_dtype, device="cpu", precision="fp32", calibrate=False, batch_size=3)
    monkeypatch.setattr(Normalizer, "denorm_ms", orig)
    return rep, cores


def _whole_raster_sum(shape, tiles, cores, r):
    """The reference: every weighted tile summed into one whole-raster float32 array, row-major."""
    acc = np.zeros(shape, np.float32)
    for t, core in zip(tiles, cores, strict=True):
        acc[:, t.row * r:(t.row + t.height) * r, t.col * r:(t.col + t.width) * r] += core * tile_weights(t, r)
    return acc


@pytest.mark.parametrize("ms_shape,tile,overlap,out_dtype", [
    ((150, 170), 40, 6, "float32"),   # 600 x 680 PAN px: blocks cut by tile rows and columns
    ((150, 170), 40, 6, None),        # uint16: rounding and clipping of the same sums
    ((70, 131), 24, 12, None),        # overlap = tile // 2, clamped last tiles, one tall block row
    ((33, 20), 64, 8, "float32"),     # one tile
])
def test_block_accumulator_bit_identical_to_whole_raster_sum(tmp_path, monkeypatch, ms_shape, tile, overlap,
                                                              out_dtype):
    pan_a, ms_a = synthetic_scene(ms_shape, 4, 4, seed=11)
    pan = write_geotiff(tmp_path / "p.tif", pan_a, ORIGIN, 0.5)
    ms = write_geotiff(tmp_path / "m.tif", ms_a, ORIGIN, 2.0)
    out = tmp_path / "o.tif"
    rep, cores = _run_recording(monkeypatch, pan, ms, out, tile, overlap, out_dtype)
    tiles = sorted(plan_tiles(*ms_shape, tile, overlap), key=lambda t: (t.row, t.col))
    assert rep.tiles == len(tiles) == len(cores)
    ref = _whole_raster_sum((4, ms_shape[0] * 4, ms_shape[1] * 4), tiles, cores, 4)
    got = gdal.Open(str(out)).ReadAsArray()
    if out_dtype is None:
        ref = np.clip(np.rint(ref), 0, 65535).astype(np.uint16)
        assert got.dtype == np.uint16
    assert np.array_equal(got, ref)


def test_nodata_masked_per_block_as_per_row(tmp_path, monkeypatch):
    """Validity is read per finished rectangle (``RasterInputs.valid_window``): same mask as before."""
    pan_a, ms_a = synthetic_scene((90, 100), 4, 4, seed=4)
    pan_a[:, 100:180, 30:290] = 0  # PAN nodata across a tile row boundary
    ms_a[:, -9:, -13:] = 0          # MS nodata in the last block row
    pan = write_geotiff(tmp_path / "p.tif", pan_a, ORIGIN, 0.5, nodata=0)
    ms = write_geotiff(tmp_path / "m.tif", ms_a, ORIGIN, 2.0, nodata=0)
    out = tmp_path / "o.tif"
    rep, cores = _run_recording(monkeypatch, pan, ms, out, 32, 6, None)
    tiles = sorted(plan_tiles(90, 100, 32, 6), key=lambda t: (t.row, t.col))
    ref = np.clip(np.rint(_whole_raster_sum((4, 360, 400), tiles, cores, 4)), 1, 65535).astype(np.uint16)
    valid = np.ones((360, 400), bool)
    valid[100:180, 30:290] = False
    valid[-36:, -52:] = False
    ref[:, ~valid] = 0
    assert rep.nodata == 0
    assert np.array_equal(gdal.Open(str(out)).ReadAsArray(), ref)


def test_block_writer_writes_each_block_once_from_any_rectangles(tmp_path):
    H, W, C = 700, 530, 2
    ds = gdal.GetDriverByName("GTiff").Create(str(tmp_path / "w.tif"), W, H, C, gdal.GDT_Float32,
                                              ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "INTERLEAVE=PIXEL"])
    w = output.BlockWriter(ds, gdal.GDT_Float32, None)
    full = np.random.default_rng(0).random((C, H, W)).astype(np.float32)
    # row bands of odd heights, each cut into odd column chunks left to right (the tile loop's order)
    y = 0
    for n in (100, 300, 57, 243):
        x = 0
        for m in (7, 250, 260, 13):
            w.add(full[:, y:y + n, x:x + m].copy(), y, x)
            x += m
        y += n
    assert w.pending_bytes == 0
    assert w.blocks_written == 3 * 3
    w.close()
    ds = w = None
    np.testing.assert_array_equal(read(tmp_path / "w.tif"), full)


def test_block_writer_refuses_to_close_with_incomplete_blocks(tmp_path):
    ds = gdal.GetDriverByName("GTiff").Create(str(tmp_path / "w.tif"), 300, 300, 1, gdal.GDT_Byte,
                                              ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256"])
    w = output.BlockWriter(ds, gdal.GDT_Byte, None)
    w.add(np.ones((1, 256, 300), np.float32), 0, 0)  # block row 0: both blocks whole
    w.add(np.ones((1, 30, 300), np.float32), 256, 0)  # block row 1 (44 rows): 30 of them
    assert w.blocks_written == 2 and w.pending_bytes == 44 * 300
    with pytest.raises(ValueError, match="incomplete"):
        w.close()


def test_memory_held_does_not_grow_with_the_raster_width(tmp_path, monkeypatch):
    """Block-aligned whole-block writes, each block once; float32 sums held: one tile window plus
    seam rows; the writer's staging at most the block row cut by a tile row boundary."""
    pan_a, ms_a = synthetic_scene((100, 200), 4, 4, seed=5)  # 400 x 800 PAN px
    pan = write_geotiff(tmp_path / "p.tif", pan_a, ORIGIN, 0.5)
    ms = write_geotiff(tmp_path / "m.tif", ms_a, ORIGIN, 2.0)
    writes: list[tuple[int, int, tuple[int, ...]]] = []
    pending: list[int] = []
    orig_write, orig_add = output.BlockWriter._write, output.BlockWriter.add

    def spy_write(self, data, k, j):
        writes.append((k, j, data.shape))
        orig_write(self, data, k, j)

    def spy_add(self, phys, row0, col0, valid=None):
        assert phys.shape[2] <= 16 * 4  # one tile's columns at most, never a whole row
        orig_add(self, phys, row0, col0, valid)
        pending.append(self.pending_bytes)

    bands: list[tileloop._TileRowBand] = []
    orig_init = tileloop._TileRowBand.__init__

    def spy_init(self, *a):
        orig_init(self, *a)
        bands.append(self)

    monkeypatch.setattr(output.BlockWriter, "_write", spy_write)
    monkeypatch.setattr(output.BlockWriter, "add", spy_add)
    monkeypatch.setattr(tileloop._TileRowBand, "__init__", spy_init)
    pansharpen(pan, ms, tmp_path / "o.tif", method="exp", tile=16, overlap=4, batch_size=1)
    # 400 x 800 PAN px in 256 px blocks: 2 x 4
    assert sorted((k, j) for k, j, _ in writes) == [(k, j) for k in range(2) for j in range(4)]
    assert all(shape[1:] == (min(256, 400 - 256 * k), min(256, 800 - 256 * j)) for k, j, shape in writes)
    # uint16 staging: only blocks cut by the finished region's edge: one block row, plus the
    # blocks of the next one started while a tile row crosses into it (at most a tile + a block)
    assert 0 < max(pending) <= 4 * 256 * (800 + 64 + 256) * 2
    band = bands[0]
    assert band.win.shape == (4, 64, 64)
    assert band.seam.shape[1] <= 4 * 4 and band.seam_next.shape[1] <= 4 * 4
