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

gsa and mtf_glp_hpm depend on image statistics. For tiled runs they are split into
``gsa_stats`` / ``mtf_glp_hpm_stats`` (small frozen dataclasses, fitted once per raster, on
the whole image or on a list of full-resolution windows with masks) and ``gsa_apply`` /
``mtf_glp_hpm_apply`` (local given the stats, so tiles agree to float rounding). The
one-call forms are ``apply(stats of the same image)``. :func:`fit` / :func:`apply` dispatch
by method name (``fit`` returns None for the stateless exp and brovey).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np

from ..errors import PSDNetInputError
from . import mtf
from .resample import upsample_bicubic

__all__ = [
    "exp", "brovey", "gsa", "mtf_glp_hpm", "METHODS", "FITTED", "GSAStats", "HPMStats", "gsa_stats",
    "gsa_apply", "mtf_glp_hpm_stats", "mtf_glp_hpm_apply", "fit", "apply",
]


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


# ------------------------------------------------------------------ fit / apply split
# GSA and MTF-GLP-HPM need image statistics (regression weights, gains, mean/std matching).
# Estimated per tile they make neighbouring tiles disagree (seams of up to several band
# std), so they are split into ``*_stats`` (run once per raster, on the whole image or on
# windows of it) and ``*_apply`` (pointwise/local given the stats, so a tiled run equals a
# whole-image run up to float rounding). ``gsa(ms, pan, r)`` = apply(stats of the same image).

#: One image or a list of windows of one raster.
Windows = Union[np.ndarray, Sequence[np.ndarray]]


@dataclass(frozen=True)
class GSAStats:
    """Global coefficients of :func:`gsa_apply`.

    Attributes:
        alpha: (C + 1,) float64 intensity weights of the MS bands, then the constant.
        intensity_mean, intensity_std: Mean and std of the intensity at PAN scale.
        pan_mean, pan_std: PAN mean and std (the PAN is matched to the intensity with them).
        gains: (C,) float64 injection gains ``cov(ms_up_b, I) / var(I)``.
    """

    alpha: np.ndarray
    intensity_mean: float
    intensity_std: float
    pan_mean: float
    pan_std: float
    gains: np.ndarray

    def to_dict(self) -> dict:
        return {"alpha": [float(a) for a in self.alpha], "intensity_mean": self.intensity_mean,
                "intensity_std": self.intensity_std, "pan_mean": self.pan_mean,
                "pan_std": self.pan_std, "gains": [float(g) for g in self.gains]}


@dataclass(frozen=True)
class HPMStats:
    """Global coefficients of :func:`mtf_glp_hpm_apply`.

    Attributes:
        pan_mean: PAN mean.
        band_mean: (C,) float64 mean of each upsampled MS band.
        scale: (C,) float64 PAN gain per band, ``std(ms_up_b) / std(pan_lp_b)``.
        gnyq: (C,) MTF gains at Nyquist of the per-band PAN low-pass.
    """

    pan_mean: float
    band_mean: np.ndarray
    scale: np.ndarray
    gnyq: tuple[float, ...]

    def to_dict(self) -> dict:
        return {"pan_mean": self.pan_mean, "band_mean": [float(m) for m in self.band_mean],
                "scale": [float(s) for s in self.scale], "gnyq": [float(g) for g in self.gnyq]}


def _windows(ms: Windows, pan: Windows, ratio: int, valid: Windows | None, method: str
             ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray | None], int]:
    """Validate one image or a list of windows; masks go to (h, w) bool or None (all valid)."""
    single = isinstance(ms, np.ndarray) or (not isinstance(ms, (list, tuple)))
    ms_l = [ms] if single else list(ms)
    pan_l = [pan] if single else list(pan)  # type: ignore[list-item]
    if valid is None:
        val_l: list = [None] * len(ms_l)
    else:
        val_l = [valid] if single else list(valid)  # type: ignore[list-item]
    if not ms_l or len(pan_l) != len(ms_l) or len(val_l) != len(ms_l):
        raise PSDNetInputError(
            f"{method}: got {len(ms_l)} MS, {len(pan_l)} PAN and {len(val_l)} mask windows; pass "
            "one image or equally long lists of windows."
        )
    out_m, out_p, out_v = [], [], []
    for m, p, v in zip(ms_l, pan_l, val_l):
        m, p, ratio = _inputs(m, p, ratio, method)
        if v is not None:
            v = np.asarray(v, dtype=bool)
            if v.shape != m.shape[1:]:
                raise PSDNetInputError(
                    f"{method}: valid mask has shape {v.shape} but the MS window is "
                    f"{m.shape[1]} x {m.shape[2]} px; pass one bool per MS pixel."
                )
            if v.all():
                v = None
        out_m.append(m)
        out_p.append(p)
        out_v.append(v)
    c = out_m[0].shape[0]
    if any(m.shape[0] != c for m in out_m):
        raise PSDNetInputError(f"{method}: MS windows have different band counts; pass windows of one image.")
    if all(v is not None and not v.any() for v in out_v):
        raise PSDNetInputError(
            f"{method}: no valid pixel to estimate the statistics from; check the nodata masks."
        )
    return out_m, out_p, out_v, ratio


