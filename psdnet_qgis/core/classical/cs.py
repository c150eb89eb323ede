"""Component-substitution pansharpening: Brovey, GSA and BDSD-PC (pure numpy).

Each injects the PAN minus an intensity built from the upsampled MS bands:

* ``brovey``: GDAL's weighted Brovey, what QGIS's built-in Pansharpening runs
  (``ms_up_b * pan / sum_k(w_k ms_up_k)``, equal weights ``1/C`` by default); stateless.
* ``gsa``: Gram-Schmidt adaptive (Aiazzi et al. 2007): intensity from a least-squares fit of
  the low-resolution PAN on the MS bands plus a constant, detail ``PAN0 - I0`` (zero-mean,
  no std equalisation), gains ``cov(ms_b, I)/var(I)``.
* ``bdsd_pc``: band-dependent spatial detail with physical constraints (Vivone 2019): per band,
  ``out_b = ms_up_b + g_b (pan - sum_k w_bk ms_up_k)`` with ``g_b, w_bk >= 0`` fitted by
  non-negative least squares at reduced resolution.

gsa and bdsd_pc come in the three call forms of :mod:`.base` (one call, ``*_stats``,
``*_apply``); their arguments and return values are described there once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...errors import PSDNetInputError
from .. import mtf
from ..resample import upsample_bicubic
from ..wald import dilate
from .base import (
    Windows,
    apply_inputs,
    check_inputs,
    check_windows,
    gather,
    nnls_gram,
    pan_mask,
    std64,
)

__all__ = ["brovey", "GSAStats", "gsa_stats", "gsa_apply", "gsa", "BDSDStats", "bdsd_pc_stats",
           "bdsd_pc_apply", "bdsd_pc", "BDSD_CONTEXT"]


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
    m, p, ratio = check_inputs(ms, pan, ratio, "brovey")
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


# ------------------------------------------------------------------ GSA


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

    @property
    def bands(self) -> int:
        return np.size(self.alpha) - 1

    def matches(self, c: int) -> bool:
        return np.shape(self.alpha) == (c + 1,)

    def to_dict(self) -> dict:
        return {"alpha": [float(a) for a in self.alpha], "intensity_mean": self.intensity_mean,
                "intensity_std": self.intensity_std, "pan_mean": self.pan_mean,
                "pan_std": self.pan_std, "gains": [float(g) for g in self.gains]}


def gsa_stats(ms: Windows, pan: Windows, ratio: int, sensor: str | None = None,
              valid: Windows | None = None, intensity_bands: Sequence[int] | None = None) -> GSAStats:
    """Estimate the GSA coefficients (see :func:`gsa`) once, for a whole raster.

    ``sensor`` selects the PAN MTF that degrades the PAN to the MS scale; with ``valid`` the
    PAN is degraded over the whole window first. Arguments: the ``*_stats`` form of
    :mod:`.base`, and ``intensity_bands``: the 0-based bands the intensity is regressed on
    (None: all); the others get intensity weight 0, so the detail (and every band's result)
    does not depend on them (the calibration's candidate: a band the network fuses gets what a
    run of the network's bands alone gives it; SWIR stays out of a Landsat intensity).
    """
    ms_l, pan_l, val_l, ratio = check_windows(ms, pan, ratio, valid, "gsa")
    c = ms_l[0].shape[0]
    used = list(range(c)) if intensity_bands is None else sorted({int(b) for b in intensity_bands})
    if not used or used[0] < 0 or used[-1] >= c:
        raise PSDNetInputError(f"gsa: intensity bands {list(intensity_bands or [])} for {c} MS bands; "
                               f"pass 0-based band numbers below {c}.")
    g_pan = mtf.gnyq_for(sensor, c).pan
    # 1. least squares of the degraded PAN on the MS bands and a constant (MS scale)
    lr = [mtf.degrade(p, g_pan, ratio) for p in pan_l]
    x = gather([m[used] for m in ms_l], val_l)
    design = np.concatenate([x, np.ones((1, x.shape[1]), np.float32)]).T.astype(np.float64)
    y = gather([a[None] for a in lr], val_l)[0].astype(np.float64)
    fitted, *_ = np.linalg.lstsq(design, y, rcond=None)
    alpha = np.zeros(c + 1)
    alpha[used] = fitted[:-1]
    alpha[c] = fitted[-1]
    # 2. intensity statistics and injection gains (PAN scale, on the upsampled MS)
    pv = [pan_mask(v, ratio) for v in val_l]
    ups = [upsample_bicubic(m, ratio) for m in ms_l]
    a32, a0 = alpha[:c].astype(np.float32), np.float32(alpha[c])
    i_all = gather([np.tensordot(a32, u, axes=1) + a0 for u in ups], pv)
    var_i = float(np.var(i_all, dtype=np.float64))
    i_mean = float(np.mean(i_all, dtype=np.float64))
    p_all = gather(pan_l, pv)
    if var_i > 0.0:
        # cov(ms_up_b, I) = ms_up_b . (I - mean(I)) / n, the band mean drops out.
        i0 = i_all - np.float32(i_mean)
        gains = (gather(ups, pv) @ i0).astype(np.float64) / i0.size / var_i
    else:
        gains = np.zeros(c)
    return GSAStats(alpha=alpha, intensity_mean=i_mean, intensity_std=float(np.sqrt(var_i)),
                    pan_mean=float(np.mean(p_all, dtype=np.float64)), pan_std=std64(p_all), gains=gains)


def gsa_apply(ms: np.ndarray, pan: np.ndarray, ratio: int, stats: GSAStats,
              up: np.ndarray | None = None) -> np.ndarray:
    """GSA with given coefficients (from :func:`gsa_stats`): bicubic support and pointwise."""
    m, p, ratio, up = apply_inputs(ms, pan, ratio, "gsa", stats, up)
    c = m.shape[0]
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

    ``gsa_apply(ms, pan, ratio, gsa_stats(ms, pan, ratio, sensor))``: the one-call form of
    :mod:`.base`; the engine fits the statistics once per raster and applies them
    per tile.
    """
    return gsa_apply(ms, pan, ratio, gsa_stats(ms, pan, ratio, sensor))


# ------------------------------------------------------------------ BDSD-PC


@dataclass(frozen=True)
class BDSDStats:
    """Global coefficients of :func:`bdsd_pc_apply`.

    Attributes:
        gamma: (C, C + 1) float64, row b = ``[g_b, g_b w_b1, ..., g_b w_bC]``, all >= 0:
            ``out_b = ms_up_b + g_b pan - sum_k g_b w_bk ms_up_k``.
    """

    gamma: np.ndarray

    @property
    def bands(self) -> int:
        return np.shape(self.gamma)[0]

    def matches(self, c: int) -> bool:
        return np.shape(self.gamma) == (c, c + 1)

    def to_dict(self) -> dict:
        return {"gamma": [[float(v) for v in row] for row in self.gamma]}


#: Context (MS px) around the counted pixels that BDSD-PC's reduced-resolution filtering
#: uses: the engine's window margin (``core.tiling.CLASSICAL_MARGIN``).
BDSD_CONTEXT = 8


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

    ``sensor`` selects the MS and the PAN MTF gains. Each window's h, w are cropped to
    multiples of ``ratio`` for the reduced-resolution pair; with ``valid`` only the counted
    pixels and their :data:`BDSD_CONTEXT` enter the filtering (not the whole window).
    Arguments otherwise: the ``*_stats`` form of :mod:`.base`.
    """
    ms_l, pan_l, val_l, ratio = check_windows(ms, pan, ratio, valid, "bdsd_pc")
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
            near = dilate(keep, BDSD_CONTEXT)
            ms_lr = _masked_degrade(m, near, gains.ms, ratio)
            pan_lr = _masked_degrade(p[None], pan_mask(near, ratio), gains.pan, ratio)[0]
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
    gamma = np.stack([nnls_gram(gram[b], rhs[b]) for b in range(c)])
    return BDSDStats(gamma=gamma)


def bdsd_pc_apply(ms: np.ndarray, pan: np.ndarray, ratio: int, stats: BDSDStats,
                  up: np.ndarray | None = None) -> np.ndarray:
    """BDSD-PC with given coefficients (from :func:`bdsd_pc_stats`): pointwise on ms_up."""
    m, p, ratio, up = apply_inputs(ms, pan, ratio, "bdsd_pc", stats, up)
    gamma = np.asarray(stats.gamma, dtype=np.float32)
    out = up.copy()
    for b in range(m.shape[0]):
        out[b] += gamma[b, 0] * p - np.tensordot(gamma[b, 1:], up, axes=1)
    return out


def bdsd_pc(ms: np.ndarray, pan: np.ndarray, ratio: int, sensor: str | None = None) -> np.ndarray:
    """Band-dependent spatial detail with physical constraints (Vivone, TGRS 2019).

    ``out_b = ms_up_b + g_b (pan - sum_k w_bk ms_up_k)``, ``g_b >= 0``, ``w_bk >= 0``: per band,
    ``[g_b, g_b w_b]`` is the non-negative least-squares solution at reduced resolution
    (the MS degraded by its MTF and interpolated back, the PAN degraded to the MS scale, the
    original MS as target), one global set of coefficients per raster.

    ``bdsd_pc_apply(ms, pan, ratio, bdsd_pc_stats(ms, pan, ratio, sensor))``: the one-call form
    of :mod:`.base`.
    """
    return bdsd_pc_apply(ms, pan, ratio, bdsd_pc_stats(ms, pan, ratio, sensor))
