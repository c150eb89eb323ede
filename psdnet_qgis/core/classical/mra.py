"""Multiresolution-analysis pansharpening: MTF-GLP-HPM and MTF-GLP-FS (pure numpy).

Both take the PAN's detail from a generalised Laplacian pyramid matched to the sensor's MTF:
the PAN low-passed with each MS band's MTF gain, decimated and re-interpolated like the MS.

* ``mtf_glp_hpm``: high-pass modulation (``ms_up_b * pan_b / pan_lp_b``, PAN mean/std-matched
  to each band).
* ``mtf_glp_fs``: additive detail ``pan - pan_lp_b`` with injection gains regressed at full
  scale (Vivone et al. 2018).

Both come in the three call forms of :mod:`.base` (one call, ``*_stats``,
``*_apply``), whose arguments and return values are described there once; ``sensor`` selects
the MS MTF gains.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import mtf
from ..resample import upsample_bicubic
from .base import Windows, apply_inputs, check_windows, gather, pan_mask, std64

__all__ = ["HPMStats", "mtf_glp_hpm_stats", "mtf_glp_hpm_apply", "mtf_glp_hpm", "HPM_MAX_MODULATION",
           "FSStats", "mtf_glp_fs_stats", "mtf_glp_fs_apply", "mtf_glp_fs"]


class _PerBandGains:
    """Band check of stats that hold one MTF gain per band (``gnyq``)."""

    gnyq: tuple[float, ...]

    @property
    def bands(self) -> int:
        return len(self.gnyq)

    def matches(self, c: int) -> bool:
        return len(self.gnyq) == c


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
    ms_l, pan_l, val_l, ratio = check_windows(ms, pan, ratio, valid, method)
    gnyq = tuple(float(g) for g in mtf.gnyq_for(sensor, ms_l[0].shape[0]).ms)
    return ms_l, pan_l, [pan_mask(v, ratio) for v in val_l], ratio, gnyq


# ------------------------------------------------------------------ MTF-GLP-HPM


@dataclass(frozen=True)
class HPMStats(_PerBandGains):
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


def mtf_glp_hpm_stats(ms: Windows, pan: Windows, ratio: int, sensor: str | None = None,
                      valid: Windows | None = None) -> HPMStats:
    """Estimate the MTF-GLP-HPM matching coefficients (see :func:`mtf_glp_hpm`) once."""
    ms_l, pan_l, pv, ratio, gnyq = _mtf_windows(ms, pan, ratio, valid, "mtf_glp_hpm", sensor)
    c = len(gnyq)
    p_mean = float(np.mean(gather(pan_l, pv), dtype=np.float64))
    # the upsampled windows are dropped once gathered, and each window's low-pass PAN once its
    # valid pixels are taken: the fit holds one gathered copy, not the windows as well (the
    # calibration fits on up to 48 windows of 224 px: 38 MB of upsampled MS)
    up_all = gather([upsample_bicubic(m, ratio) for m in ms_l], pv)
    band_mean = np.array([np.mean(up_all[b], dtype=np.float64) for b in range(c)])
    band_std = np.array([std64(up_all[b]) for b in range(c)])
    del up_all
    parts: dict[float, list[np.ndarray]] = {g: [] for g in dict.fromkeys(gnyq)}
    for p, v in zip(pan_l, pv, strict=True):
        lp = _lowpass(p - np.float32(p_mean), gnyq, ratio)
        for g, part in parts.items():
            part.append(gather([lp[g]], [v]))
        del lp
    s_lp = {g: std64(part[0] if len(part) == 1 else np.concatenate(part, axis=-1)) for g, part in parts.items()}
    scale = np.array([band_std[b] / s_lp[g] if s_lp[g] > 0 else 0.0 for b, g in enumerate(gnyq)])
    return HPMStats(pan_mean=p_mean, band_mean=band_mean, scale=scale, gnyq=gnyq)


#: Upper bound of the HPM modulation factor pan / pan_lowpass (real detail stays well below).
HPM_MAX_MODULATION = 4.0


def mtf_glp_hpm_apply(ms: np.ndarray, pan: np.ndarray, ratio: int, stats: HPMStats,
                      up: np.ndarray | None = None) -> np.ndarray:
    """MTF-GLP-HPM with given coefficients (from :func:`mtf_glp_hpm_stats`)."""
    _, p, ratio, up = apply_inputs(ms, pan, ratio, "mtf_glp_hpm", stats, up)
    # Low-pass of the zero-mean PAN; the matching below is affine, so it commutes.
    p0 = p - np.float32(stats.pan_mean)
    lps = _lowpass(p0, stats.gnyq, ratio)
    out = np.empty_like(up)
    for b in range(up.shape[0]):
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

    ``mtf_glp_hpm_apply(ms, pan, ratio, mtf_glp_hpm_stats(ms, pan, ratio, sensor))``: the
    one-call form of :mod:`.base`; the engine fits the statistics once per raster.
    """
    return mtf_glp_hpm_apply(ms, pan, ratio, mtf_glp_hpm_stats(ms, pan, ratio, sensor))