def _gather(arrays: Sequence[np.ndarray], masks: Sequence[np.ndarray | None]) -> np.ndarray:
    """Valid pixels of (..., H, W) arrays as one (..., N) array (a view for one unmasked array)."""
    parts = []
    for a, v in zip(arrays, masks):
        flat = a.reshape(a.shape[:-2] + (-1,))
        parts.append(flat if v is None else flat[..., v.reshape(-1)])
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)


def _pan_mask(v: np.ndarray | None, ratio: int) -> np.ndarray | None:
    return None if v is None else np.repeat(np.repeat(v, ratio, axis=0), ratio, axis=1)


def gsa_stats(ms: Windows, pan: Windows, ratio: int, sensor: str | None = None,
              valid: Windows | None = None) -> GSAStats:
    """Estimate the GSA coefficients (see :func:`gsa`) once, for a whole raster.

    Args:
        ms: (C, h, w) image, or a list of such windows of one raster.
        pan: (H, W) or (1, H, W) PAN (or list of windows), ``H = h * ratio``.
        ratio: PAN/MS ratio.
        sensor: Sensor name for the PAN MTF used to degrade the PAN (None = default gain).
        valid: Optional (h, w) bool mask (or list) of the MS pixels, with their
            ``ratio x ratio`` PAN blocks, that enter the statistics (e.g. False on window
            margins or nodata). The PAN is degraded over the whole window first.

    Returns:
        :class:`GSAStats`.
    """
    ms_l, pan_l, val_l, ratio = _windows(ms, pan, ratio, valid, "gsa")
    c = ms_l[0].shape[0]
    g_pan = mtf.gnyq_for(sensor, c).pan
    # 1. least squares of the degraded PAN on the MS bands and a constant (MS scale)
    lr = [mtf.degrade(p, g_pan, ratio) for p in pan_l]
    x = _gather(ms_l, val_l)
    design = np.concatenate([x, np.ones((1, x.shape[1]), np.float32)]).T.astype(np.float64)
    y = _gather([a[None] for a in lr], val_l)[0].astype(np.float64)
    alpha, *_ = np.linalg.lstsq(design, y, rcond=None)
    # 2. intensity statistics and injection gains (PAN scale, on the upsampled MS)
    pv = [_pan_mask(v, ratio) for v in val_l]
    ups = [upsample_bicubic(m, ratio) for m in ms_l]
    a32, a0 = alpha[:c].astype(np.float32), np.float32(alpha[c])
    i_all = _gather([np.tensordot(a32, u, axes=1) + a0 for u in ups], pv)
    var_i = float(np.var(i_all, dtype=np.float64))
    i_mean = float(np.mean(i_all, dtype=np.float64))
    p_all = _gather(pan_l, pv)
    if var_i > 0.0:
        # cov(ms_up_b, I) = ms_up_b . (I - mean(I)) / n, the band mean drops out.
        i0 = i_all - np.float32(i_mean)
        gains = (_gather(ups, pv) @ i0).astype(np.float64) / i0.size / var_i
    else:
        gains = np.zeros(c)
    return GSAStats(alpha=alpha, intensity_mean=i_mean, intensity_std=float(np.sqrt(var_i)),
                    pan_mean=float(np.mean(p_all, dtype=np.float64)), pan_std=_std(p_all), gains=gains)


def gsa_apply(ms: np.ndarray, pan: np.ndarray, ratio: int, stats: GSAStats) -> np.ndarray:
    """GSA with given coefficients: local (bicubic support) and pointwise, so tiles agree.

    Args:
        ms: (C, h, w); pan: (H, W) or (1, H, W); ratio: PAN/MS ratio.
        stats: From :func:`gsa_stats` on the whole raster.

    Returns:
        (C, H, W) float32.
    """
    m, p, ratio = _inputs(ms, pan, ratio, "gsa")
    c = m.shape[0]
    if np.shape(stats.alpha) != (c + 1,):
        raise PSDNetInputError(
            f"gsa: stats were fitted for {np.size(stats.alpha) - 1} bands, ms has {c}; refit them."
        )
    up = upsample_bicubic(m, ratio)
    if stats.intensity_std <= 0.0 or stats.pan_std <= 0.0:
        return up  # flat PAN or intensity: no detail to inject
    intensity = np.tensordot(stats.alpha[:c].astype(np.float32), up, axes=1) + np.float32(stats.alpha[c])
    matched = ((p - np.float32(stats.pan_mean)) * np.float32(stats.intensity_std / stats.pan_std)
               + np.float32(stats.intensity_mean))
    detail = matched - intensity
    up += np.asarray(stats.gains, dtype=np.float32)[:, None, None] * detail[None]
    return up


