"""Classical pansharpening methods, the peers the network is measured against (pure numpy).

Every method takes ``ms`` (C, h, w) and ``pan`` (H, W) or (1, H, W) on the same radiometric
scale they were read in, with ``H = h * ratio``, and returns (C, H, W) float32. They share the
call form ``method(ms, pan, ratio)`` so the engine can run any of them in place of the
network (``exp`` ignores ``pan``).

* ``exp``: bicubic upsampling (:func:`psdnet_qgis.core.resample.upsample_bicubic`), the
  baseline with no PAN detail.
* ``brovey``: GDAL's weighted Brovey, what QGIS's built-in Pansharpening runs
  (``ms_up_b * pan / sum_k(w_k ms_up_k)``, equal weights ``1/C`` by default).
* ``gsa``: Gram-Schmidt adaptive (Aiazzi et al. 2007): intensity from a least-squares fit of
  the low-resolution PAN on the MS bands plus a constant, detail gains ``cov(ms_b, I)/var(I)``.
* ``mtf_glp_hpm``: generalised Laplacian pyramid with the sensor's MTF filters and high-pass
  modulation (``ms_up_b * pan_b / pan_lp_b``, PAN mean/std-matched to each band).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import PSDNetInputError
from . import mtf
from .resample import upsample_bicubic

__all__ = ["exp", "brovey", "gsa", "mtf_glp_hpm", "METHODS"]


def _inputs(ms: np.ndarray, pan: np.ndarray, ratio: int, method: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate and convert: ms (C, h, w) float32, pan (H, W) float32."""
    if int(ratio) != ratio or ratio < 1:
        raise PSDNetInputError(f"{method}: ratio={ratio!r}; use an integer PAN/MS ratio >= 1.")
    ratio = int(ratio)
    m = np.asarray(ms, dtype=np.float32)
    if m.ndim != 3:
        raise PSDNetInputError(f"{method}: ms has shape {m.shape}; pass the MS image as (C, h, w).")
    p = np.asarray(pan, dtype=np.float32)
    if p.ndim == 3 and p.shape[0] == 1:
        p = p[0]
    if p.ndim != 2:
        raise PSDNetInputError(f"{method}: pan has shape {np.shape(pan)}; pass (H, W) or (1, H, W).")
    if p.shape != (m.shape[1] * ratio, m.shape[2] * ratio):
        raise PSDNetInputError(
            f"{method}: pan is {p.shape[0]} x {p.shape[1]} px but ms {m.shape[1]} x {m.shape[2]} px times "
            f"ratio {ratio} is {m.shape[1] * ratio} x {m.shape[2] * ratio}; crop both to the same footprint."
        )
    return m, p, ratio


def exp(ms: np.ndarray, pan: np.ndarray | int | None = None, ratio: int | None = None) -> np.ndarray:
    """EXP: bicubic upsampling of the MS, no PAN detail.

    Callable as ``exp(ms, ratio)`` or, like the other methods, ``exp(ms, pan, ratio)``.

    Args:
        ms: (C, h, w) MS image.
        pan: Ignored (only its shape is checked when given).
        ratio: Upsampling factor.

    Returns:
        (C, h*ratio, w*ratio) float32.
    """
    if ratio is None:
        if pan is None or np.ndim(pan) != 0:
            raise PSDNetInputError("exp: ratio missing; call exp(ms, ratio) or exp(ms, pan, ratio).")
        ratio, pan = int(pan), None  # type: ignore[arg-type]
    if pan is not None:
        m, _, ratio = _inputs(ms, pan, ratio, "exp")  # type: ignore[arg-type]
    else:
        m = np.asarray(ms, dtype=np.float32)
        if m.ndim != 3:
            raise PSDNetInputError(f"exp: ms has shape {m.shape}; pass the MS image as (C, h, w).")
    return upsample_bicubic(m, ratio)


