"""engine.assess on generated GeoTIFFs: perfect scores, sampling, no-data trimming, alignment, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from psdnet_qgis.core.resample import upsample_bicubic
from psdnet_qgis.engine.assess.pooling import FULL_KEYS, METRIC_KEYS, REDUCED_KEYS
from psdnet_qgis.engine.assess.quality import assess, valid_rectangle
from psdnet_qgis.engine.assess.report import write_html_report
from psdnet_qgis.errors import PSDNetInputError
from tests.rasters import make_pair, synthetic_scene, write_geotiff

ORIGIN = (500000.0, 5700000.0)
RATIO = 4


def _read(path: Path) -> np.ndarray:
    ds = gdal.Open(str(path))
    return ds.ReadAsArray().astype(np.float32).reshape(ds.RasterCount, ds.RasterYSize, ds.RasterXSize)


@pytest.fixture
def scene(tmp_path: Path) -> dict[str, Path]:
    """Ratio-4 uint16 pair (PAN 160 x 192, MS 40 x 48), the EXP fusion and the true HR field."""
    pan, ms = make_pair(tmp_path, ms_shape=(40, 48), seed=3)
    exp = write_geotiff(tmp_path / "exp.tif", upsample_bicubic(_read(ms), RATIO), ORIGIN, 0.5)
    return {"pan": pan, "ms": ms, "exp": exp}


def test_identical_reference_gives_perfect_reduced_scores(scene):
    res = assess(scene["exp"], scene["pan"], scene["ms"], reference_path=scene["exp"], sensor="WorldView-2")
    m = res.metrics
    assert m["Q2n"] == pytest.approx(1.0, abs=1e-9)
    assert m["Q"] == pytest.approx(1.0, abs=1e-9)
    assert m["SAM"] == pytest.approx(0.0, abs=1e-6)
    assert m["ERGAS"] == pytest.approx(0.0, abs=1e-9)
    assert m["SCC"] == pytest.approx(1.0, abs=1e-9)
    for key in FULL_KEYS:
        assert m[key] is not None and np.isfinite(m[key])
    assert 0.0 < m["QNR"] <= 1.0 and 0.0 < m["HQNR"] <= 1.0
    assert res.mode == "whole" and res.sampled_pixels == res.region_pixels == 160 * 192
    assert res.ratio == RATIO and res.bands == 4 and res.to_dict()["notes"] == []


def test_without_reference_only_full_resolution(scene):
    res = assess(scene["exp"], scene["pan"], scene["ms"])
    assert all(res.metrics[k] is None for k in REDUCED_KEYS)
    assert all(res.metrics[k] is not None for k in FULL_KEYS)
    assert any("no reference" in n for n in res.notes)


def test_degraded_fusion_scores_worse(scene, tmp_path):
    """A blurred, colour-shifted copy must lose against the reference on every metric."""
    ref = _read(scene["exp"])
    bad = ref.copy()
    bad[0] *= 1.15
    bad[:, :, 1:] = 0.5 * (bad[:, :, 1:] + bad[:, :, :-1])
    bad_path = write_geotiff(tmp_path / "bad.tif", bad, ORIGIN, 0.5)
    m = assess(bad_path, scene["pan"], scene["ms"], reference_path=scene["exp"]).metrics
    assert m["Q2n"] < 0.99 and m["Q"] < 0.999 and m["SCC"] < 0.999
    assert m["SAM"] > 0.5 and m["ERGAS"] > 1.0


def test_sampled_mode_is_seeded_and_aligned(tmp_path):
    pan, ms = make_pair(tmp_path, ms_shape=(96, 96), seed=4)
    fused = write_geotiff(tmp_path / "exp.tif", upsample_bicubic(_read(ms), RATIO), ORIGIN, 0.5)
    kw = dict(reference_path=fused, max_pixels=3 * 128 * 128, block=128)
    a = assess(fused, pan, ms, seed=7, **kw)
    b = assess(fused, pan, ms, seed=7, **kw)
    c = assess(fused, pan, ms, seed=8, **kw)
    assert a.mode == "sampled" and a.block == 128 and a.seed == 7
    assert len(a.windows) == 3 and a.sampled_pixels == 3 * 128 * 128
    assert a.region_pixels == 384 * 384
    assert a.windows == b.windows and a.metrics == b.metrics
    assert a.windows != c.windows
    assert all(r % RATIO == 0 and col % RATIO == 0 for r, col, _, _ in a.windows)
    assert a.metrics["ERGAS"] == pytest.approx(0.0, abs=1e-9)


def test_block_never_smaller_than_one_q_block_at_ms_scale(tmp_path):
    pan, ms = make_pair(tmp_path, ms_shape=(80, 80), seed=5)
    fused = write_geotiff(tmp_path / "exp.tif", upsample_bicubic(_read(ms), RATIO), ORIGIN, 0.5)
    res = assess(fused, pan, ms, max_pixels=100_000, block=16)
    assert res.block == 32 * RATIO
    assert res.metrics["QNR"] is not None


def test_zero_fill_border_is_trimmed(tmp_path):
    """SpaceNet-style fill (all bands 0, no declared nodata) is excluded, not scored."""
    pan_a, ms_a = synthetic_scene((48, 48), 4, RATIO, seed=6)
    pan_a[:, : 10 * RATIO] = 0
    ms_a[:, :10] = 0
    pan = write_geotiff(tmp_path / "pan.tif", pan_a, ORIGIN, 0.5)
    ms = write_geotiff(tmp_path / "ms.tif", ms_a, ORIGIN, 2.0)
    fused_a = upsample_bicubic(_read(ms), RATIO)
    fused_a[:, : 10 * RATIO] = 0
    fused = write_geotiff(tmp_path / "exp.tif", fused_a, ORIGIN, 0.5)
    res = assess(fused, pan, ms, reference_path=fused)
    row, col, h, w = res.windows[0]
    assert row >= 10 * RATIO and (h, w) == (192 - row, 192)
    assert res.metrics["Q2n"] == pytest.approx(1.0, abs=1e-9)
    assert any("trimmed" in n for n in res.notes)


def test_fused_on_a_sub_window_is_read_by_georeference(scene, tmp_path):
    """A fused raster covering part of the scene (offset by whole MS pixels) is matched by coordinates."""
    full = _read(scene["exp"])
    sub = full[:, 16:144, 8:168]
    origin = (ORIGIN[0] + 8 * 0.5, ORIGIN[1] - 16 * 0.5)
    sub_path = write_geotiff(tmp_path / "sub.tif", sub, origin, 0.5)
    res = assess(sub_path, scene["pan"], scene["ms"], reference_path=scene["exp"])
    assert res.to_dict()["windows"] == [(16, 8, 128, 160)]
    assert res.metrics["ERGAS"] == pytest.approx(0.0, abs=1e-9)


def test_reflectance_floats_get_dn_scale(tmp_path):
    pan, ms = make_pair(tmp_path, ms_shape=(40, 40), dtype="float32", seed=2)
    for p in (pan, ms):  # to reflectance-like 0..1 floats
        a = _read(p) / 2047.0
        write_geotiff(p, a, ORIGIN, 0.5 if p == pan else 2.0, dtype="float32")
    fused = write_geotiff(tmp_path / "exp.tif", upsample_bicubic(_read(ms), RATIO), ORIGIN, 0.5,
                          dtype="float32")
    res = assess(fused, pan, ms, reference_path=fused)
    assert res.dn_scale == 10000.0
    assert res.metrics["Q2n"] == pytest.approx(1.0, abs=1e-9)


def test_band_count_mismatch_names_the_fused_input(scene, tmp_path):
    three = write_geotiff(tmp_path / "three.tif", _read(scene["exp"])[:3], ORIGIN, 0.5)
    with pytest.raises(PSDNetInputError, match="Fused input .* 3 band"):
        assess(three, scene["pan"], scene["ms"])


def test_fused_at_ms_resolution_is_rejected(scene):
    with pytest.raises(PSDNetInputError, match="Fused input .*pixel size"):
        assess(scene["ms"], scene["pan"], scene["ms"])


def test_reference_band_mismatch_is_rejected(scene, tmp_path):
    two = write_geotiff(tmp_path / "two.tif", _read(scene["exp"])[:2], ORIGIN, 0.5)
    with pytest.raises(PSDNetInputError, match="Reference input"):
        assess(scene["exp"], scene["pan"], scene["ms"], reference_path=two)


def test_valid_rectangle_peels_slanted_fill():
    valid = np.ones((20, 30), bool)
    for i in range(6):
        valid[i, : 30 - 5 * i] = False  # a wedge along the top edge
    r0, r1, c0, c1 = valid_rectangle(valid)
    assert valid[r0:r1, c0:c1].all()
    assert (r1 - r0) * (c1 - c0) >= 14 * 30
    assert valid_rectangle(np.zeros((4, 4), bool)) is None


def test_html_report_and_quicklook(scene, tmp_path):
    png = tmp_path / "ql.png"
    res = assess(scene["exp"], scene["pan"], scene["ms"], reference_path=scene["exp"], quicklook_png=str(png))
    html_path = write_html_report(res, str(tmp_path / "report.html"))
    text = Path(html_path).read_text(encoding="utf-8")
    assert "<table class=\"metrics\">" in text and "ERGAS" in text and "HQNR" in text
    assert "src='ql.png'" in text
    ds = gdal.Open(str(png))
    assert ds.GetDriver().ShortName == "PNG" and ds.RasterCount == 3
    assert ds.RasterXSize > 3 * 160 and ds.RasterYSize >= 160
    assert set(METRIC_KEYS) == set(res.metrics)


def test_whole_mode_equals_core_metrics(scene):
    """One window: the pooled statistics reproduce core.metrics' bundles exactly."""
    from psdnet_qgis.core import metrics

    bad = _read(scene["exp"]) * np.linspace(0.9, 1.1, 192, dtype=np.float32)[None, None, :]
    ref, ms, pan = _read(scene["exp"]), _read(scene["ms"]), _read(scene["pan"])
    bad_path = write_geotiff(scene["exp"].with_name("bad.tif"), bad, ORIGIN, 0.5, dtype="float32")
    got = assess(bad_path, scene["pan"], scene["ms"], reference_path=scene["exp"], sensor="GeoEye-1").metrics
    want = metrics.reduced_resolution_metrics(bad, ref, RATIO)
    want.update(metrics.full_resolution_metrics(bad, ms, pan, RATIO, "GeoEye-1"))
    for key in METRIC_KEYS:
        assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-12), key