# ------------------------------------------------------------------ MTF-GLP-FS


@dataclass(frozen=True)
class FSStats(_PerBandGains):
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
    """Estimate the MTF-GLP-FS injection gains (see :func:`mtf_glp_fs`) once, at full scale."""
    ms_l, pan_l, pv, ratio, gnyq = _mtf_windows(ms, pan, ratio, valid, "mtf_glp_fs", sensor)
    c = len(gnyq)
    # float32 gathered, one band at a time in float64 (the same values and sums as a float64 copy of
    # all bands, at a quarter of its memory: 57 MB for the calibration's 48 windows of 4 bands)
    up_all = gather([upsample_bicubic(m, ratio) for m in ms_l], pv)
    gains = np.zeros(c)
    for g in set(gnyq):
        # Full scale: the PAN low-passed to the MS bands' resolution but not decimated, so the
        # regression sees the same grid as the interpolated MS (no reduced-resolution pair).
        lp = gather([mtf.mtf_filter(p, g, ratio)[None] for p in pan_l], pv)[0].astype(np.float64)
        lp -= lp.mean()
        var = float(np.mean(lp * lp))
        for b in (b for b, gb in enumerate(gnyq) if gb == g):
            if var > 0.0:
                up_b = up_all[b].astype(np.float64)
                up_b -= up_b.mean()
                up_b *= lp
                gains[b] = float(np.mean(up_b)) / var
    return FSStats(gains=gains, gnyq=gnyq)


def mtf_glp_fs_apply(ms: np.ndarray, pan: np.ndarray, ratio: int, stats: FSStats,
                     up: np.ndarray | None = None) -> np.ndarray:
    """MTF-GLP-FS with given gains (from :func:`mtf_glp_fs_stats`)."""
    _, p, ratio, up = apply_inputs(ms, pan, ratio, "mtf_glp_fs", stats, up)
    lps = _lowpass(p, stats.gnyq, ratio)
    for b in range(up.shape[0]):
        up[b] += np.float32(stats.gains[b]) * (p - lps[stats.gnyq[b]])
    return up


def mtf_glp_fs(ms: np.ndarray, pan: np.ndarray, ratio: int, sensor: str | None = None) -> np.ndarray:
    """MTF-GLP with full-scale regression of the injection gains (Vivone et al., TIP 2018).

    ``out_b = ms_up_b + g_b (pan - pan_L,b)``, ``pan_L,b`` the PAN MTF-filtered with band b's
    gain, decimated and re-interpolated (the Laplacian-pyramid step), ``g_b = cov(ms_up_b,
    pan_lp_b) / var(pan_lp_b)`` with ``pan_lp_b`` the same low-pass without decimation: the
    gains come from the full-resolution data, with no assumption that they hold across scales.

    ``mtf_glp_fs_apply(ms, pan, ratio, mtf_glp_fs_stats(ms, pan, ratio, sensor))``: the
    one-call form of :mod:`.base`.
    """
    return mtf_glp_fs_apply(ms, pan, ratio, mtf_glp_fs_stats(ms, pan, ratio, sensor))