def gsa(ms: np.ndarray, pan: np.ndarray, ratio: int, sensor: str | None = None) -> np.ndarray:
    """Gram-Schmidt adaptive (GSA) component substitution.

    1. ``alpha`` = least squares of the PAN degraded to the MS scale (sensor PAN MTF +
       decimation) on the MS bands and a constant;
    2. intensity ``I = sum_b alpha_b ms_up_b + alpha_0`` at PAN scale;
    3. PAN mean/std-matched to ``I``;
    4. ``out_b = ms_up_b + g_b (pan_matched - I)``, ``g_b = cov(ms_up_b, I) / var(I)``.

    The statistics come from this image (``gsa_apply(ms, pan, ratio, gsa_stats(ms, pan,
    ratio))``); the engine fits them once per raster and applies them per tile.

    Args:
        ms: (C, h, w); pan: (H, W) or (1, H, W); ratio: PAN/MS ratio.
        sensor: Sensor name for the PAN MTF used to degrade the PAN (None = default gain).

    Returns:
        (C, H, W) float32.
    """
    return gsa_apply(ms, pan, ratio, gsa_stats(ms, pan, ratio, sensor))


def _lowpass(p0: np.ndarray, gnyq: Sequence[float], ratio: int) -> dict[float, np.ndarray]:
    """Low-pass PAN (degraded with each distinct gain, re-interpolated) per gain, (H, W)."""
    out: dict[float, np.ndarray] = {}
    for g in gnyq:
        if g not in out:
            out[g] = upsample_bicubic(mtf.degrade(p0, g, ratio), ratio)
    return out


def mtf_glp_hpm_stats(ms: Windows, pan: Windows, ratio: int, sensor: str | None = None,
                      valid: Windows | None = None) -> HPMStats:
    """Estimate the MTF-GLP-HPM matching coefficients (see :func:`mtf_glp_hpm`) once.

    Args:
        ms: (C, h, w) image, or a list of such windows of one raster.
        pan: (H, W) or (1, H, W) PAN (or list of windows), ``H = h * ratio``.
        ratio: PAN/MS ratio.
        sensor: Sensor name for the MS MTF gains (None = 0.3 per band).
        valid: Optional (h, w) bool mask (or list) of the MS pixels (with their PAN blocks)
            that enter the statistics; filtering runs over the whole window first.

    Returns:
        :class:`HPMStats`.
    """
    ms_l, pan_l, val_l, ratio = _windows(ms, pan, ratio, valid, "mtf_glp_hpm")
    c = ms_l[0].shape[0]
    gnyq = tuple(float(g) for g in mtf.gnyq_for(sensor, c).ms)
    pv = [_pan_mask(v, ratio) for v in val_l]
    p_mean = float(np.mean(_gather(pan_l, pv), dtype=np.float64))
    ups = [upsample_bicubic(m, ratio) for m in ms_l]
    up_all = _gather(ups, pv)
    band_mean = np.array([np.mean(up_all[b], dtype=np.float64) for b in range(c)])
    band_std = np.array([_std(up_all[b]) for b in range(c)])
    del up_all
    lps = [_lowpass(p - np.float32(p_mean), gnyq, ratio) for p in pan_l]
    s_lp = {g: _std(_gather([lp[g] for lp in lps], pv)) for g in set(gnyq)}
    scale = np.array([band_std[b] / s_lp[g] if s_lp[g] > 0 else 0.0 for b, g in enumerate(gnyq)])
    return HPMStats(pan_mean=p_mean, band_mean=band_mean, scale=scale, gnyq=gnyq)


#: Upper bound of the HPM modulation factor pan / pan_lowpass (real detail stays well below).
HPM_MAX_MODULATION = 4.0