def test_block_tiling_reproduces_the_whole_image(tmp_path):
    """Pooled statistics over owned windows: all blocks together give the whole-image values."""
    pan, ms = make_pair(tmp_path, ms_shape=(96, 96), seed=8)
    fused = write_geotiff(tmp_path / "exp.tif", upsample_bicubic(_read(ms), RATIO), ORIGIN, 0.5)
    bad_arr = _read(fused) * np.linspace(0.9, 1.1, 384, dtype=np.float32)[None, :, None]
    bad = write_geotiff(tmp_path / "bad.tif", bad_arr, ORIGIN, 0.5, dtype="float32")
    whole = assess(bad, pan, ms, reference_path=fused)
    tiled = assess(bad, pan, ms, reference_path=fused, sampling="blocks", block=128, max_pixels=10**6)
    assert whole.mode == "whole" and tiled.mode == "sampled" and len(tiled.windows) == 9
    assert tiled.sampled_pixels == whole.sampled_pixels == 384 * 384
    for key in METRIC_KEYS:
        # only the MTF filters' replicated block borders differ
        assert tiled.metrics[key] == pytest.approx(whole.metrics[key], abs=2e-3), key
    assert tiled.metrics["ERGAS"] == pytest.approx(whole.metrics["ERGAS"], rel=1e-9)
    assert tiled.metrics["SAM"] == pytest.approx(whole.metrics["SAM"], rel=1e-9)


