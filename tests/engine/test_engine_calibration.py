"""Per-scene calibration through engine.run.pansharpen (the default for PSDNet)."""

from __future__ import annotations

import numpy as np
import pytest

from psdnet_qgis.engine.calibration import CANDIDATES
from psdnet_qgis.engine.run import pansharpen
from tests.helpers import Recorder, bicubic_reference, classical_mix, read
from tests.rasters import make_pair

torch = pytest.importorskip("torch")
MARGIN = 8


@pytest.fixture
def scene(tmp_path):
    """A 64 x 64 MS px scene: large enough for a reduced-resolution sample (16 x 16 px)."""
    return make_pair(tmp_path, ms_shape=(64, 64), bands=4, ratio=4, seed=7)


def test_zero_detail_network_gives_the_calibrated_classical_result(scene, zero_net, tmp_path):
    """Zero network detail: the output is lms + sum_k w_k (classical_k - lms), w the reported weights,
    after the consistency step with the reported gains."""
    pan, ms = scene
    kw = dict(out_dtype="float32", tile=64, margin=MARGIN, sensor="unknown")
    rep = pansharpen(pan, ms, tmp_path / "cal.tif", model=zero_net, device="cpu", precision="fp32", **kw)
    cal = rep.calibration
    assert cal is not None and cal["candidates"][1:] == list(CANDIDATES)
    w = np.asarray(cal["weights"])
    assert np.allclose(w.sum(axis=1), 1.0, atol=1e-3) and (w >= 0).all()
    assert (w[:, 1:].sum(axis=1) > 0.5).all()  # the PAN's detail is real: the classical detail wins over none
    assert cal["consistency"] == [0.3] * 4  # sensor unknown: the default MS gain
    expect = classical_mix(pan, ms, tmp_path, w, bicubic_reference(read(ms), 4, MARGIN),
                           consistency=cal["consistency"], **kw)
    # the report rounds the weights to 1e-4; values up to 2047. Within 5 MS px of the raster's edge the
    # consistency step reads the engine's padding, not the helper's, so the edge is left out.
    e = 5 * 4
    np.testing.assert_allclose(read(tmp_path / "cal.tif")[:, e:-e, e:-e], expect[:, e:-e, e:-e], rtol=0,
                               atol=0.05 * 2047 * 1e-3 + 2e-3)


def test_no_calibrate_is_the_network_as_it_comes(scene, zero_net, tmp_path):
    pan, ms = scene
    rep = pansharpen(pan, ms, tmp_path / "o.tif", model=zero_net, device="cpu", out_dtype="float32",
                     margin=MARGIN, calibrate=False)
    assert rep.calibration is None
    np.testing.assert_allclose(read(tmp_path / "o.tif"), bicubic_reference(read(ms), 4, MARGIN), rtol=0, atol=2e-3)


def test_tiles_and_whole_image_share_one_calibration(scene, noisy_net, tmp_path):
    pan, ms = scene
    net = noisy_net
    kw = dict(model=net, out_dtype="float32", device="cpu", precision="fp32")
    fb = Recorder()
    whole = pansharpen(pan, ms, tmp_path / "whole.tif", tile=64, overlap=8, feedback=fb, **kw)
    tiled = pansharpen(pan, ms, tmp_path / "tiled.tif", tile=20, overlap=4, **kw)
    assert whole.tiles == 1 and tiled.tiles > 4
    assert whole.calibration["weights"] == tiled.calibration["weights"]
    assert whole.calibration["reduced_resolution"] == tiled.calibration["reduced_resolution"]
    std = np.asarray(whole.normalizer["ms_std"], dtype=np.float32)[:, None, None]
    diff = np.abs(read(tmp_path / "whole.tif") - read(tmp_path / "tiled.tif")) / std
    assert diff.max() < 0.2 and diff.mean() < 0.01, (diff.max(), diff.mean())
    # the log gives the weights per band and the reduced-resolution scores of every candidate
    text = "\n".join(fb.lines)
    assert "Calibration on the scene degraded by the ratio" in text
    assert "reduced resolution" in text and "calibrated ERGAS" in text


def test_calibration_beats_a_bad_network_at_reduced_resolution(scene, noisy_net, tmp_path):
    """A network that injects noise gets weight ~0 and the calibrated result scores better."""
    pan, ms = scene
    rep = pansharpen(pan, ms, tmp_path / "o.tif", model=noisy_net, device="cpu", out_dtype="float32")
    rr = rep.calibration["reduced_resolution"]
    name = rep.calibration["candidates"][0]
    assert rr["calibrated"]["ERGAS"] < rr[name]["ERGAS"]
    assert max(row[0] for row in rep.calibration["weights"]) < 0.5


def test_small_scene_runs_uncalibrated_with_a_warning(tmp_path, zero_net):
    pan, ms = make_pair(tmp_path, ms_shape=(12, 12), bands=4, ratio=4, seed=2)
    fb = Recorder()
    rep = pansharpen(pan, ms, tmp_path / "o.tif", model=zero_net, device="cpu", out_dtype="float32",
                     margin=MARGIN, feedback=fb)
    assert rep.calibration is None
    assert any(line.startswith("W Calibration skipped") for line in fb.lines)
    np.testing.assert_allclose(read(tmp_path / "o.tif"), bicubic_reference(read(ms), 4, MARGIN), rtol=0, atol=2e-3)


