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
  the low-resolution PAN on the MS bands plus a constant, detail ``PAN0 - I0`` (zero-mean,
  no std equalisation), gains ``cov(ms_b, I)/var(I)``.
* ``mtf_glp_hpm``: generalised Laplacian pyramid with the sensor's MTF filters and high-pass
  modulation (``ms_up_b * pan_b / pan_lp_b``, PAN mean/std-matched to each band).
* ``mtf_glp_fs``: the same pyramid with additive detail ``pan - pan_lp_b`` and injection gains
  regressed at full scale (Vivone et al. 2018).
* ``bdsd_pc``: band-dependent spatial detail with physical constraints (Vivone 2019): per band,
  ``out_b = ms_up_b + g_b (pan - sum_k w_bk ms_up_k)`` with ``g_b, w_bk >= 0`` fitted by
  non-negative least squares at reduced resolution.

All of them follow the definitions of Vivone et al.'s benchmark ("A new benchmarking
framework for pansharpening", IEEE GRSM 2021); ``tests/core/reference_pansharpening.py``
holds independent whole-image implementations they are pinned against.

gsa, mtf_glp_hpm, mtf_glp_fs and bdsd_pc depend on image statistics. For tiled runs they are
split into ``*_stats`` (small frozen dataclasses, fitted once per raster, on the whole image
or on a list of full-resolution windows with masks) and ``*_apply`` (local given the stats,
so tiles agree to float rounding). The
one-call forms are ``apply(stats of the same image)``. :func:`fit` / :func:`apply` dispatch
by method name (``fit`` returns None for the stateless exp and brovey).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import PSDNetInputError
from . import mtf
from .resample import upsample_bicubic