def mtf_glp_hpm_apply(ms: np.ndarray, pan: np.ndarray, ratio: int, stats: HPMStats) -> np.ndarray:
    """MTF-GLP-HPM with given coefficients; local (MTF filter + bicubic support), so tiles agree.

    Args:
        ms: (C, h, w); pan: (H, W) or (1, H, W); ratio: PAN/MS ratio.
        stats: From :func:`mtf_glp_hpm_stats` on the whole raster.

    Returns:
        (C, H, W) float32.
    """
    m, p, ratio = _inputs(ms, pan, ratio, "mtf_glp_hpm")
    c = m.shape[0]
    if len(stats.gnyq) != c:
        raise PSDNetInputError(
            f"mtf_glp_hpm: stats were fitted for {len(stats.gnyq)} bands, ms has {c}; refit them.")
    up = upsample_bicubic(m, ratio)
    # Low-pass of the zero-mean PAN; the matching below is affine, so it commutes.
    p0 = p - np.float32(stats.pan_mean)
    lps = _lowpass(p0, stats.gnyq, ratio)
    out = np.empty_like(up)
    for b in range(c):
        mu_b = np.float32(stats.band_mean[b])
        scale = np.float32(stats.scale[b])
        pan_b = p0 * scale + mu_b
        pan_lp = lps[stats.gnyq[b]] * scale + mu_b
        # Radiances are non-negative, so the modulation pan_b / pan_lp is ~1 +- detail. Where the
        # matched low-pass PAN comes near or below zero (band contrast far above its mean, e.g.
        # uncorrelated bands) the plain ratio explodes (seen: +-3e6); floor the denominator at 1 %
        # of the band mean and bound the factor to [0, HPM_MAX_MODULATION].
        floor = np.float32(0.01 * max(abs(float(mu_b)), 1e-6))
        mod = pan_b / np.maximum(pan_lp, floor)
        out[b] = up[b] * np.clip(mod, np.float32(0.0), np.float32(HPM_MAX_MODULATION))
    return out


def mtf_glp_hpm(ms: np.ndarray, pan: np.ndarray, ratio: int, sensor: str | None = None) -> np.ndarray:
    """MTF-GLP with high-pass modulation.

    For each band b: the PAN is mean/std-matched to ``ms_up_b`` (gain from the low-pass
    PAN's std, so the matched low-pass PAN has the band's contrast), low-passed with the
    band's MTF filter, decimated and re-interpolated like the MS (the Laplacian-pyramid
    step), and ``out_b = ms_up_b * pan_b / pan_lp_b``.

    The PAN low-pass uses the MS band gains, not the PAN gain: ``pan_lp_b`` must have the
    spatial response of MS band b for ``pan_b / pan_lp_b`` to hold exactly the detail that
    band lacks (this is what makes the GLP "MTF matched").

    The statistics come from this image (``mtf_glp_hpm_apply(ms, pan, ratio,
    mtf_glp_hpm_stats(ms, pan, ratio))``); the engine fits them once per raster.

    Args:
        ms: (C, h, w); pan: (H, W) or (1, H, W); ratio: PAN/MS ratio.
        sensor: Sensor name for the MTF gains (None = 0.3 per band).

    Returns:
        (C, H, W) float32.
    """
    return mtf_glp_hpm_apply(ms, pan, ratio, mtf_glp_hpm_stats(ms, pan, ratio, sensor))


#: Method name -> function, as used by the engine and the benchmark.
METHODS = {"exp": exp, "brovey": brovey, "gsa": gsa, "mtf_glp_hpm": mtf_glp_hpm}
#: Methods whose statistics are fitted once per raster: name -> (stats, apply).
FITTED = {"gsa": (gsa_stats, gsa_apply), "mtf_glp_hpm": (mtf_glp_hpm_stats, mtf_glp_hpm_apply)}


def fit(method: str, ms: Windows, pan: Windows, ratio: int, sensor: str | None = None,
        valid: Windows | None = None) -> GSAStats | HPMStats | None:
    """Global statistics of ``method`` (None for the stateless ``exp`` and ``brovey``)."""
    if method not in METHODS:
        raise PSDNetInputError(f"Classical method {method!r} is unknown; use one of {', '.join(METHODS)}.")
    if method not in FITTED:
        return None
    return FITTED[method][0](ms, pan, ratio, sensor, valid)


def apply(method: str, ms: np.ndarray, pan: np.ndarray, ratio: int,
          stats: GSAStats | HPMStats | None = None) -> np.ndarray:
    """Run ``method`` on one tile with global ``stats`` from :func:`fit`.

    ``stats=None`` for a fitted method estimates them from this tile (the one-call form:
    right for a whole image, seams for tiles).
    """
    if method not in METHODS:
        raise PSDNetInputError(f"Classical method {method!r} is unknown; use one of {', '.join(METHODS)}.")
    if method not in FITTED or stats is None:
        return METHODS[method](ms, pan, ratio)
    return FITTED[method][1](ms, pan, ratio, stats)
