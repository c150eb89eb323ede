"""core.calibration: the per-band weights of the candidates' detail, fitted in closed form."""

from __future__ import annotations

import re

import numpy as np
import pytest

from psdnet_qgis.core.calibration import Calibration, CalibrationFit, simplex_gram
from psdnet_qgis.errors import PSDNetInputError


def _scene(seed: int = 0, c: int = 3, n: int = 40):
    """A reference, its upsampled MS and three candidates' details (independent textures)."""
    rng = np.random.default_rng(seed)
    lms = rng.uniform(100, 200, (c, n, n)).astype(np.float32)
    details = [rng.normal(0, 10, (c, n, n)).astype(np.float32) for _ in range(3)]
    return rng, lms, details


def test_simplex_weights_of_a_known_mixture_are_recovered():
    rng, lms, d = _scene()
    true = np.array([[0.3, 0.7, 0.0], [1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    ref = lms + sum(true[:, k, None, None] * d[k] for k in range(3))
    ref = ref + rng.normal(0, 0.01, ref.shape).astype(np.float32)
    fit = CalibrationFit(["net", "fs", "gsa"], 3, 4)
    fit.add(ref, lms, [lms + dk for dk in d])
    cal = fit.solve()
    np.testing.assert_allclose(cal.weights, true, atol=2e-3)
    assert cal.metrics["calibrated"]["ERGAS"] < min(cal.metrics[k]["ERGAS"] for k in ("net", "fs", "gsa"))


def test_nonneg_gains_are_recovered_and_never_negative():
    rng, lms, d = _scene(1)
    true = np.array([[1.4, 0.0, 0.0], [0.6, 0.5, 0.0], [0.0, 0.0, 2.0]])
    ref = lms + sum(true[:, k, None, None] * d[k] for k in range(3))
    ref[2] -= 0.3 * d[0][2]  # band 3 would want -0.3 of the first candidate: clipped to 0
    fit = CalibrationFit(["net", "fs", "gsa"], 3, 4, constraint="nonneg")
    fit.add(ref, lms, [lms + dk for dk in d])
    w = fit.solve().weights
    assert (w >= 0).all()
    np.testing.assert_allclose(w[:2], true[:2], atol=1e-3)
    assert w[2, 0] == 0.0 and w[2, 2] == pytest.approx(2.0, abs=0.05)


def test_windows_add_up_like_one_image_and_masks_drop_pixels():
    rng, lms, d = _scene(2)
    ref = lms + 0.5 * d[0] + 0.5 * d[1]
    outs = [lms + dk for dk in d]
    whole = CalibrationFit(["a", "b", "c"], 3, 2)
    whole.add(ref, lms, outs)
    parts = CalibrationFit(["a", "b", "c"], 3, 2)
    for sl in (slice(0, 15), slice(15, 40)):
        parts.add(ref[:, sl], lms[:, sl], [o[:, sl] for o in outs])
    np.testing.assert_allclose(parts.solve().weights, whole.solve().weights, atol=1e-9)
    masked = CalibrationFit(["a", "b", "c"], 3, 2)
    bad = ref.copy()
    bad[:, :5] = 1e6  # garbage where the mask says invalid
    valid = np.ones(ref.shape[1:], bool)
    valid[:5] = False
    masked.add(bad, lms, outs, valid)
    np.testing.assert_allclose(masked.solve().weights, [[0.5, 0.5, 0.0]] * 3, atol=1e-6)
    assert masked.n == valid.sum()


def test_allowed_and_covered_constrain_bands():
    _, lms, d = _scene(3)
    ref = lms + d[0]  # the first candidate is perfect everywhere
    allowed = np.ones((3, 3), bool)
    allowed[0, 2] = False  # ... but has no output of its own for band 3
    fit = CalibrationFit(["net", "fs", "gsa"], 3, 4, allowed=allowed, covered=np.array([True, False, True]))
    fit.add(ref, lms, [lms + dk for dk in d])
    w = fit.solve().weights
    np.testing.assert_allclose(w[0], [1.0, 0.0, 0.0], atol=1e-6)
    assert (w[1] == 0).all()  # the PAN does not cover band 2: the upsampled MS
    assert w[2, 0] == 0.0 and w[2].sum() == pytest.approx(1.0)


def test_shared_weights_are_one_mix_per_set_of_allowed_candidates():
    rng, lms, d = _scene(4, c=4)
    true = np.array([0.6, 0.4, 0.0])
    ref = lms + sum(true[k] * d[k] for k in range(3)) + rng.normal(0, 0.01, lms.shape).astype(np.float32)
    allowed = np.ones((3, 4), bool)
    allowed[0, 3] = False  # band 4: no network output, its own group
    fit = CalibrationFit(["net", "fs", "gsa"], 4, 4, allowed=allowed, covered=np.array([True, True, False, True]),
                         shared=True)
    fit.add(ref, lms, [lms + dk for dk in d])
    w = fit.solve().weights
    np.testing.assert_allclose(w[:2], [true, true], atol=2e-3)
    np.testing.assert_array_equal(w[0], w[1])  # one vector for the bands with the same candidates
    assert (w[2] == 0).all() and w[3, 0] == 0.0 and w[3].sum() == pytest.approx(1.0)
    # per band (the default) the two bands' weights are fitted apart, and the same data agree
    per_band = CalibrationFit(["net", "fs", "gsa"], 4, 4, allowed=allowed, covered=np.array([True, True, False, True]))
    per_band.add(ref, lms, [lms + dk for dk in d])
    np.testing.assert_allclose(per_band.solve().weights[:2], w[:2], atol=2e-3)


def test_zero_weights_give_the_upsampled_ms_exactly_and_one_hot_the_candidate():
    _, lms, d = _scene(4)
    outs = [lms + dk for dk in d]
    none = Calibration(("a", "b", "c"), np.zeros((3, 3)))
    assert np.array_equal(none.combine(lms, outs), lms)
    one = Calibration(("a", "b", "c"), np.tile([0.0, 1.0, 0.0], (3, 1)))
    np.testing.assert_allclose(one.combine(lms, outs), outs[1], rtol=0, atol=1e-4)
    with pytest.raises(
        PSDNetInputError,
        match=re.escape("Calibration.combine: got 2 candidate outputs for 3 candidates (a, b, c)."),
    ):
        one.combine(lms, outs[:2])


def test_simplex_solver_edge_cases():
    g = np.eye(2)
    np.testing.assert_allclose(simplex_gram(np.zeros((2, 2)), np.zeros(2)), [0.5, 0.5])
    np.testing.assert_allclose(simplex_gram(g * 1e12, np.array([2e12, -1e12])), [1.0, 0.0])
    x = simplex_gram(g, np.array([0.5, 0.5]))
    np.testing.assert_allclose(x, [0.5, 0.5])


def test_no_pixel_and_bad_arguments_are_refused():
    with pytest.raises(
        PSDNetInputError,
        match=(
            r"Calibration: no valid pixel in the reduced-resolution sample; "
            r"check the nodata values or switch calibration off\."
        ),
    ):
        CalibrationFit(["a"], 2, 4).solve()
    with pytest.raises(
        PSDNetInputError,
        match=re.escape("CalibrationFit: constraint 'free'; use one of ('simplex', 'nonneg')."),
    ):
        CalibrationFit(["a"], 2, 4, constraint="free")
    with pytest.raises(PSDNetInputError, match=re.escape("CalibrationFit: allowed must be (1, 2) and covered (2,).")):
        CalibrationFit(["a"], 2, 4, allowed=np.ones((2, 2), bool))


def test_report_and_log_lines():
    _, lms, d = _scene(5)
    fit = CalibrationFit(["net", "fs"], 3, 4)
    fit.add(lms + d[0], lms, [lms + d[0], lms + d[1]])
    cal = fit.solve()
    rep = cal.to_dict()
    assert rep["candidates"] == ["net", "fs"] and len(rep["weights"]) == 3
    assert set(rep["reduced_resolution"]) == {"net", "fs", "calibrated"}
    lines = cal.describe(["blue", "green", "red"])
    assert lines[0].startswith("  blue: net 1.000") and "reduced resolution" in lines[-1]


def test_cross_fitted_scores_out_of_sample():
    """Each half scored with the other half's weights: equal to the in-sample score when both halves
    fit the same weights, worse than it when a candidate is noise that fits its own pixels."""
    from psdnet_qgis.core.calibration import cross_fitted

    rng, lms, d = _scene(4)
    ref = lms + 0.6 * d[0] + 0.4 * d[1]
    even = (np.indices(ref.shape[1:]).sum(axis=0) // 8) % 2 == 0

    def fits(outs, names):
        whole, a, b = (CalibrationFit(names, 3, 4) for _ in range(3))
        whole.add(ref, lms, outs)
        a.add(ref, lms, outs, even)
        b.add(ref, lms, outs, ~even)
        return whole.solve(), cross_fitted(a, b)

    one, cross = fits([lms + d[0]], ["net"])  # one candidate, simplex: weight 1 on both halves
    assert cross["ERGAS"] == pytest.approx(one.metrics["calibrated"]["ERGAS"], rel=1e-9)
    assert cross["SAM"] == pytest.approx(one.metrics["calibrated"]["SAM"], rel=1e-5)
    small = [lms + 0.05 * rng.normal(0, 10, lms.shape).astype(np.float32) + d[0], lms + d[1]]
    noisy, cross = fits(small, ["noisy", "b"])
    assert cross["ERGAS"] > noisy.metrics["calibrated"]["ERGAS"]
    assert cross_fitted(CalibrationFit(["a"], 3, 4), CalibrationFit(["a"], 3, 4)) is None


def test_expected_pixels_bound_the_sam_subsample_and_change_no_weight(monkeypatch):
    from psdnet_qgis.core import calibration as ccal

    monkeypatch.setattr(ccal, "SAM_PIXELS", 1000)
    rng, lms, d = _scene(3, n=40)
    ref = lms + 0.4 * d[0] + 0.6 * d[2] + rng.normal(0, 0.5, lms.shape).astype(np.float32)
    outs = [lms + dk for dk in d]
    rows = [slice(k, k + 4) for k in range(0, 40, 4)]  # 10 windows of 160 px: 1600 px in all
    grown, bounded = CalibrationFit(["a", "b", "c"], 3, 2), CalibrationFit(["a", "b", "c"], 3, 2, expected=1600)
    for fit in (grown, bounded):
        for sl in rows:
            fit.add(ref[:, sl], lms[:, sl], [o[:, sl] for o in outs])
    assert bounded._kept <= 1000 + len(rows) < grown._kept  # the old stride kept more than asked
    a, b = grown.solve(), bounded.solve()
    np.testing.assert_array_equal(a.weights, b.weights)  # the weights do not use the subsample
    assert a.metrics["calibrated"]["ERGAS"] == b.metrics["calibrated"]["ERGAS"]
    assert b.metrics["calibrated"]["SAM"] == pytest.approx(a.metrics["calibrated"]["SAM"], rel=0.05)
    monkeypatch.setattr(ccal, "SAM_PIXELS", 200_000)
    few, old = CalibrationFit(["a", "b", "c"], 3, 2, expected=1600), CalibrationFit(["a", "b", "c"], 3, 2)
    for fit in (few, old):  # fewer pixels than SAM_PIXELS: every one kept, the same SAM as before
        for sl in rows:
            fit.add(ref[:, sl], lms[:, sl], [o[:, sl] for o in outs])
    assert few.solve().metrics == old.solve().metrics
