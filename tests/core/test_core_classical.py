"""Classical pansharpening methods on a simulated (Wald) pair."""

from __future__ import annotations

import re

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
    with pytest.raises(
        PSDNetInputError,
        match=(
            r"gsa: pan is 124 x 128 px but ms 32 x 32 px times ratio 4 is 128 x 128; "
            r"crop both to the same footprint\."
        ),
    ):
        K.gsa(ms, pan[:-4], RATIO)
    with pytest.raises(PSDNetInputError):
        K.mtf_glp_hpm(ms[0], pan, RATIO)
    with pytest.raises(PSDNetInputError):
        K.exp(ms)


# ---------------------------------------------------------------- fit once, apply per tile
@pytest.mark.parametrize("name", sorted(K.FITTED))
def test_one_call_is_fit_then_apply(name: str, pair: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    _, ms, pan = pair
    stats = K.fit(name, ms, pan, RATIO)
    np.testing.assert_array_equal(K.METHODS[name](ms, pan, RATIO), K.apply(name, ms, pan, RATIO, stats))
    # a list of one window with an all-true mask is the same estimate
    one = K.fit(name, [ms], [pan[None]], RATIO, valid=[np.ones(ms.shape[1:], bool)])
    assert one.to_dict() == stats.to_dict()


@pytest.mark.parametrize("name", sorted(K.FITTED))
def test_apply_with_the_callers_upsampled_ms_is_the_same(name: str, pair: tuple[np.ndarray, np.ndarray, np.ndarray]
                                                          ) -> None:
    """Several methods on one tile share one bicubic upsampling: same output, the shared array untouched."""
    _, ms, pan = pair
    stats = K.fit(name, ms, pan, RATIO)
    up = upsample_bicubic(ms, RATIO)
    kept = up.copy()
    np.testing.assert_array_equal(K.apply(name, ms, pan, RATIO, stats, up), K.apply(name, ms, pan, RATIO, stats))
    np.testing.assert_array_equal(up, kept)
    with pytest.raises(PSDNetInputError, match="upsampled ms has shape"):
        K.apply(name, ms, pan, RATIO, stats, up[:, :-4])


@pytest.mark.parametrize("name", sorted(K.FITTED))
def test_apply_is_local_so_tiles_agree(name: str, pair: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """With global stats a crop's result equals the whole image's result away from the crop
    border (MTF filter + bicubic reach < 8 MS px): no seams in the tiled engine."""
    _, ms, pan = pair
    stats = K.fit(name, ms, pan, RATIO)
    whole = K.apply(name, ms, pan, RATIO, stats)
    r0, r1, c0, c1, m = 4, 28, 2, 30, 8  # ms is 32 x 32
    crop = K.apply(name, ms[:, r0:r1, c0:c1], pan[r0 * RATIO:r1 * RATIO, c0 * RATIO:c1 * RATIO], RATIO, stats)
    mp = m * RATIO
    np.testing.assert_allclose(crop[:, mp:-mp, mp:-mp],
                               whole[:, (r0 + m) * RATIO:(r1 - m) * RATIO, (c0 + m) * RATIO:(c1 - m) * RATIO],
                               rtol=1e-6, atol=1e-3)
    # per-crop statistics (the old tiled behaviour) do not agree
    own = K.METHODS[name](ms[:, r0:r1, c0:c1], pan[r0 * RATIO:r1 * RATIO, c0 * RATIO:c1 * RATIO], RATIO)
    assert np.abs(own - crop).max() > 1.0


@pytest.mark.parametrize("name", sorted(K.FITTED))
def test_masked_pixels_do_not_enter_the_statistics(name: str, pair: tuple[np.ndarray, np.ndarray, np.ndarray]
                                                   ) -> None:
    _, ms, pan = pair
    valid = np.zeros(ms.shape[1:], bool)
    valid[:, :20] = True
    stats = K.fit(name, ms, pan, RATIO, valid=valid).to_dict()
    ms2, pan2 = ms.copy(), pan.copy()
    ms2[:, :, 28:] = 5000.0  # beyond the filters' reach (8 MS px) from the counted pixels
    pan2[:, 28 * RATIO:] = 1.0
    again = K.fit(name, ms2, pan2, RATIO, valid=valid).to_dict()
    for k, v in stats.items():
        np.testing.assert_allclose(again[k], v, rtol=1e-6, err_msg=k)
    assert K.fit(name, ms, pan, RATIO).to_dict() != stats


def test_fit_apply_dispatch_and_errors(pair: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    _, ms, pan = pair
    assert K.fit("exp", ms, pan, RATIO) is None and K.fit("brovey", ms, pan, RATIO) is None
    np.testing.assert_array_equal(K.apply("brovey", ms, pan, RATIO), K.brovey(ms, pan, RATIO))
    stats = K.gsa_stats(ms, pan, RATIO)
    with pytest.raises(PSDNetInputError, match=r"gsa: stats were fitted for 4 bands, ms has 3; refit them\."):
        K.gsa_apply(ms[:3], pan, RATIO, stats)
    with pytest.raises(PSDNetInputError, match=r"mtf_glp_hpm: stats were fitted for 4 bands, ms has 3; refit them\."):
        K.mtf_glp_hpm_apply(ms[:3], pan, RATIO, K.mtf_glp_hpm_stats(ms, pan, RATIO))
    with pytest.raises(
        PSDNetInputError,
        match=re.escape(
            "gsa: valid mask has shape (3, 3) but the MS window is 32 x 32 px; "
            "pass one bool per MS pixel."
        ),
    ):
        K.gsa_stats(ms, pan, RATIO, valid=np.zeros((3, 3), bool))
    with pytest.raises(
        PSDNetInputError,
        match=r"gsa: no valid pixel to estimate the statistics from; check the nodata masks\.",
    ):
        K.gsa_stats(ms, pan, RATIO, valid=np.zeros(ms.shape[1:], bool))
    with pytest.raises(PSDNetInputError, match=r"Classical method 'pca' is unknown; use one of exp, brovey, gsa, "):
        K.fit("pca", ms, pan, RATIO)


def test_hpm_stays_bounded_when_bands_do_not_follow_the_pan():
    """Uncorrelated bands made the plain HPM ratio explode (+-3e6); the guarded one stays in range."""
    from psdnet_qgis.core.classical.mra import HPM_MAX_MODULATION, mtf_glp_hpm
    from tests.rasters import synthetic_scene

    pan, ms = synthetic_scene((48, 52), bands=4, ratio=4, seed=0)
    fused = mtf_glp_hpm(ms.astype(np.float32), pan.astype(np.float32), 4)
    assert np.isfinite(fused).all()
    assert fused.min() >= 0.0
    assert fused.max() <= HPM_MAX_MODULATION * ms.max() * 1.5  # bicubic overshoot allowance


def test_gsa_intensity_from_some_bands_is_gsa_of_those_bands(pair: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """The calibration's GSA candidate: with the intensity from bands 0-2, those bands get exactly
    what GSA of a 3-band MS gives them, whatever band 3 holds; band 3 gets the same detail."""
    _, ms, pan = pair
    sub = K.gsa_stats(ms[:3], pan, RATIO, "QuickBird")
    stats = K.fit("gsa", ms, pan, RATIO, "QuickBird", intensity_bands=[2, 0, 1])
    assert stats is not None and stats.alpha[3] == 0.0
    np.testing.assert_allclose(stats.alpha[[0, 1, 2, 4]], sub.alpha, rtol=1e-9)
    fused = K.gsa_apply(ms, pan, RATIO, stats)
    np.testing.assert_allclose(fused[:3], K.gsa_apply(ms[:3], pan, RATIO, sub), rtol=0, atol=1e-3)
    other = ms.copy()
    other[3] = other[3][::-1]  # another fourth band: the first three do not change
    moved = K.gsa_apply(other, pan, RATIO, K.gsa_stats(other, pan, RATIO, "QuickBird", intensity_bands=[0, 1, 2]))
    np.testing.assert_allclose(moved[:3], fused[:3], rtol=0, atol=1e-3)
    # the other methods fit each band on its own (or all): the argument changes nothing for them
    fs = K.fit("mtf_glp_fs", ms, pan, RATIO, intensity_bands=[0])
    assert fs is not None and fs.to_dict() == K.mtf_glp_fs_stats(ms, pan, RATIO).to_dict()
    with pytest.raises(PSDNetInputError, match=r"gsa: intensity bands \[4\] for 4 MS bands; pass 0-based band numbers"):
        K.gsa_stats(ms, pan, RATIO, intensity_bands=[4])
