"""core.wald.consistent: one back-projection step toward Wald's consistency property."""

from __future__ import annotations

import numpy as np
import pytest

from psdnet_qgis.core.mtf import degrade
from psdnet_qgis.core.resample import upsample_bicubic
from psdnet_qgis.core.wald import consistent

GAINS = [0.29, 0.3, 0.28, 0.33]


def _truth(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (500 + 100 * rng.standard_normal((4, 64, 48))).astype(np.float32)


def test_a_consistent_image_is_left_as_it_is_and_a_level_shift_is_taken_off():
    truth = _truth()
    ms = degrade(truth, GAINS, 4)
    np.testing.assert_array_equal(consistent(truth, ms, 4, GAINS), truth)
    shifted = truth + np.array([30.0, -20.0, 5.0, 80.0], np.float32)[:, None, None]
    np.testing.assert_allclose(consistent(shifted, ms, 4, GAINS), truth, atol=2e-3)


def test_the_step_brings_the_degraded_image_closer_to_the_ms_and_keeps_the_fine_detail():
    truth = _truth(1)
    ms = degrade(truth, GAINS, 4)
    blurry = upsample_bicubic(ms, 4) + 0.5 * (truth - upsample_bicubic(degrade(truth, GAINS, 4), 4))
    out = consistent(blurry, ms, 4, GAINS)
    before = np.abs(degrade(blurry, GAINS, 4) - ms).mean()
    assert np.abs(degrade(out, GAINS, 4) - ms).mean() < 0.7 * before
    assert np.abs(out - truth).mean() < np.abs(blurry - truth).mean()


def test_affine_in_the_units_so_it_may_run_on_normalised_tiles():
    truth = _truth(2)
    ms = degrade(truth, GAINS, 4) + 7.0
    a, b = np.float32(0.01), np.float32(-3.0)
    np.testing.assert_allclose(consistent(a * truth + b, a * ms + b, 4, GAINS), a * consistent(truth, ms, 4, GAINS) + b,
                               atol=1e-4)
    with pytest.raises(ValueError, match="consistent: fused"):
        consistent(truth, ms[:, :-1], 4, GAINS)
