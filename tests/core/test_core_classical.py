"""Classical pansharpening methods on a simulated (Wald) pair."""

from __future__ import annotations

import numpy as np
import pytest

from psdnet_qgis.core import classical as K
from psdnet_qgis.core import metrics as M
from psdnet_qgis.core import mtf
from psdnet_qgis.core.resample import upsample_bicubic
from psdnet_qgis.errors import PSDNetInputError

RATIO = 4


def _field(c: int, n: int, seed: int) -> np.ndarray:
    """Smooth random field with detail at several scales."""
    rng = np.random.default_rng(seed)
    return sum(upsample_bicubic(rng.random((c, n // s, n // s)), s) for s in (2, 4, 8, 16, 32))


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c, n = 4, 128
    common = _field(1, n, 1)
    gt = 300 + 400 * (0.6 * common + 0.4 * _field(c, n, 2)) * np.linspace(0.8, 1.3, c)[:, None, None]
    gt = gt.astype(np.float32)
    pan = gt.mean(axis=0)
    ms = mtf.degrade(gt, mtf.gnyq_for("QuickBird", c).ms, RATIO)
    return gt, ms, pan


@pytest.mark.parametrize("name", sorted(K.METHODS))
def test_shapes_dtype_finite(name: str, pair: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    gt, ms, pan = pair
    for p in (pan, pan[None]):
        out = K.METHODS[name](ms, p, RATIO)
        assert out.shape == gt.shape and out.dtype == np.float32
        assert np.all(np.isfinite(out))


def test_exp_both_call_forms(pair: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    _, ms, pan = pair
    np.testing.assert_array_equal(K.exp(ms, RATIO), K.exp(ms, pan, RATIO))
    np.testing.assert_array_equal(K.exp(ms, RATIO), upsample_bicubic(ms, RATIO))


def test_detail_injection_beats_exp(pair: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    gt, ms, pan = pair
    base = M.reduced_resolution_metrics(K.exp(ms, pan, RATIO), gt, RATIO)
    for name in ("brovey", "gsa", "mtf_glp_hpm"):
        m = M.reduced_resolution_metrics(K.METHODS[name](ms, pan, RATIO), gt, RATIO)
        assert m["SCC"] > base["SCC"] + 0.02, name
        assert m["ERGAS"] < base["ERGAS"], name
        assert m["Q2n"] > base["Q2n"], name


def test_brovey_formula_and_weights(pair: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    _, ms, pan = pair
    up = upsample_bicubic(ms, RATIO).astype(np.float64)
    w = np.array([0.1, 0.2, 0.3, 0.4])
    out = K.brovey(ms, pan, RATIO, weights=w)
    expect = up * pan / np.tensordot(w, up, axes=1)
    np.testing.assert_allclose(out, expect, rtol=1e-4)
    # spectral angle of the upsampled MS is kept exactly (per-pixel scaling)
    assert M.sam(K.brovey(ms, pan, RATIO), up) == pytest.approx(0.0, abs=0.05)
    with pytest.raises(PSDNetInputError):
        K.brovey(ms, pan, RATIO, weights=[1.0, 2.0])


def test_constant_pan_gives_finite_sensible_result(pair: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    _, ms, pan = pair
    flat = np.full_like(pan, 500.0)
    up = upsample_bicubic(ms, RATIO)
    for name in ("gsa", "mtf_glp_hpm"):
        out = K.METHODS[name](ms, flat, RATIO)
        np.testing.assert_allclose(out, up, rtol=1e-5, atol=1e-3)  # no detail to inject
    b = K.brovey(ms, flat, RATIO)
    assert np.all(np.isfinite(b))
    np.testing.assert_allclose(b.mean(axis=0), 500.0, rtol=1e-4)  # pseudo-PAN forced to the PAN
    assert np.all(np.isfinite(K.brovey(np.zeros_like(ms), pan, RATIO)))


def test_input_errors(pair: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    _, ms, pan = pair
    with pytest.raises(PSDNetInputError, match="footprint"):
        K.gsa(ms, pan[:-4], RATIO)
    with pytest.raises(PSDNetInputError):
        K.mtf_glp_hpm(ms[0], pan, RATIO)
    with pytest.raises(PSDNetInputError):
        K.exp(ms)