def test_fused_off_the_pan_grid_is_warped_onto_it(scene, tmp_path):
    shifted = write_geotiff(tmp_path / "shifted.tif", _read(scene["exp"]), (ORIGIN[0] + 0.25, ORIGIN[1]), 0.5)
    res = assess(shifted, scene["pan"], scene["ms"], reference_path=scene["exp"])
    assert any("fused raster read through a cubic warp" in n for n in res.notes)
    assert 0.9 < res.metrics["Q2n"] < 1.0  # a half-pixel shift costs a little, not everything
    assert res.metrics["QNR"] is not None


def test_report_is_frozen_and_to_dict_is_the_plain_report(scene):
    """``AssessReport.to_dict()``: the 16 keys of the JSON / CSV / HTML writers, lists not tuples."""
    import dataclasses
    import json

    res = assess(scene["exp"], scene["pan"], scene["ms"], reference_path=scene["exp"])
    d = res.to_dict()
    assert list(d) == ["metrics", "ratio", "bands", "sensor", "mode", "sampled_pixels", "region_pixels",
                       "windows", "block", "seed", "max_pixels", "dn_scale", "inputs", "notes", "quicklook",
                       "seconds"]
    assert d["windows"] == [tuple(w) for w in res.windows] and isinstance(d["windows"], list)
    assert d["notes"] == list(res.notes) and d["metrics"] == dict(res.metrics)
    assert d["inputs"] == {"fused": str(scene["exp"]), "pan": res.inputs.pan, "ms": res.inputs.ms,
                           "reference": str(scene["exp"])}
    assert (d["sensor"], d["block"], d["seed"], d["quicklook"]) == ("unknown", None, None, None)
    json.dumps(d)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.mode = "sampled"  # type: ignore[misc]
