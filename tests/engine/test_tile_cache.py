"""GDAL's block cache while the tiles run (engine.tileloop.tile_cache_bytes, engine.gdalerr.block_cache).

The tile loop bounds the cache to the input blocks of one tile row: a bigger cache fills with
blocks of rows already done and raises the peak memory of big rasters; a smaller one reads
(and decompresses) the same blocks again for every tile of the row.
"""

from __future__ import annotations

from osgeo import gdal

from psdnet_qgis.core.tiling import Tile
from psdnet_qgis.engine import tileloop
from psdnet_qgis.engine.gdalerr import block_cache, gdal_errors
from psdnet_qgis.engine.raster import open_inputs
from psdnet_qgis.engine.run import pansharpen
from tests.rasters import ORIGIN, synthetic_scene, write_geotiff


def _pair(tmp_path, ms_shape, options=()):
    pan, ms = synthetic_scene(ms_shape, 4, 4, seed=1)
    paths = []
    for name, arr, px in (("pan", pan, 0.5), ("ms", ms, 2.0)):
        path = write_geotiff(tmp_path / f"{name}.tif", arr, ORIGIN, px)
        if options:  # rewrite tiled
            tiled = tmp_path / f"{name}_tiled.tif"
            gdal.Translate(str(tiled), str(path), creationOptions=list(options))
            path = tiled
        paths.append(path)
    return paths


def test_striped_input_needs_whole_width_strips(tmp_path):
    pan, ms = _pair(tmp_path, (64, 200))  # plain GeoTIFF: strips as wide as the raster
    with gdal_errors():
        inputs = open_inputs(str(pan), str(ms), 1)
        bh_pan = inputs.pan_ds.GetRasterBand(1).GetBlockSize()[1]
        bh_ms = inputs.ms_ds.GetRasterBand(1).GetBlockSize()[1]
        need = inputs.tile_row_cache_bytes(20, 30)
        inputs.close()
    pan_bytes = (20 * 4 + 2 * bh_pan) * 800 * 2
    ms_bytes = 4 * (20 + 2 * bh_ms) * 200 * 2
    assert need == pan_bytes + ms_bytes


def test_tiled_input_needs_a_tile_and_a_block_each_side(tmp_path):
    pan, ms = _pair(tmp_path, (64, 200), ("TILED=YES", "BLOCKXSIZE=32", "BLOCKYSIZE=32"))
    with gdal_errors():
        inputs = open_inputs(str(pan), str(ms), 1)
        need = inputs.tile_row_cache_bytes(20, 30)
        inputs.close()
    pan_bytes = (80 + 64) * (120 + 64) * 2
    ms_bytes = 4 * 64 * (30 + 64) * 2  # 20 + 64 rows, but the raster has 64
    assert need == pan_bytes + ms_bytes


def test_tile_cache_bounds(tmp_path):
    pan, ms = _pair(tmp_path, (16, 16))
    with gdal_errors():
        inputs = open_inputs(str(pan), str(ms), 1)
        small = tileloop.tile_cache_bytes(inputs, [Tile(0, 0, 8, 8, 0, 0, 0, 0)], 2)
        tall = inputs.tile_row_cache_bytes(8000, 8)
        inputs.close()
    assert small == tileloop.CACHE_MIN
    assert tall == 64 * 64 * 2 + 4 * 16 * 16 * 2  # taller than the raster: the whole raster, no more


def test_block_cache_is_restored(tmp_path):
    before = gdal.GetCacheMax()
    with block_cache(5 << 20):
        assert gdal.GetCacheMax() == 5 << 20
    assert gdal.GetCacheMax() == before
    pan, ms = _pair(tmp_path, (24, 24))
    pansharpen(str(pan), str(ms), str(tmp_path / "out.tif"), method="mtf_glp_fs")
    assert gdal.GetCacheMax() == before  # the host application's (QGIS's) setting
