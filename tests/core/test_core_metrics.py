"""Quality metrics: perfect scores, hand-computable cases, invariances, monotonicity."""

from __future__ import annotations

import numpy as np
import pytest

from psdnet_qgis.core import metrics as M
from psdnet_qgis.core import mtf
from psdnet_qgis.core.resample import upsample_bicubic


def _scene(c: int = 4, size: int = 96, seed: int = 0) -> np.ndarray:
    """Smooth-ish random multiband scene in DN (roughly 200..1500)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((c, size // 8, size // 8))
    fine = upsample_bicubic(coarse, 8) + 0.15 * rng.random((c, size, size))
    return (300 + 900 * fine * np.linspace(0.8, 1.2, c)[:, None, None]).astype(np.float64)


def test_perfect_scores_on_identical_images() -> None:
    ref = _scene()
    m = M.reduced_resolution_metrics(ref, ref, 4)
    assert m["Q2n"] == pytest.approx(1.0, abs=1e-12)
    assert m["Q"] == pytest.approx(1.0, abs=1e-12)
    assert m["SAM"] == pytest.approx(0.0, abs=1e-6)
    assert m["ERGAS"] == 0.0
    assert m["SCC"] == pytest.approx(1.0, abs=1e-12)
    # non-multiple-of-32 sizes, 3 bands (zero-padded to 4) and 8 bands
    for c, h, w in ((3, 70, 45), (8, 40, 33), (1, 33, 64)):
        img = _scene(c, 96)[:, :h, :w]
        assert M.q2n(img, img) == pytest.approx(1.0, abs=1e-12)
        assert M.q_index(img, img) == pytest.approx(1.0, abs=1e-12)


def test_flat_images() -> None:
    c = np.full((2, 64, 64), 500.0)
    assert M.q_index(c, c) == 1.0
    assert M.q2n(c, c) == pytest.approx(1.0)
    assert M.q_index(np.zeros((1, 40, 40)), np.zeros((1, 40, 40))) == 1.0
    assert 0.99 < M.q_index(c, c + 10) < 1.0  # mean term only


def test_sam_known_vectors() -> None:
    a = np.zeros((2, 4, 4))
    a[0] = 1.0
    b = np.zeros((2, 4, 4))
    b[1] = 3.0
    assert M.sam(a, b) == pytest.approx(90.0)
    d = np.ones((2, 4, 4))
    assert M.sam(d, a) == pytest.approx(45.0)
    z = a.copy()
    z[:, :2] = 0.0  # zero-norm pixels are skipped
    assert M.sam(z, b) == pytest.approx(90.0)


def test_sam_invariant_to_per_pixel_scaling() -> None:
    ref = _scene()
    fused = ref + np.random.default_rng(3).normal(0, 30, ref.shape)
    scale = np.random.default_rng(4).uniform(0.2, 5.0, ref.shape[1:])
    assert M.sam(fused * scale, ref) == pytest.approx(M.sam(fused, ref), rel=1e-9)


def test_ergas_constant_offset() -> None:
    ref = np.empty((3, 16, 16))
    means = np.array([100.0, 200.0, 400.0])
    ref[:] = means[:, None, None]
    ref[:, ::2] += 10
    ref[:, 1::2] -= 10  # keeps the band means
    fused = ref + 5.0
    expect = 100 / 4 * np.sqrt(np.mean(25.0 / means**2))
    assert M.ergas(fused, ref, 4) == pytest.approx(expect)
    assert M.ergas(fused, ref, 2) == pytest.approx(2 * expect)


def test_q_index_not_invariant_to_bias_but_to_common_scale() -> None:
    ref = _scene()
    fused = ref + np.random.default_rng(5).normal(0, 20, ref.shape)
    q = M.q_index(fused, ref)
    assert M.q_index(fused + 300, ref) < q
    assert M.q_index(3 * fused, 3 * ref) == pytest.approx(q, rel=1e-9)
    assert M.q_index(fused, ref) == pytest.approx(M.q_index(ref, fused), rel=1e-12)


def test_q_index_against_direct_window_loop() -> None:
    rng = np.random.default_rng(7)
    x = rng.random((1, 20, 23)) * 10 + 1
    y = x + rng.normal(0, 1, x.shape)
    b = 8
    vals = []
    for i in range(20 - b + 1):
        for j in range(23 - b + 1):
            u, v = x[0, i:i + b, j:j + b].ravel(), y[0, i:i + b, j:j + b].ravel()
            cov = np.cov(u, v)
            vals.append(4 * cov[0, 1] * u.mean() * v.mean() / ((cov[0, 0] + cov[1, 1]) * (u.mean()**2 + v.mean()**2)))
    assert M.q_index(y, x, block=b) == pytest.approx(np.mean(vals), rel=1e-9)


@pytest.mark.parametrize("n", [2, 4, 8])
def test_hypercomplex_norm_is_multiplicative(n: int) -> None:
    # Complex numbers, quaternions and octonions are composition algebras: |xy| = |x||y|.
    rng = np.random.default_rng(n)
    x, y = rng.normal(size=(n, 50)), rng.normal(size=(n, 50))
    p = M._onion_mult(x, y)
    np.testing.assert_allclose(np.linalg.norm(p, axis=0), np.linalg.norm(x, axis=0) * np.linalg.norm(y, axis=0))


def test_q2n_single_block_by_formula() -> None:
    # One 32 x 32 block, 2 bands (complex numbers): Q = |cov(z1, conj z2)| * bias / var terms,
    # computed after the reference-based normalisation.
    rng = np.random.default_rng(11)
    ref = np.round(rng.random((2, 32, 32)) * 1000 + 100)
    fus = np.round(ref + rng.normal(0, 50, ref.shape))
    mu, sd = ref.mean(axis=(1, 2), keepdims=True), ref.std(axis=(1, 2), ddof=1, keepdims=True)
    x, y = (ref - mu) / sd + 1, (fus - mu) / sd + 1
    zx, zy = x[0] + 1j * x[1], y[0] + 1j * y[1]
    mx, my = zx.mean(), zy.mean()
    cov = np.mean((zx - mx) * np.conj(zy - my)) * 1024 / 1023
    vx, vy = np.mean(np.abs(zx - mx) ** 2) * 1024 / 1023, np.mean(np.abs(zy - my) ** 2) * 1024 / 1023
    expect = abs(cov) / ((vx + vy) / 2) * 2 * abs(mx) * abs(my) / (abs(mx) ** 2 + abs(my) ** 2)
    assert M.q2n(fus, ref) == pytest.approx(expect, rel=1e-9)


def _blur(img: np.ndarray, g: float) -> np.ndarray:
    return mtf.mtf_filter(img, g, 4).astype(np.float64)


def test_monotone_in_noise_and_blur() -> None:
    ref = _scene(4, 96, 1)
    rng = np.random.default_rng(2)
    noise = rng.normal(size=ref.shape)
    degraded = {
        "noise": [ref + s * noise for s in (5, 20, 60)],
        "blur": [_blur(ref, g) for g in (0.7, 0.4, 0.15)],
    }
    for kind, imgs in degraded.items():
        ms = [M.reduced_resolution_metrics(f, ref, 4) for f in imgs]
        for a, b in zip(ms, ms[1:], strict=False):
            for k in ("Q2n", "Q", "SCC"):
                assert b[k] < a[k] < 1.0, (kind, k)
            assert b["ERGAS"] > a["ERGAS"] > 0, kind
            if kind == "noise":
                assert b["SAM"] > a["SAM"] > 0


def test_full_resolution_metrics() -> None:
    ratio = 4
    gt = _scene(4, 128, 9)
    gains = mtf.gnyq_for("QuickBird", 4)
    ms = mtf.degrade(gt, gains.ms, ratio)
    pan = gt.mean(axis=0)
    exp = upsample_bicubic(ms, ratio)
    m_gt = M.full_resolution_metrics(gt, ms, pan, ratio, "QuickBird")
    m_exp = M.full_resolution_metrics(exp, ms, pan[None], ratio, "QuickBird")
    for m in (m_gt, m_exp):
        assert set(m) == {"D_lambda", "D_s", "QNR", "D_lambda_K", "HQNR"}
        assert all(np.isfinite(v) for v in m.values())
        assert 0 <= m["D_lambda"] < 1 and 0 <= m["D_s"] < 1 and 0 < m["QNR"] <= 1
        assert m["QNR"] == pytest.approx((1 - m["D_lambda"]) * (1 - m["D_s"]))
        assert m["HQNR"] == pytest.approx((1 - m["D_lambda_K"]) * (1 - m["D_s"]))
    # the true image is exactly consistent with its own MTF-degraded MS
    assert m_gt["D_lambda_K"] == pytest.approx(0.0, abs=1e-9)
    # EXP has no PAN detail: larger spatial distortion than the truth
    assert m_exp["D_s"] > m_gt["D_s"]
    assert M.qnr(gt, ms, pan, ratio, "QuickBird") == pytest.approx(m_gt["QNR"])
    assert M.hqnr(gt, ms, pan, ratio, "QuickBird") == pytest.approx(m_gt["HQNR"])
    assert M.d_lambda(gt[:1], ms[:1]) == 0.0


def test_shape_errors() -> None:
    from psdnet_qgis.errors import PSDNetInputError

    with pytest.raises(PSDNetInputError):
        M.sam(np.zeros((3, 8, 8)), np.zeros((3, 8, 9)))
    with pytest.raises(PSDNetInputError):
        M.full_resolution_metrics(np.zeros((3, 64, 64)), np.zeros((3, 15, 16)), np.zeros((64, 64)), 4)


def test_d_lambda_and_d_s_match_their_definitions() -> None:
    ratio = 4
    gt = _scene(3, 128, 12)
    ms = mtf.degrade(gt, 0.3, ratio)
    pan = gt.mean(axis=0)
    fused = upsample_bicubic(ms, ratio) + 0.3 * (pan - upsample_bicubic(mtf.degrade(pan, 0.15, ratio), ratio))
    pairs = [(0, 1), (0, 2), (1, 2)]
    expect = np.mean([abs(M.q_index(fused[i], fused[j]) - M.q_index(ms[i], ms[j])) for i, j in pairs])
    assert M.d_lambda(fused, ms) == pytest.approx(expect, rel=1e-9)
    pan_low = mtf.degrade(pan, mtf.gnyq_for(None, 3).pan, ratio)
    expect = np.mean([abs(M.q_index(fused[b], pan) - M.q_index(ms[b], pan_low)) for b in range(3)])
    assert M.d_s(fused, ms, pan, ratio) == pytest.approx(expect, rel=1e-9)


def test_pooled_statistics_give_the_whole_image_formulas() -> None:
    """ERGAS / D_lambda / QNR from pooled block statistics use the whole-image formulas."""
    f, r = _scene(seed=1), _scene(seed=2)
    mse, mu = ((f - r) ** 2).mean(axis=(1, 2)), r.mean(axis=(1, 2))
    assert M.ergas_from_errors(mse, mu, 4) == M.ergas(f, r, 4)
    # two halves pooled by their pixel counts are the whole image's mean errors
    halves = [(((f - r) ** 2)[:, a:b].mean(axis=(1, 2)), (b - a) * f.shape[2]) for a, b in ((0, 40), (40, 96))]
    np.testing.assert_allclose(M.pooled_mean(halves), mse, rtol=1e-12)
    assert M.pooled_mean([]) is None
    assert M.pooled_mean([(np.array([0.5, 1.0]), 3)]).tolist() == [0.5, 1.0]
    assert M.distortion(np.array([0.9, 0.8]), np.array([0.7, 0.9])) == pytest.approx(0.15)
    assert M.distortion(np.array([]), np.array([])) == 0.0  # one band: no band pairs
    assert M.qnr_from_distortions(0.1, 0.2) == pytest.approx(0.72)