def test_classical_methods_are_never_calibrated(scene, tmp_path):
    pan, ms = scene
    a = pansharpen(pan, ms, tmp_path / "a.tif", method="gsa")
    b = pansharpen(pan, ms, tmp_path / "b.tif", method="gsa", calibrate=False)
    assert a.calibration is None and b.calibration is None
    assert np.array_equal(read(tmp_path / "a.tif"), read(tmp_path / "b.tif"))


@pytest.mark.slow
def test_calibrated_tiles_get_the_classical_context_and_the_network_its_own(scene, zero_net, tmp_path):
    """MTF-GLP-FS needs about 20 PAN px of context: the tiles are read with CLASSICAL_MARGIN, the
    network is given its own margin cut out of them (so its output is unchanged)."""
    from psdnet_qgis.core.tiling import CLASSICAL_MARGIN, PSDNET_MARGIN

    pan, ms = scene
    kw = dict(model=zero_net, device="cpu", out_dtype="float32", tile=20, overlap=4)
    cal = pansharpen(pan, ms, tmp_path / "cal.tif", **kw)
    raw = pansharpen(pan, ms, tmp_path / "raw.tif", calibrate=False, **kw)
    assert raw.margin == PSDNET_MARGIN and cal.margin == CLASSICAL_MARGIN == cal.calibration["margin"]
    # the zero-detail network is the upsampled MS whatever the margin; the calibrated run adds
    # w (FS - lms): where w is 0 for a band it equals the uncalibrated run
    np.testing.assert_allclose(read(tmp_path / "raw.tif"), bicubic_reference(read(ms), 4, PSDNET_MARGIN),
                               rtol=0, atol=2e-3)


@pytest.mark.slow
def test_sample_windows_cover_a_large_scene_within_the_budget(tmp_path):
    """Windows spread edge to edge over the scene; their pixels stay within BUDGET of the run."""
    from psdnet_qgis.engine import calibration as ecal
    from psdnet_qgis.engine.raster import open_inputs

    pan, ms = make_pair(tmp_path, ms_shape=(600, 800), bands=4, ratio=4, seed=1)
    inputs = open_inputs(str(pan), str(ms))
    try:
        origins, hh, ww, m = ecal.sample_windows(inputs)
        rows, cols = sorted({o[0] for o in origins}), sorted({o[1] for o in origins})
        assert rows[0] == 0 and rows[-1] == inputs.ms_height - hh
        assert cols[0] == 0 and cols[-1] == inputs.ms_width - ww
        assert len(origins) * (hh + 2 * m) * (ww + 2 * m) <= ecal.BUDGET * inputs.width * inputs.height
    finally:
        inputs.close()


def test_the_consistency_step_makes_the_fused_image_give_back_its_ms(scene, noisy_net, tmp_path, monkeypatch):
    """After the weights, each tile is moved toward Wald's consistency property: the output degraded
    with the MS bands' MTF is closer to the MS than without the step (logged, reported); off, the
    run is what it was before the step existed."""
    from psdnet_qgis.core.mtf import degrade
    from psdnet_qgis.engine import calibration

    pan, ms = scene
    kw = dict(model=noisy_net, out_dtype="float32", device="cpu", precision="fp32", tile=20, overlap=4,
              sensor="WV3")
    fb = Recorder()
    on = pansharpen(pan, ms, tmp_path / "on.tif", feedback=fb, **kw)
    monkeypatch.setattr(calibration, "CONSISTENT", False)
    off = pansharpen(pan, ms, tmp_path / "off.tif", **kw)
    assert on.calibration["consistency"] == [0.355, 0.36, 0.365, 0.335] and off.calibration["consistency"] is None
    assert any(line.startswith("Consistency: each fused tile") for line in fb.lines)
    gains = on.calibration["consistency"]
    e = 5  # MS px at the raster's edge, where the step reads the engine's padding
    err = {k: np.abs(degrade(read(tmp_path / f"{k}.tif"), gains, 4) - read(ms))[:, e:-e, e:-e].mean()
           for k in ("on", "off")}
    assert err["on"] < 0.7 * err["off"], err


def test_the_classical_candidates_share_one_read_of_their_statistics_windows(scene, noisy_net, tmp_path,
                                                                             monkeypatch):
    """A raster whose global sample is decimated: the candidates' statistics come from full-resolution
    windows (engine.classical_predictor.statistics_windows), read once for all of them."""
    from psdnet_qgis.engine import calibration, classical_predictor, raster

    pan, ms = scene
    sample = raster.RasterInputs.read_sample
    monkeypatch.setattr(raster.RasterInputs, "read_sample", lambda self, max_side=1024: sample(self, 24))
    monkeypatch.setattr(classical_predictor, "FIT_WINDOW", 8)
    monkeypatch.setattr(classical_predictor, "FIT_WINDOWS", 4)
    reads: list = []
    read_windows = calibration.statistics_windows
    monkeypatch.setattr(calibration, "statistics_windows",
                        lambda *a, **k: reads.append(read_windows(*a, **k)) or reads[-1])
    given: list = []
    build = classical_predictor.ClassicalPredictor.from_inputs.__func__
    monkeypatch.setattr(classical_predictor.ClassicalPredictor, "from_inputs",
                        classmethod(lambda cls, *a, **k: given.append(k.get("windows")) or build(cls, *a, **k)))
    rep = pansharpen(pan, ms, tmp_path / "w.tif", model=noisy_net, device="cpu", precision="fp32",
                     out_dtype="float32")
    assert rep.calibration is not None and len(reads) == 1 and given
    assert all(w is reads[0] for w in given)
    assert reads[0][3] == f"{len(reads[0][0])} full-resolution windows of 8 MS px"
