"""Sensor-variety augmentation (training/augment.py) and the scene-list override of make train."""

from __future__ import annotations

import numpy as np
import pytest

from psdnet_qgis.core.resample import upsample_bicubic
from psdnet_qgis.errors import PSDNetInputError
from psdnet_qgis.training.augment import SensorVariety, degrade_window, gain_ranges
from psdnet_qgis.training.data import PatchSampler, crop_pair, make_wald_pair
from psdnet_qgis.training.scenes import scenes_for

R = 4
GAINS = (0.35, 0.30, 0.28, 0.25)
PAN_GAIN = 0.15


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    ms = rng.gamma(3.0, 100.0, (4, 120, 120)).astype(np.float32)
    pan = upsample_bicubic(ms, R).mean(0, keepdims=True) + rng.normal(0, 20, (1, 480, 480))
    return make_wald_pair(ms, pan.astype(np.float32), R, GAINS, PAN_GAIN, name="synthetic")


def test_window_degraded_afresh_equals_the_wald_pair(pair):
    """Same gains: the patch degraded from its windows is the pair's patch (same phase)."""
    m = SensorVariety().margin(R)
    assert m % R == 0 and m >= 20
    y = x = 40
    p = 32
    gt_w = pair.gt[:, y - m:y + p + m, x - m:x + p + m]
    pan_w = pair.pan_full[:, (y - m) * R:(y + p + m) * R, (x - m) * R:(x + p + m) * R]
    ms, pan, gt = degrade_window(gt_w, pan_w, GAINS, PAN_GAIN, R, m)
    np.testing.assert_allclose(ms, pair.ms[:, y // R:(y + p) // R, x // R:(x + p) // R], atol=1e-5)
    np.testing.assert_allclose(pan, pair.pan[:, y:y + p, x:x + p], atol=1e-5)
    np.testing.assert_array_equal(gt, pair.gt[:, y:y + p, x:x + p])


def test_off_draws_exactly_what_the_plain_sampler_draws(pair):
    plain = PatchSampler([pair], 32, seed=3)
    off = PatchSampler([pair], 32, seed=3, variety=SensorVariety(p=0.0))
    for a, b in zip(plain.sample(4), off.sample(4), strict=True):
        assert np.array_equal(a.numpy(), b.numpy())


def test_redrawn_patches_are_seeded_wald_shaped_and_different(pair):
    a = PatchSampler([pair], 32, seed=5, variety=SensorVariety(p=1.0)).sample(3)
    b = PatchSampler([pair], 32, seed=5, variety=SensorVariety(p=1.0)).sample(3)
    plain = PatchSampler([pair], 32, seed=5).sample(3)
    assert [tuple(t.shape) for t in a] == [(3, 4, 8, 8), (3, 1, 32, 32), (3, 4, 32, 32)]
    for u, v in zip(a, b, strict=True):
        assert np.array_equal(u.numpy(), v.numpy())
        assert np.isfinite(u.numpy()).all()
    assert not np.array_equal(a[0].numpy(), plain[0].numpy())


def test_gains_come_from_the_published_ranges(pair):
    """Without mixing and radiometry, a redrawn patch is a Wald patch at gains of the VHR range."""
    v = SensorVariety(p=1.0, pan_mix=0.0, gain=0.0, offset=0.0)
    m = v.margin(R)
    y = x = 40
    gt_w = pair.gt[:, y - m:y + 32 + m, x - m:x + 32 + m]
    pan_w = pair.pan_full[:, (y - m) * R:(y + 32 + m) * R, (x - m) * R:(x + 32 + m) * R]
    rng = np.random.default_rng(11)
    (lo, hi), (plo, phi) = gain_ranges(R)
    expect = np.random.default_rng(11)
    g_ms = tuple(float(g) for g in expect.uniform(lo, hi, 4))
    g_pan = float(expect.uniform(plo, phi))
    got = v.redraw(gt_w, pan_w, R, rng)
    want = degrade_window(gt_w, pan_w, g_ms, g_pan, R, m)
    for u, w in zip(got, want, strict=True):
        np.testing.assert_allclose(u, w, atol=1e-6)
    assert (lo, hi) == (0.22, 0.365) and (plo, phi) == (0.11, 0.17)
    assert gain_ranges(2) == ((0.53, 0.55), (0.15, 0.15))


def test_pan_mix_keeps_the_pan_mean_and_spread(pair):
    v = SensorVariety(pan_mix=1.0)
    pan = pair.pan[:, :32, :32]
    gt = pair.gt[:, :32, :32]
    mixed = v._mix_pan(pan, gt, np.random.default_rng(2))
    assert mixed.shape == pan.shape
    assert abs(float(mixed.mean()) - float(pan.mean())) < 1e-5
    assert float(mixed.std()) <= float(pan.std()) + 1e-5  # a mix of two equal-spread images


def test_variety_needs_the_full_resolution_pan(pair):
    bare = crop_pair(pair, (0, 0, 64, 64))
    bare.pan_full = None
    with pytest.raises(PSDNetInputError, match="full-resolution PAN"):
        PatchSampler([bare], 32, variety=SensorVariety())


def test_scene_lists_override_the_models_and_are_checked():
    assert [s.name for s in scenes_for("vhr4", "train", "osman_vhr, shanghai_wv3")] == ["osman_vhr", "shanghai_wv3"]
    assert [s.name for s in scenes_for("vhr4", "val")] == ["rotterdam2_wv2"]
    with pytest.raises(PSDNetInputError, match="unknown scene 'nowhere'"):
        scenes_for("vhr4", "val", "nowhere")
    with pytest.raises(PSDNetInputError, match="needs 4 bands at ratio 4"):
        scenes_for("vhr4", "train", "madrid_l8")


def test_variety_parts_of_the_training_config():
    from psdnet_qgis.training.config import TrainConfig

    assert TrainConfig().variety() is None
    full = TrainConfig(sensor_variety=0.5).variety()
    assert full == SensorVariety(p=0.5)
    mtf_only = TrainConfig(sensor_variety=0.5, variety_parts="mtf").variety()
    assert (mtf_only.pan_mix, mtf_only.gain, mtf_only.offset) == (0.0, 0.0, 0.0)
    with pytest.raises(PSDNetInputError, match="--variety-parts"):
        TrainConfig(sensor_variety=0.5, variety_parts="pan").variety()
