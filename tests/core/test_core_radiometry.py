"""zscore4 normalisation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from psdnet_qgis.core.radiometry import Normalizer
from psdnet_qgis.errors import PSDNetInputError


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    ms = (rng.normal(300, 50, (4, 16, 16)) * np.array([1, 2, 3, 4])[:, None, None]).astype(np.float32)
    pan = rng.normal(800, 120, (64, 64)).astype(np.float32)
    return ms, pan


def test_formula_and_roundtrip() -> None:
    ms, pan = _data()
    n = Normalizer.from_arrays(ms, pan)
    np.testing.assert_allclose(n.ms_mean, ms.reshape(4, -1).mean(1), rtol=1e-6)
    np.testing.assert_allclose(n.ms_std, ms.reshape(4, -1).std(1), rtol=1e-5)
    v = n.norm_ms(ms)
    assert v.dtype == np.float32
    np.testing.assert_allclose(v.reshape(4, -1).mean(1), 0.5, atol=1e-5)
    np.testing.assert_allclose(v.reshape(4, -1).std(1), 0.25, atol=1e-5)
    np.testing.assert_allclose(n.denorm_ms(v), ms, rtol=1e-5)
    p = n.norm_pan(pan[None])
    assert p.shape == (1, 64, 64)
    assert p.mean() == pytest.approx(0.5, abs=1e-5)
    np.testing.assert_allclose(n.denorm_pan(n.norm_pan(pan)), pan, rtol=1e-5)


def test_dict_roundtrip_through_json() -> None:
    ms, pan = _data()
    n = Normalizer.from_arrays(ms, pan)
    d = json.loads(json.dumps(n.to_dict()))
    assert d["method"] == "zscore4"
    m = Normalizer.from_dict(d)
    np.testing.assert_array_equal(m.norm_ms(ms), n.norm_ms(ms))
    np.testing.assert_array_equal(m.norm_pan(pan), n.norm_pan(pan))


def test_valid_masks_and_nan() -> None:
    ms, pan = _data()
    ms[:, :4] = 0.0  # nodata rows
    pan[:16] = np.nan
    valid = np.ones((16, 16), bool)
    valid[:4] = False
    n = Normalizer.from_arrays(ms, pan, ms_valid=valid)
    np.testing.assert_allclose(n.ms_mean, ms[:, 4:].reshape(4, -1).mean(1), rtol=1e-6)
    assert n.pan_mean == pytest.approx(float(np.nanmean(pan)), rel=1e-6)
    pv = np.ones((64, 64), bool)
    pv[16:32] = False
    m = Normalizer.from_arrays(ms, pan, ms_valid=valid, pan_valid=pv)
    assert m.pan_mean == pytest.approx(float(pan[32:].mean()), rel=1e-6)


def test_constant_band_no_division_by_zero() -> None:
    ms = np.full((2, 8, 8), 5.0, np.float32)
    pan = np.zeros((32, 32), np.float32)
    n = Normalizer.from_arrays(ms, pan)
    assert np.all(np.isfinite(n.norm_ms(ms))) and np.allclose(n.norm_ms(ms), 0.5)
    assert np.allclose(n.norm_pan(pan), 0.5)


def test_errors() -> None:
    ms, pan = _data()
    n = Normalizer.from_arrays(ms, pan)
    with pytest.raises(PSDNetInputError):
        n.norm_ms(ms[:3])
    with pytest.raises(PSDNetInputError):
        Normalizer.from_arrays(ms, pan, ms_valid=np.zeros((16, 16), bool))
    with pytest.raises(PSDNetInputError):
        Normalizer.from_dict({"ms_mean": [1.0]})


def test_joint4_pools_the_ms_bands_and_is_scale_invariant():
    rng = np.random.default_rng(0)
    ms = rng.random((3, 20, 20)) * np.array([1.0, 2.0, 3.0])[:, None, None] + 5.0
    pan = rng.random((40, 40))
    n = Normalizer.from_arrays(ms, pan, method="joint4")
    assert np.all(n.ms_mean == n.ms_mean[0]) and np.all(n.ms_std == n.ms_std[0])
    assert np.isclose(n.ms_mean[0], ms.mean())
    assert np.isclose(n.ms_std[0], ms.std())  # equal counts per band: pooled = overall std
    v = n.norm_ms(ms)
    n2 = Normalizer.from_arrays(ms * 1000 + 7, pan * 1000, method="joint4")
    np.testing.assert_allclose(n2.norm_ms(ms * 1000 + 7), v, atol=1e-5)
    assert Normalizer.from_dict(n.to_dict()).method == "joint4"
    np.testing.assert_allclose(n.denorm_ms(v), ms, rtol=1e-5)