__all__ = [
    "exp", "brovey", "gsa", "mtf_glp_hpm", "METHODS", "FITTED", "GSAStats", "HPMStats", "gsa_stats",
    "gsa_apply", "mtf_glp_hpm_stats", "mtf_glp_hpm_apply", "fit", "apply", "mtf_glp_fs", "FSStats",
    "mtf_glp_fs_stats", "mtf_glp_fs_apply", "bdsd_pc", "BDSDStats", "bdsd_pc_stats", "bdsd_pc_apply",
    "HELP",
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
# The fitted methods need image statistics (regression weights, gains, mean/std matching).
# Estimated per tile they make neighbouring tiles disagree (seams of up to several band
# std), so they are split into ``*_stats`` (run once per raster, on the whole image or on
# windows of it) and ``*_apply`` (pointwise/local given the stats, so a tiled run equals a
# whole-image run up to float rounding). ``gsa(ms, pan, r)`` = apply(stats of the same image).

#: One image or a list of windows of one raster.
Windows = np.ndarray | Sequence[np.ndarray]


@dataclass(frozen=True)
class GSAStats:
    """Global coefficients of :func:`gsa_apply`.

    Attributes:
        alpha: (C + 1,) float64 intensity weights of the MS bands, then the constant.
        intensity_mean, intensity_std: Mean and std of the intensity at PAN scale.
        pan_mean, pan_std: PAN mean and std (the detail is the zero-mean PAN minus the
            zero-mean intensity; a flat PAN or intensity injects nothing).
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
    for m, p, v in zip(ms_l, pan_l, val_l, strict=False):
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
    for a, v in zip(arrays, masks, strict=False):
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
        raise _refit_error("gsa", np.size(stats.alpha) - 1, c)
    up = upsample_bicubic(m, ratio)
    if stats.intensity_std <= 0.0 or stats.pan_std <= 0.0:
        return up  # flat PAN or intensity: no detail to inject
    intensity = np.tensordot(stats.alpha[:c].astype(np.float32), up, axes=1) + np.float32(stats.alpha[c])
    # The detail is the zero-mean PAN minus the zero-mean intensity, with no std equalisation
    # (Vivone et al. 2021): the regression already put I on the PAN's scale, and shrinking the
    # PAN to std(I) would leave a negative copy of its low-pass part in the detail.
    detail = (p - np.float32(stats.pan_mean)) - (intensity - np.float32(stats.intensity_mean))
    up += np.asarray(stats.gains, dtype=np.float32)[:, None, None] * detail[None]
    return up


def gsa(ms: np.ndarray, pan: np.ndarray, ratio: int, sensor: str | None = None) -> np.ndarray:
    """Gram-Schmidt adaptive (GSA) component substitution.

    1. ``alpha`` = least squares of the PAN degraded to the MS scale (sensor PAN MTF +
       decimation) on the MS bands and a constant;
    2. intensity ``I = sum_b alpha_b ms_up_b + alpha_0`` at PAN scale;
    3. detail ``D = (pan - mean(pan)) - (I - mean(I))``: no std equalisation of the PAN, the
       regression of step 1 already gives ``I`` the PAN's scale;
    4. ``out_b = ms_up_b + g_b D``, ``g_b = cov(ms_up_b, I) / var(I)``.

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


def _mtf_windows(ms: Windows, pan: Windows, ratio: int, valid: Windows | None, method: str,
                 sensor: str | None) -> tuple[list[np.ndarray], list[np.ndarray], list, int, tuple[float, ...]]:
    """The windows of an MTF-based fit: (ms list, pan list, PAN masks, ratio, per-band gains)."""
    ms_l, pan_l, val_l, ratio = _windows(ms, pan, ratio, valid, method)
    gnyq = tuple(float(g) for g in mtf.gnyq_for(sensor, ms_l[0].shape[0]).ms)
    return ms_l, pan_l, [_pan_mask(v, ratio) for v in val_l], ratio, gnyq


def _refit_error(method: str, fitted: int, c: int) -> PSDNetInputError:
    return PSDNetInputError(f"{method}: stats were fitted for {fitted} bands, ms has {c}; refit them.")


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
    ms_l, pan_l, pv, ratio, gnyq = _mtf_windows(ms, pan, ratio, valid, "mtf_glp_hpm", sensor)
    c = len(gnyq)
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
        raise _refit_error("mtf_glp_hpm", len(stats.gnyq), c)
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


@dataclass(frozen=True)
class FSStats:
    """Global coefficients of :func:`mtf_glp_fs_apply`.

    Attributes:
        gains: (C,) float64 injection gains ``cov(ms_up_b, pan_lp_b) / var(pan_lp_b)``.
        gnyq: (C,) MTF gains at Nyquist of the per-band PAN low-pass.
    """

    gains: np.ndarray
    gnyq: tuple[float, ...]

    def to_dict(self) -> dict:
        return {"gains": [float(g) for g in self.gains], "gnyq": [float(g) for g in self.gnyq]}


def mtf_glp_fs_stats(ms: Windows, pan: Windows, ratio: int, sensor: str | None = None,
                     valid: Windows | None = None) -> FSStats:
    """Estimate the MTF-GLP-FS injection gains (see :func:`mtf_glp_fs`) once, at full scale.

    Args:
        ms: (C, h, w) image, or a list of such windows of one raster.
        pan: (H, W) or (1, H, W) PAN (or list of windows), ``H = h * ratio``.
        ratio: PAN/MS ratio.
        sensor: Sensor name for the MS MTF gains (None = 0.3 per band).
        valid: Optional (h, w) bool mask (or list) of the MS pixels (with their PAN blocks)
            that enter the statistics; filtering runs over the whole window first.

    Returns:
        :class:`FSStats`.
    """
    ms_l, pan_l, pv, ratio, gnyq = _mtf_windows(ms, pan, ratio, valid, "mtf_glp_fs", sensor)
    c = len(gnyq)
    up_all = _gather([upsample_bicubic(m, ratio) for m in ms_l], pv).astype(np.float64)
    gains = np.zeros(c)
    for g in set(gnyq):
        # Full scale: the PAN low-passed to the MS bands' resolution but not decimated, so the
        # regression sees the same grid as the interpolated MS (no reduced-resolution pair).
        lp = _gather([mtf.mtf_filter(p, g, ratio)[None] for p in pan_l], pv)[0].astype(np.float64)
        lp -= lp.mean()
        var = float(np.mean(lp * lp))
        for b in (b for b, gb in enumerate(gnyq) if gb == g):
            if var > 0.0:
                gains[b] = float(np.mean((up_all[b] - up_all[b].mean()) * lp)) / var
    return FSStats(gains=gains, gnyq=gnyq)


def mtf_glp_fs_apply(ms: np.ndarray, pan: np.ndarray, ratio: int, stats: FSStats) -> np.ndarray:
    """MTF-GLP-FS with given gains; local (MTF filter + bicubic support), so tiles agree.

    Args:
        ms: (C, h, w); pan: (H, W) or (1, H, W); ratio: PAN/MS ratio.
        stats: From :func:`mtf_glp_fs_stats` on the whole raster.

    Returns:
        (C, H, W) float32.
    """
    m, p, ratio = _inputs(ms, pan, ratio, "mtf_glp_fs")
    c = m.shape[0]
    if len(stats.gnyq) != c:
        raise _refit_error("mtf_glp_fs", len(stats.gnyq), c)
    up = upsample_bicubic(m, ratio)
    lps = _lowpass(p, stats.gnyq, ratio)
    for b in range(c):
        up[b] += np.float32(stats.gains[b]) * (p - lps[stats.gnyq[b]])
    return up


def mtf_glp_fs(ms: np.ndarray, pan: np.ndarray, ratio: int, sensor: str | None = None) -> np.ndarray:
    """MTF-GLP with full-scale regression of the injection gains (Vivone et al., TIP 2018).

    ``out_b = ms_up_b + g_b (pan - pan_L,b)``, ``pan_L,b`` the PAN MTF-filtered with band b's
    gain, decimated and re-interpolated (the Laplacian-pyramid step), ``g_b = cov(ms_up_b,
    pan_lp_b) / var(pan_lp_b)`` with ``pan_lp_b`` the same low-pass without decimation: the
    gains come from the full-resolution data, with no assumption that they hold across scales.

    Args:
        ms: (C, h, w); pan: (H, W) or (1, H, W); ratio: PAN/MS ratio.
        sensor: Sensor name for the MTF gains (None = 0.3 per band).

    Returns:
        (C, H, W) float32.
    """
    return mtf_glp_fs_apply(ms, pan, ratio, mtf_glp_fs_stats(ms, pan, ratio, sensor))


@dataclass(frozen=True)
class BDSDStats:
    """Global coefficients of :func:`bdsd_pc_apply`.

    Attributes:
        gamma: (C, C + 1) float64, row b = ``[g_b, g_b w_b1, ..., g_b w_bC]``, all >= 0:
            ``out_b = ms_up_b + g_b pan - sum_k g_b w_bk ms_up_k``.
    """

    gamma: np.ndarray

    def to_dict(self) -> dict:
        return {"gamma": [[float(v) for v in row] for row in self.gamma]}


def _nnls_gram(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """argmin_x x'Gx - 2 b'x subject to x >= 0, exact, for the few unknowns of BDSD.

    The problem is convex, so its minimiser is the unconstrained minimiser over some set of
    free variables that happens to be non-negative; with at most C + 1 = 9 unknowns every
    set (512) can be tried, which is exact and needs no iteration tolerance.
    """
    n = rhs.size
    best, best_obj = np.zeros(n), 0.0
    for mask in range(1, 1 << n):
        free = [i for i in range(n) if mask >> i & 1]
        sub = gram[np.ix_(free, free)]
        x_s, *_ = np.linalg.lstsq(sub, rhs[free], rcond=None)
        if np.any(x_s < 0.0):
            continue
        obj = float(x_s @ sub @ x_s - 2.0 * rhs[free] @ x_s)
        if obj < best_obj:
            best_obj = obj
            best = np.zeros(n)
            best[free] = x_s
    return best


#: Context (MS px) around the counted pixels that BDSD-PC's reduced-resolution filtering
#: uses: the engine's window margin (``core.tiling.CLASSICAL_MARGIN``).
BDSD_CONTEXT = 8


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """(h, w) bool mask grown by a square of ``radius`` px (array edges do not count as False)."""
    out = mask.copy()
    for axis in (0, 1):
        grown = out.copy()
        n = out.shape[axis]
        for d in range(1, radius + 1):
            if d >= n:
                break
            lo = [slice(None)] * 2
            hi = [slice(None)] * 2
            lo[axis], hi[axis] = slice(0, n - d), slice(d, n)
            grown[tuple(lo)] |= out[tuple(hi)]
            grown[tuple(hi)] |= out[tuple(lo)]
        out = grown
    return out


def _masked_degrade(img: np.ndarray, mask: np.ndarray, gnyq: Sequence[float] | float, ratio: int
                    ) -> np.ndarray:
    """``mtf.degrade`` of (C, H, W) ``img`` using only the pixels where ``mask`` (H, W) holds."""
    w = np.broadcast_to(mask.astype(np.float32), img.shape)
    num = mtf.degrade(img * w, gnyq, ratio)
    den = mtf.degrade(np.ascontiguousarray(w), gnyq, ratio)
    return np.where(den > 0.0, num / np.where(den > 0.0, den, 1.0), 0.0).astype(np.float32)


def bdsd_pc_stats(ms: Windows, pan: Windows, ratio: int, sensor: str | None = None,
                  valid: Windows | None = None) -> BDSDStats:
    """Fit the BDSD-PC coefficients (see :func:`bdsd_pc`) once, at reduced resolution.

    Args:
        ms: (C, h, w) image, or a list of such windows of one raster (h, w are cropped to
            multiples of ``ratio`` for the reduced-resolution pair).
        pan: (H, W) or (1, H, W) PAN (or list of windows), ``H = h * ratio``.
        ratio: PAN/MS ratio.
        sensor: Sensor name for the MS and PAN MTF gains (None = defaults).
        valid: Optional (h, w) bool mask (or list) of the MS pixels that enter the fit.

    Returns:
        :class:`BDSDStats`.
    """
    ms_l, pan_l, val_l, ratio = _windows(ms, pan, ratio, valid, "bdsd_pc")
    c = ms_l[0].shape[0]
    gains = mtf.gnyq_for(sensor, c)
    gram = np.zeros((c, c + 1, c + 1))
    rhs = np.zeros((c, c + 1))
    used = 0
    for m, p, v in zip(ms_l, pan_l, val_l, strict=True):
        hh, ww = m.shape[1] // ratio * ratio, m.shape[2] // ratio * ratio
        if hh < ratio or ww < ratio:
            continue
        m, p = m[:, :hh, :ww], p[: hh * ratio, : ww * ratio]
        # Reduced resolution: the MS degraded by its MTF and interpolated back is the
        # "interpolated MS", the PAN degraded to the MS scale the "PAN", the MS the target.
        if v is None:
            keep = np.ones((hh, ww), bool)
            ms_lr = mtf.degrade(m, gains.ms, ratio)
            pan_lr = mtf.degrade(p, gains.pan, ratio)
        else:
            # The MS-scale filter reaches far further (41 MS px) than the context margin other
            # methods rely on, so only the counted pixels and their margin of BDSD_CONTEXT MS px
            # enter the filtering (normalised convolution: filter of value * mask over filter of
            # mask); nodata or other data further out never leak into the fit.
            keep = v[:hh, :ww]
            near = _dilate(keep, BDSD_CONTEXT)
            ms_lr = _masked_degrade(m, near, gains.ms, ratio)
            pan_lr = _masked_degrade(p[None], _pan_mask(near, ratio), gains.pan, ratio)[0]
        if not keep.any():
            continue
        ms_lr_up = upsample_bicubic(ms_lr, ratio)
        used += int(keep.sum())
        design = np.concatenate([pan_lr[None], -ms_lr_up])[:, keep].astype(np.float64)  # (C+1, N)
        target = (m - ms_lr_up)[:, keep].astype(np.float64)  # (C, N)
        g = design @ design.T
        gram += g[None]
        rhs += target @ design.T
    if used == 0:
        raise PSDNetInputError("bdsd_pc: no valid pixel of at least ratio x ratio MS px to fit on; "
                               "check the nodata masks or use a larger image.")
    gamma = np.stack([_nnls_gram(gram[b], rhs[b]) for b in range(c)])
    return BDSDStats(gamma=gamma)


def bdsd_pc_apply(ms: np.ndarray, pan: np.ndarray, ratio: int, stats: BDSDStats) -> np.ndarray:
    """BDSD-PC with given coefficients: pointwise on the interpolated MS, so tiles agree.

    Args:
        ms: (C, h, w); pan: (H, W) or (1, H, W); ratio: PAN/MS ratio.
        stats: From :func:`bdsd_pc_stats` on the whole raster.

    Returns:
        (C, H, W) float32.
    """
    m, p, ratio = _inputs(ms, pan, ratio, "bdsd_pc")
    c = m.shape[0]
    if np.shape(stats.gamma) != (c, c + 1):
        raise _refit_error("bdsd_pc", np.shape(stats.gamma)[0], c)
    up = upsample_bicubic(m, ratio)
    gamma = np.asarray(stats.gamma, dtype=np.float32)
    out = up.copy()
    for b in range(c):
        out[b] += gamma[b, 0] * p - np.tensordot(gamma[b, 1:], up, axes=1)
    return out


def bdsd_pc(ms: np.ndarray, pan: np.ndarray, ratio: int, sensor: str | None = None) -> np.ndarray:
    """Band-dependent spatial detail with physical constraints (Vivone, TGRS 2019).

    ``out_b = ms_up_b + g_b (pan - sum_k w_bk ms_up_k)``, ``g_b >= 0``, ``w_bk >= 0``: per band,
    ``[g_b, g_b w_b]`` is the non-negative least-squares solution at reduced resolution
    (the MS degraded by its MTF and interpolated back, the PAN degraded to the MS scale, the
    original MS as target), one global set of coefficients per raster.

    Args:
        ms: (C, h, w); pan: (H, W) or (1, H, W); ratio: PAN/MS ratio.
        sensor: Sensor name for the MTF gains (None = defaults).

    Returns:
        (C, H, W) float32.
    """
    return bdsd_pc_apply(ms, pan, ratio, bdsd_pc_stats(ms, pan, ratio, sensor))


#: Method name -> function, as used by the engine and the benchmark.
METHODS = {"exp": exp, "brovey": brovey, "gsa": gsa, "mtf_glp_hpm": mtf_glp_hpm,
           "mtf_glp_fs": mtf_glp_fs, "bdsd_pc": bdsd_pc}
#: Methods whose statistics are fitted once per raster: name -> (stats, apply).
FITTED = {"gsa": (gsa_stats, gsa_apply), "mtf_glp_hpm": (mtf_glp_hpm_stats, mtf_glp_hpm_apply),
          "mtf_glp_fs": (mtf_glp_fs_stats, mtf_glp_fs_apply), "bdsd_pc": (bdsd_pc_stats, bdsd_pc_apply)}
#: One line per method: when it is the better choice (help texts of the algorithms and CLI).
HELP = {
    "exp": "EXP: bicubic upsampling, no PAN detail; the floor every method must beat.",
    "brovey": "Brovey: what QGIS's built-in Pansharpening runs; sharp but colour-distorting.",
    "gsa": "GSA: component substitution; sharpest, best when the PAN covers the MS bands' spectrum.",
    "mtf_glp_hpm": "MTF-GLP-HPM: multiplicative MTF-matched detail; good colour, robust on bright/dark contrast.",
    "mtf_glp_fs": "MTF-GLP-FS: MTF-matched detail with gains fitted at full scale; often the best "
                  "all-rounder, also for bands the PAN covers poorly.",
    "bdsd_pc": "BDSD-PC: per-band detail weights fitted by constrained least squares; best when bands "
               "differ in how much PAN detail they take (e.g. NIR, 8-band MS).",
}


def fit(method: str, ms: Windows, pan: Windows, ratio: int, sensor: str | None = None,
        valid: Windows | None = None) -> GSAStats | HPMStats | FSStats | BDSDStats | None:
    """Global statistics of ``method`` (None for the stateless ``exp`` and ``brovey``)."""
    if method not in METHODS:
        raise PSDNetInputError(f"Classical method {method!r} is unknown; use one of {', '.join(METHODS)}.")
    if method not in FITTED:
        return None
    return FITTED[method][0](ms, pan, ratio, sensor, valid)


def apply(method: str, ms: np.ndarray, pan: np.ndarray, ratio: int,
          stats: GSAStats | HPMStats | FSStats | BDSDStats | None = None) -> np.ndarray:
    """Run ``method`` on one tile with global ``stats`` from :func:`fit`.

    ``stats=None`` for a fitted method estimates them from this tile (the one-call form:
    right for a whole image, seams for tiles).
    """
    if method not in METHODS:
        raise PSDNetInputError(f"Classical method {method!r} is unknown; use one of {', '.join(METHODS)}.")
    if method not in FITTED or stats is None:
        return METHODS[method](ms, pan, ratio)
    return FITTED[method][1](ms, pan, ratio, stats)
