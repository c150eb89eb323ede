"""Classical methods in the tiled engine: global statistics, no seams.

gsa and mtf_glp_hpm estimate image statistics (GSA's regression weights and injection
gains, HPM's PAN matching). Estimated per tile, a tiled run (16 MS px tiles, overlap 4)
differed from the one-tile run by max 0.16 (gsa) / 0.11 (hpm) band std on the scene below,
and by 1.6 (gsa) / 9e3 (hpm, near its zero crossings) band std on tests.rasters.make_pair's
96 x 104 MS px scene, so the engine fits them once per raster and applies them per tile.
Measured here, tiled vs one tile (same coefficients), both statistics paths, all four
methods: max 6.4e-7 band std, mean 8.5e-9 — float32 rounding of values ~2000 (1 ulp =
1.2e-4 = 4e-7 std), like exp/brovey which never had statistics. The bound is ~3x that.
Window statistics (decimated-sample path) vs whole-image statistics: <= 4.3 % here
(16 windows of 8 MS px), <= 0.9 % (alpha 3.4 %) on a 300 x 300 MS px scene with the
default 8 x 8 windows of 32 MS px.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from psdnet_qgis.core import classical
from psdnet_qgis.engine import classical_predictor, raster
from psdnet_qgis.engine.classical_predictor import ClassicalPredictor
from psdnet_qgis.engine.run import pansharpen
from tests.helpers import read
from tests.rasters import synthetic_scene, write_geotiff

TILED_VS_WHOLE = 2e-6  # band std
MS_SHAPE = (40, 44)


@pytest.fixture
def scene(tmp_path: Path) -> tuple[Path, Path]:
    """Ratio-4, 4-band pair whose bands share most of their structure (like real bands,
    so HPM's matched PAN stays positive)."""
    pan_c, ms_c = synthetic_scene(MS_SHAPE, 1, 4, seed=11)
    pan_v, ms_v = synthetic_scene(MS_SHAPE, 4, 4, seed=12)
    ms = 0.8 * ms_c + 0.2 * ms_v  # PAN = band mean, MS = block mean: still a consistent pair
    pan = 0.8 * pan_c + 0.2 * pan_v
    origin = (500000.0, 5700000.0)
    return (write_geotiff(tmp_path / "pan.tif", pan, origin, 0.5),
            write_geotiff(tmp_path / "ms.tif", ms, origin, 2.0))


@pytest.fixture
def record(monkeypatch) -> list:
    """Record the predictors the engine builds (to read their global statistics)."""
    built: list = []
    orig = ClassicalPredictor.from_inputs.__func__

    def spy(cls, *a, **k):
        p = orig(cls, *a, **k)
        built.append(p)
        return p

    monkeypatch.setattr(ClassicalPredictor, "from_inputs", classmethod(spy))
    return built


def _decimate_sample(monkeypatch) -> None:
    """Force the decimated-sample path (real rasters): statistics from full-res windows."""
    orig = raster.RasterInputs.read_sample
    monkeypatch.setattr(raster.RasterInputs, "read_sample", lambda self, max_side=1024: orig(self, 24))
    monkeypatch.setattr(classical_predictor, "FIT_WINDOW", 8)
    monkeypatch.setattr(classical_predictor, "FIT_WINDOWS", 4)


def _run_pair(scene, tmp_path, method):
    pan, ms = scene
    kw = dict(method=method, out_dtype="float32")
    r1 = pansharpen(pan, ms, tmp_path / "whole.tif", tile=max(MS_SHAPE), overlap=0, **kw)
    r2 = pansharpen(pan, ms, tmp_path / "tiled.tif", tile=16, overlap=4, **kw)
    assert r1.tiles == 1 and r2.tiles >= 9
    std = np.asarray(r1.normalizer["ms_std"], dtype=np.float32)[:, None, None]
    return read(tmp_path / "whole.tif"), read(tmp_path / "tiled.tif"), std


@pytest.mark.parametrize("sample", ["full", "decimated"])
@pytest.mark.parametrize("method", sorted(classical.METHODS))
def test_tiled_equals_whole_image(scene, tmp_path, monkeypatch, record, method, sample):
    if sample == "decimated":
        _decimate_sample(monkeypatch)
    whole, tiled, std = _run_pair(scene, tmp_path, method)
    if method in classical.FITTED:
        assert len(record) == 2 and record[0].stats is not None
        assert record[0].stats.to_dict() == record[1].stats.to_dict()  # same raster, same fit
    lms = classical.exp(read(scene[1]), 4)
    if method != "exp":
        assert (np.abs(whole - lms) / std).mean() > 0.02  # the method really adds detail
    diff = np.abs(whole - tiled) / std
    assert np.isfinite(diff).all()
    assert diff.max() < TILED_VS_WHOLE, diff.max()


@pytest.mark.parametrize("method", sorted(classical.FITTED))
def test_small_raster_equals_one_call_method(scene, tmp_path, record, method):
    """Whole raster in the sample: the engine's statistics are the one-call method's."""
    pan, ms = scene
    pansharpen(pan, ms, tmp_path / "o.tif", method=method, tile=16, overlap=4, out_dtype="float32")
    m, p = read(ms), read(pan)
    expect = classical.fit(method, m, p, 4)
    got = record[0].stats
    for k, v in expect.to_dict().items():
        np.testing.assert_allclose(got.to_dict()[k], v, rtol=1e-9, err_msg=k)
    # interior (away from the reflection-padded border) equals the one-call method
    ref = classical.METHODS[method](m, p, 4)
    out = read(tmp_path / "o.tif")
    b = 8 * 4
    np.testing.assert_allclose(out[:, b:-b, b:-b], ref[:, b:-b, b:-b], rtol=1e-5, atol=1e-2)


@pytest.mark.parametrize("method", sorted(classical.FITTED))
def test_window_statistics_close_to_whole_image(scene, tmp_path, monkeypatch, record, method):
    """Full-resolution windows (decimated sample) estimate the whole-image statistics."""
    _decimate_sample(monkeypatch)
    pan, ms = scene
    pansharpen(pan, ms, tmp_path / "o.tif", method=method, tile=16, overlap=4, out_dtype="float32")
    whole = classical.fit(method, read(ms), read(pan), 4).to_dict()
    got = record[0].stats.to_dict()
    if method == "bdsd_pc":
        # Its per-band regression on correlated bands is ill-conditioned: single coefficients
        # trade off against each other, the fused result they give is what must agree.
        m, p = read(ms), read(pan)
        ref = classical.apply(method, m, p, 4, classical.fit(method, m, p, 4))
        est = classical.apply(method, m, p, 4, record[0].stats)
        assert np.sqrt(np.mean((est - ref) ** 2)) < 0.1 * np.std(ref - classical.exp(m, 4))
        return
    keys = {"gsa": ("gains", "intensity_std", "pan_std"), "mtf_glp_hpm": ("band_mean", "scale"),
            "mtf_glp_fs": ("gains",)}[method]
    for k in keys:
        np.testing.assert_allclose(got[k], whole[k], rtol=0.1, err_msg=k)


def test_per_tile_statistics_did_show_seams(scene, tmp_path, monkeypatch):
    """The problem being fixed: per-tile statistics (no global fit) disagree across tiles."""
    monkeypatch.setattr(ClassicalPredictor, "from_inputs",
                        classmethod(lambda cls, method, normalizer, inputs, *a, **k:
                                    cls(method, normalizer, inputs.ratio)))
    whole, tiled, std = _run_pair(scene, tmp_path, "gsa")
    assert (np.abs(whole - tiled) / std).max() > 0.05


def test_nodata_pixels_are_left_out_of_the_statistics(tmp_path, record):
    pan_c, ms_c = synthetic_scene(MS_SHAPE, 4, 4, seed=3)
    ms_c[:, :6, :10] = 0  # a nodata corner
    origin = (500000.0, 5700000.0)
    pan = write_geotiff(tmp_path / "pan.tif", pan_c, origin, 0.5)
    ms = write_geotiff(tmp_path / "ms.tif", ms_c, origin, 2.0, nodata=0)
    pansharpen(pan, ms, tmp_path / "o.tif", method="gsa", tile=16, overlap=4, out_dtype="float32")
    valid = np.ones(MS_SHAPE, bool)
    valid[:6, :10] = False
    m = read(ms)
    m[:, ~valid] = record[0].normalizer.ms_mean.astype(np.float32)[:, None]
    expect = classical.gsa_stats(m, read(pan), 4, valid=valid).to_dict()
    for k, v in expect.items():
        np.testing.assert_allclose(record[0].stats.to_dict()[k], v, rtol=1e-6, err_msg=k)
