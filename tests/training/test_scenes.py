"""Scene reading for training goes through the engine's georeferencing (``open_inputs``);
what the engine does not know (stacked files, band selection, scene no-data) is added on top."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from psdnet_qgis.errors import PSDNetInputError
from psdnet_qgis.training.scenes import (
    LANDSAT7_GROUP,
    LANDSAT7_PAIRS,
    MODEL_SCENES,
    SCENES,
    VHR_LOSO,
    SceneSpec,
    centre_aligned_bounds,
    coregistration,
    default_data_dir,
    load_scene,
    scenes_for,
)
from tests.rasters import GDAL_TYPES, synthetic_scene, write_geotiff, write_mat

ORIGIN = (500000.0, 5700000.0)
_BGR3 = ("blue", "green", "red")


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
    with pytest.raises(PSDNetInputError, match=r"data_dir: .*missing\.tif does not exist; pass --data"):
        load_scene(_spec(("missing.tif",), (1, 2, 3)), tmp_path)
    with pytest.raises(PSDNetInputError, match=r"t: bands \(1, 5\) requested but the MS has 4 bands"):
        load_scene(_spec(("ms.tif",), (1, 5)), tmp_path)
    with pytest.raises(PSDNetInputError, match="t: the files give ratio 4, the scene says 2; fix SceneSpec.ratio"):
        load_scene(_spec(("ms.tif",), (1, 2, 3), ratio=2), tmp_path)


# --- scenes without georeferencing: MS pixel centres on PAN pixels (grid="centres")

def test_centre_aligned_bounds_put_ms_centres_on_pan_pixel_centres():
    # The Pleiades Giza crops: geotransforms hold the crop offsets in full-scene pixels.
    pan = centre_aligned_bounds((20500.0, 1.0, 0.0, 5000.0, 0.0, 1.0), (800, 801), 4, is_ms=False)
    ms = centre_aligned_bounds((5125.0, 1.0, 0.0, 1250.0, 0.0, 1.0), (200, 200), 4, is_ms=True)
    assert pan == (20500.0, -5000.0, 21300.0, -5801.0)
    assert ms == (20498.5, -4998.5, 21298.5, -5798.5)
    # MS pixel (i, j) centre = PAN pixel (4i, 4j) centre, in x = column, y = -row
    for i, j in ((0, 0), (7, 3), (199, 199)):
        assert (ms[0] + 4 * j + 2, ms[1] - 4 * i - 2) == (pan[0] + 4 * j + 0.5, pan[1] - 4 * i - 0.5)
    with pytest.raises(PSDNetInputError, match="centres"):
        centre_aligned_bounds((500000.0, 0.5, 0.0, 5700000.0, 0.0, -0.5), (8, 8), 4, is_ms=False)


def _write_offsets(path: Path, data: np.ndarray, x0: float, y0: float) -> None:
    """A float32 GeoTIFF without CRS whose geotransform is only a crop offset (Pleiades style)."""
    from osgeo import gdal

    c, h, w = data.shape
    ds = gdal.GetDriverByName("GTiff").Create(str(path), w, h, c, GDAL_TYPES["float32"])
    ds.SetGeoTransform((x0, 1.0, 0.0, y0, 0.0, 1.0))
    for b in range(c):
        ds.GetRasterBand(b + 1).WriteArray(data[b].astype(np.float32))
    ds = None


def test_centre_convention_scene_is_read_with_ms_centres_on_pan_pixels(tmp_path):
    # Ratio 3: MS pixel k covers PAN [3k - 1, 3k + 2), a whole-pixel offset, so the engine reads
    # the MS directly and the result can be checked exactly against the PAN block means.
    h, w = 10, 12
    pan, ms = synthetic_scene((h + 1, w + 1), 3, 3, seed=5)
    pan_crop = pan[:, 1:, 1:]  # PAN crop pixel p = field pixel p + 1: MS k centred on PAN 3k
    folder = tmp_path / "scene"
    folder.mkdir()
    _write_offsets(folder / "pan.tif", pan_crop, 3 * 40.0, 3 * 17.0)
    _write_offsets(folder / "ms.tif", ms, 40.0, 17.0)
    spec = SceneSpec("c", "scene", "pan.tif", ("ms.tif",), (3, 2, 1), ("blue", "green", "red"),
                     "unknown", 3, None, "test", "tests/rasters.py", grid="centres")
    sc = load_scene(spec, tmp_path)
    assert not sc.meta["ms_resampled"] and sc.meta["crs"] == "" and sc.meta["grid"] == "centres"
    # MS pixel 0 reaches one PAN pixel before the crop: the working grid starts at MS pixel 1
    assert sc.ms.shape == (3, h, w) and sc.pan.shape == (1, 3 * h, 3 * w)
    np.testing.assert_array_equal(sc.ms, ms[[2, 1, 0], 1:, 1:].astype(np.float32))
    np.testing.assert_array_equal(sc.pan, pan_crop[:, 2:, 2:].astype(np.float32))
    block = sc.pan[0].reshape(h, 3, w, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(sc.ms.mean(axis=0), block, rtol=1e-5)
    # read by corners (the files' offsets taken as a georeference) it would be a PAN pixel off
    assert coregistration(sc) > 0.9999 > coregistration(sc, (1, 1))


def test_unknown_grid_is_refused(tmp_path):
    _write(tmp_path)
    spec = SceneSpec("t", "scene", "pan.tif", ("ms.tif",), (1, 2, 3), _BGR3, "unknown", 4, None,
                     "test", "tests/rasters.py", grid="corners")
    with pytest.raises(PSDNetInputError, match="grid"):
        load_scene(spec, tmp_path)


# --- the catalogue

def test_bundled_models_keep_their_scene_lists():
    """The bundled weights were trained on exactly these scenes (their JSON says so)."""
    import json

    from psdnet_qgis.core.registry import models_dir

    for model, roles in MODEL_SCENES.items():
        for stem in (f"psdnet_{model}", f"psdnet_{model}_fast"):
            meta = json.loads((models_dir() / f"{stem}.json").read_text())
            assert list(roles["train"]) == meta["training_scenes"], stem
            assert list(roles["val"]) == meta["validation_scenes"], stem


def test_vhr_loso_lists_every_vhr_4_band_ratio_4_scene():
    vhr = {n for n, s in SCENES.items() if s.ratio == 4 and len(s.bands) == 4 and s.grid != "mat4"}  # mat4: Landsat 7
    assert set(VHR_LOSO) == vhr and len(VHR_LOSO) == len(vhr) == 6
    assert "pleiades_gizeh" in VHR_LOSO
    assert [s.name for s in scenes_for("vhr4", "val", "pleiades_gizeh")] == ["pleiades_gizeh"]
    assert [s.name for s in scenes_for("landsat3", "val", "sattest_l8")] == ["sattest_l8"]
    with pytest.raises(PSDNetInputError, match="4 bands at ratio 2"):
        scenes_for("landsat3", "val", "sattest_l8_bgrn")


# --- the shared data (skipped where the data folder is missing)

def _real(name: str):
    spec = SCENES[name]
    if not (default_data_dir() / spec.folder).is_dir():
        pytest.skip(f"shared data not available: {default_data_dir() / spec.folder}")
    return load_scene(spec)


def test_pleiades_gizeh_centres_aligned_ratio_4():
    from psdnet_qgis.core.bands import check_order

    sc = _real("pleiades_gizeh")
    assert sc.spec.ratio == 4 and sc.spec.sensor == "Pleiades" and sc.spec.bands == (3, 2, 1, 4)
    # PAN 800 x 801 and MS 200 x 200 overlap on 199 x 199 MS pixels once the MS sits 1.5 PAN
    # px up-left of the PAN; half a PAN pixel off the corners, so warped
    assert sc.ms.shape == (4, 199, 199) and sc.pan.shape == (1, 796, 796)
    assert sc.meta["ms_resampled"] and "(0.50, 0.50)" in sc.meta["warp_reason"]
    assert sc.ms_valid.all() and sc.pan_valid.all()
    corr = coregistration(sc)
    assert corr > 0.985  # measured 0.988; corners aligned 0.976
    assert corr > coregistration(sc, (2, 2)) and corr > coregistration(sc, (-2, -2))
    assert check_order(sc.ms, list(sc.spec.band_names)).verdict == "confirmed"


@pytest.mark.parametrize("name, bands, floor", [("sattest_l8", 3, 0.94), ("sattest_l8_bgrn", 4, 0.92)])
def test_sattest_landsat8_aligned_by_georeference(name, bands, floor):
    sc = _real(name)
    assert sc.spec.ratio == 2 and sc.spec.sensor == "Landsat-8/9 OLI"
    # PAN 1254 x 1207 starts half a PAN pixel up-left of the 627 x 603 MS: warped, one MS px less
    assert sc.ms.shape == (bands, 602, 626) and sc.pan.shape == (1, 1204, 1252)
    assert sc.meta["ms_resampled"] and "UTM zone 16N" in sc.meta["crs"]
    assert sc.ms_valid.all() and sc.pan_valid.all()
    assert coregistration(sc) > floor  # measured 0.955 (B2-B4), 0.937 (B2-B5)


def test_landsat7_matlab_pair_is_made_ratio_4(tmp_path):
    """A FuseBox-style ratio-2 MATLAB pair becomes a ratio-4 scene: the MS degraded by 2."""
    from psdnet_qgis.core.mtf import degrade

    pan, ms = synthetic_scene((40, 40), 6, 2, seed=5, max_value=255.0)  # (1, 80, 80), (6, 40, 40)
    folder = tmp_path / SCENES[f"{LANDSAT7_GROUP}#01"].folder
    folder.mkdir()
    write_mat(folder / "1_pan.mat", "cropped_gray", np.rint(pan[0]).astype(np.uint8))
    write_mat(folder / "1_ms.mat", "cropped_im", np.rint(ms).astype(np.uint8).transpose(1, 2, 0))
    sc = load_scene(SCENES[f"{LANDSAT7_GROUP}#01"], tmp_path)
    assert sc.spec.ratio == 4 and sc.ms.shape == (4, 20, 20) and sc.pan.shape == (1, 80, 80)
    assert not sc.meta["ms_resampled"] and sc.ms_valid.all()
    want = degrade(np.rint(ms).astype(np.uint8)[[2, 1, 0, 3]].astype(np.float32), 0.3, 2)
    np.testing.assert_allclose(sc.ms, want, rtol=1e-6)
    np.testing.assert_array_equal(sc.pan[0], np.rint(pan[0]).astype(np.uint8))
    names = [s.name for s in scenes_for("vhr4", "train", f"osman_vhr,{LANDSAT7_GROUP}")]
    assert names[0] == "osman_vhr" and len(names) == 1 + LANDSAT7_PAIRS
