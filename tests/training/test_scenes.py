"""Scene reading for training goes through the engine's georeferencing (``open_inputs``);
what the engine does not know (stacked files, band selection, scene no-data) is added on top."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from psdnet_qgis.errors import PSDNetInputError
from psdnet_qgis.training.scenes import SceneSpec, load_scene
from tests.rasters import synthetic_scene, write_geotiff

ORIGIN = (500000.0, 5700000.0)


def _spec(ms: tuple[str, ...], bands: tuple[int, ...], nodata: float | None = None,
          ratio: int = 4) -> SceneSpec:
    return SceneSpec("t", "scene", "pan.tif", ms, bands, tuple(f"b{b}" for b in bands),
                     "WorldView-2", ratio, nodata, "test", "tests/rasters.py")


def _write(root: Path, ms_origin: tuple[float, float] = ORIGIN) -> tuple[np.ndarray, np.ndarray]:
    folder = root / "scene"
    folder.mkdir(parents=True, exist_ok=True)
    pan, ms = synthetic_scene((24, 20), 4, 4, seed=3)
    pan, ms = np.rint(pan), np.rint(ms)
    ms[2, 5, 7] = 0.0  # a scene-level no-data pixel in band 3
    pan[0, 9, 11] = 0.0
    write_geotiff(folder / "pan.tif", pan, ORIGIN, 0.5)
    write_geotiff(folder / "ms.tif", ms, ms_origin, 2.0)
    for b in range(4):
        write_geotiff(folder / f"ms_b{b + 1}.tif", ms[b:b + 1], ms_origin, 2.0)
    return pan, ms


def test_aligned_scene_selects_bands_and_applies_scene_nodata(tmp_path):
    pan, ms = _write(tmp_path)
    sc = load_scene(_spec(("ms.tif",), (3, 1, 2), nodata=0.0), tmp_path)
    assert not sc.meta["ms_resampled"]
    assert sc.ms.shape == (3, 24, 20) and sc.pan.shape == (1, 96, 80)
    valid = np.ones((24, 20), bool)
    valid[5, 7] = False
    np.testing.assert_array_equal(sc.ms_valid, valid)
    np.testing.assert_array_equal(sc.ms[:, valid], ms[[2, 0, 1]][:, valid].astype(np.float32))
    assert (sc.ms[:, ~valid] == 0).all()
    assert not sc.pan_valid[9, 11] and sc.pan_valid.sum() == 96 * 80 - 1
    np.testing.assert_array_equal(sc.pan, pan.astype(np.float32))


def test_without_scene_nodata_zero_is_data(tmp_path):
    _write(tmp_path)
    sc = load_scene(_spec(("ms.tif",), (3, 1, 2)), tmp_path)
    assert sc.ms_valid.all() and sc.pan_valid.all()


def test_single_band_files_are_stacked_in_order(tmp_path):
    _, ms = _write(tmp_path)
    files = tuple(f"ms_b{b}.tif" for b in (1, 2, 3, 4))
    stacked = load_scene(_spec(files, (4, 3, 2, 1)), tmp_path)
    np.testing.assert_array_equal(stacked.ms, ms[::-1].astype(np.float32))


def test_offset_ms_is_read_through_the_engine_warp(tmp_path):
    from psdnet_qgis.engine.gdalerr import gdal_errors
    from psdnet_qgis.engine.raster import open_inputs

    # Half a PAN pixel off the PAN grid: the engine warps the MS onto the working grid.
    _write(tmp_path, ms_origin=(ORIGIN[0] + 0.25, ORIGIN[1] - 0.25))
    sc = load_scene(_spec(("ms.tif",), (1, 2, 3, 4)), tmp_path)
    assert sc.meta["ms_resampled"] and "offset" in sc.meta["warp_reason"]
    with gdal_errors():
        inputs = open_inputs(str(tmp_path / "scene" / "pan.tif"), str(tmp_path / "scene" / "ms.tif"))
        want, valid = inputs.read_ms(0, 0, inputs.ms_height, inputs.ms_width)
        assert sc.ms.shape == want.shape and sc.pan.shape == (1, inputs.height, inputs.width)
        inputs.close()
    np.testing.assert_array_equal(sc.ms_valid, valid)
    np.testing.assert_array_equal(sc.ms[:, valid], want[:, valid])


def test_bad_scene_specs_raise(tmp_path):
    _write(tmp_path)
    with pytest.raises(PSDNetInputError, match="data_dir"):
        load_scene(_spec(("missing.tif",), (1, 2, 3)), tmp_path)
    with pytest.raises(PSDNetInputError, match="bands"):
        load_scene(_spec(("ms.tif",), (1, 5)), tmp_path)
    with pytest.raises(PSDNetInputError, match="ratio"):
        load_scene(_spec(("ms.tif",), (1, 2, 3), ratio=2), tmp_path)