def brovey(ms: np.ndarray, pan: np.ndarray, ratio: int, weights: Sequence[float] | None = None) -> np.ndarray:
    """GDAL's weighted Brovey transform.

    ``out_b = ms_up_b * pan / pseudo``, ``pseudo = sum_k w_k ms_up_k``; where the pseudo-PAN
    is zero the output is 0, as in GDAL.

    Args:
        ms: (C, h, w); pan: (H, W) or (1, H, W); ratio: PAN/MS ratio.
        weights: One weight per band for the pseudo-PAN (default ``1 / C`` each).

    Returns:
        (C, H, W) float32.
    """
    m, p, ratio = _inputs(ms, pan, ratio, "brovey")
    c = m.shape[0]
    w = np.full(c, 1.0 / c) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (c,):
        raise PSDNetInputError(f"brovey: got {w.size} weights for {c} MS bands; pass one weight per band.")
    up = upsample_bicubic(m, ratio)
    pseudo = np.tensordot(w.astype(np.float32), up, axes=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(pseudo != 0, p / pseudo, 0.0).astype(np.float32)
    up *= factor
    return up


def _std(x: np.ndarray) -> float:
    return float(np.std(x, dtype=np.float64))


def gsa(ms: np.ndarray, pan: np.ndarray, ratio: int, sensor: str | None = None) -> np.ndarray:
    """Gram-Schmidt adaptive (GSA) component substitution.

    1. ``alpha`` = least squares of the PAN degraded to the MS scale (sensor PAN MTF +
       decimation) on the MS bands and a constant;
    2. intensity ``I = sum_b alpha_b ms_up_b + alpha_0`` at PAN scale;
    3. PAN mean/std-matched to ``I``;
    4. ``out_b = ms_up_b + g_b (pan_matched - I)``, ``g_b = cov(ms_up_b, I) / var(I)``.

    Args:
        ms: (C, h, w); pan: (H, W) or (1, H, W); ratio: PAN/MS ratio.
        sensor: Sensor name for the PAN MTF used to degrade the PAN (None = default gain).

    Returns:
        (C, H, W) float32.
    """
    m, p, ratio = _inputs(ms, pan, ratio, "gsa")
    c = m.shape[0]
    up = upsample_bicubic(m, ratio)
    pan_lr = mtf.degrade(p, mtf.gnyq_for(sensor, c).pan, ratio)
    design = np.concatenate([m.reshape(c, -1), np.ones((1, m.shape[1] * m.shape[2]), np.float32)]).T
    alpha, *_ = np.linalg.lstsq(design.astype(np.float64), pan_lr.reshape(-1).astype(np.float64), rcond=None)
    intensity = np.tensordot(alpha[:c].astype(np.float32), up, axes=1) + np.float32(alpha[c])
    var_i = float(np.var(intensity, dtype=np.float64))
    sp = _std(p)
    if var_i <= 0.0 or sp <= 0.0:
        return up  # flat PAN or intensity: no detail to inject
    i_mean = float(np.mean(intensity, dtype=np.float64))
    matched = (p - np.float32(np.mean(p, dtype=np.float64))) * np.float32(np.sqrt(var_i) / sp) + np.float32(i_mean)
    detail = matched - intensity
    # cov(ms_up_b, I) = ms_up_b . (I - mean(I)) / n, the band mean drops out.
    i0 = (intensity - np.float32(i_mean)).reshape(-1)
    gains = (up.reshape(c, -1) @ i0).astype(np.float64) / i0.size / var_i
    up += gains.astype(np.float32)[:, None, None] * detail[None]
    return up


def mtf_glp_hpm(ms: np.ndarray, pan: np.ndarray, ratio: int, sensor: str | None = None) -> np.ndarray:
    """MTF-GLP with high-pass modulation.

    For each band b: the PAN is mean/std-matched to ``ms_up_b`` (gain from the low-pass
    PAN's std, so the matched low-pass PAN has the band's contrast), low-passed with the
    band's MTF filter, decimated and re-interpolated like the MS (the Laplacian-pyramid
    step), and ``out_b = ms_up_b * pan_b / pan_lp_b``.

    The PAN low-pass uses the MS band gains, not the PAN gain: ``pan_lp_b`` must have the
    spatial response of MS band b for ``pan_b / pan_lp_b`` to hold exactly the detail that
    band lacks (this is what makes the GLP "MTF matched").

    Args:
        ms: (C, h, w); pan: (H, W) or (1, H, W); ratio: PAN/MS ratio.
        sensor: Sensor name for the MTF gains (None = 0.3 per band).

    Returns:
        (C, H, W) float32.
    """
    m, p, ratio = _inputs(ms, pan, ratio, "mtf_glp_hpm")
    c = m.shape[0]
    gains = mtf.gnyq_for(sensor, c).ms
    up = upsample_bicubic(m, ratio)
    p_mean = float(np.mean(p, dtype=np.float64))
    p0 = p - np.float32(p_mean)
    out = np.empty_like(up)
    cache: dict[float, np.ndarray] = {}
    for b in range(c):
        g = gains[b]
        if g not in cache:
            # Low-pass of the zero-mean PAN; matching below is affine, so it commutes.
            cache[g] = upsample_bicubic(mtf.degrade(p0, g, ratio), ratio)
        lp0 = cache[g]
        s_lp = _std(lp0)
        mu_b = np.float32(np.mean(up[b], dtype=np.float64))
        scale = np.float32(_std(up[b]) / s_lp) if s_lp > 0 else np.float32(0.0)
        pan_b = p0 * scale + mu_b
        pan_lp = lp0 * scale + mu_b
        # Guard the modulation ratio where the low-pass PAN is (near) zero.
        tiny = np.float32(1e-6 * max(abs(float(mu_b)), 1e-6))
        with np.errstate(divide="ignore", invalid="ignore"):
            mod = np.where(np.abs(pan_lp) > tiny, pan_b / pan_lp, np.float32(1.0))
        out[b] = up[b] * mod
    return out


#: Method name -> function, as used by the engine and the benchmark.
METHODS = {"exp": exp, "brovey": brovey, "gsa": gsa, "mtf_glp_hpm": mtf_glp_hpm}
