"""The Wald reduced-resolution pair of a real scene, with what stays valid after degradation (numpy).

Training (``training.data.make_wald_pair``) and the engine's per-scene calibration
(``engine.calibration``) both degrade a real PAN + MS by the ratio with the sensor's MTF and
use the original MS as the reference: one implementation, so the calibration fits on exactly
the kind of pair the networks were trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from .mtf import degrade, mtf_filter
from .resample import upsample_bicubic

#: Fraction of a degraded pixel's filter weight that may come from invalid input before the
#: pixel counts as invalid.
CONTAMINATION = 1e-3


class DegradedPair(NamedTuple):
    """A scene degraded by the ratio, and validity masks (``r`` = ratio, h, w multiples of r).

    Attributes:
        ms_lr: (C, h/r, w/r) float32 degraded MS (invalid input pixels filled with band means).
        pan_lr: (1, h, w) float32 degraded PAN.
        valid: (h, w) bool reference pixels whose own value and whose inputs are valid.
        lr_valid: (h/r, w/r) bool degraded MS pixels untouched by invalid input.
        pan_lr_valid: (h, w) bool degraded PAN pixels untouched by invalid input.
    """

    ms_lr: np.ndarray
    pan_lr: np.ndarray
    valid: np.ndarray
    lr_valid: np.ndarray
    pan_lr_valid: np.ndarray


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of a (H, W) mask by a (2 radius + 1)^2 square (box sum)."""
    if radius <= 0 or not mask.any():
        return mask.copy()
    m = np.pad(mask.astype(np.int32), radius)
    c = np.cumsum(np.cumsum(m, 0), 1)
    c = np.pad(c, ((1, 0), (1, 0)))
    k = 2 * radius + 1
    s = c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]
    return s > 0


def fill_invalid(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Replace invalid pixels of (C, H, W) x by each band's valid mean (so the MTF
    filter does not smear fill values far; the masks exclude the touched pixels)."""
    out = x.astype(np.float32, copy=True)
    if valid.all():
        return out
    for b in range(out.shape[0]):
        out[b][~valid] = float(out[b][valid].mean()) if valid.any() else 0.0
    return out


def degrade_pair(ms: np.ndarray, pan: np.ndarray, ratio: int, ms_gnyq: Sequence[float] | float,
                 pan_gnyq: float, mv: np.ndarray, pv: np.ndarray) -> DegradedPair:
    """Degrade (C, h, w) ``ms`` and (1, h r, w r) ``pan`` by ``ratio`` (h, w multiples of r).

    Args:
        ms, pan: the real scene, float32.
        ratio: r.
        ms_gnyq, pan_gnyq: MTF gains at Nyquist (``core.mtf.gnyq_for``).
        mv: (h, w) bool valid MS pixels; pv: (h r, w r) bool valid PAN pixels.
    """
    r = int(ratio)
    h0, w0 = ms.shape[1:]
    ms_lr = degrade(fill_invalid(ms, mv), ms_gnyq, r)  # (C, h0/r, w0/r)
    pan_lr = degrade(fill_invalid(pan, pv), pan_gnyq, r)  # (1, h0, w0)

    # Validity at gt resolution: the gt pixel itself, the degraded PAN sample there, and
    # the MS low-pass support of the degraded MS block it belongs to.
    ms_bad_lp = mtf_filter((~mv).astype(np.float32)[None], float(np.mean(ms_gnyq)), r)[0]
    pan_bad_lr = degrade((~pv).astype(np.float32)[None], pan_gnyq, r)[0]
    lr_bad = ms_bad_lp.reshape(h0 // r, r, w0 // r, r).max(axis=(1, 3)) > CONTAMINATION
    # Bicubic upsampling of the input MS reads 2 low-resolution pixels on each side.
    lr_bad = dilate(lr_bad, 2)
    valid = mv & (pan_bad_lr <= CONTAMINATION) & ~np.repeat(np.repeat(lr_bad, r, 0), r, 1)
    return DegradedPair(ms_lr, pan_lr, valid, ~lr_bad, pan_bad_lr <= CONTAMINATION)


def consistent(fused: np.ndarray, ms: np.ndarray, ratio: int, ms_gnyq: Sequence[float] | float) -> np.ndarray:
    """``fused`` moved toward Wald's consistency property: one back-projection step.

    ``fused - up(degrade(fused) - ms)``: the fused image degraded by the ratio with the MS
    bands' MTF (:func:`.mtf.degrade`, as the sensor made the MS) is compared with the MS it came
    from, and the difference, upsampled bicubically, is taken off. What the PAN added above the
    MS bands' cut-off stays; what the fusion changed below it (a level or colour shift, detail
    injected with the wrong strength) goes back toward the MS. A fused image that already
    degrades to ``ms`` is returned unchanged. Affine in ``fused`` and ``ms`` alike, so it may be
    applied to normalised images; each output pixel reads the input within about 4 MS px.

    Args:
        fused: (C, H, W) fused image; H, W multiples of ``ratio``.
        ms: (C, H / ratio, W / ratio) the MS it was fused from, same units.
        ratio: r.
        ms_gnyq: MTF gain(s) at Nyquist of the MS bands.

    Returns:
        (C, H, W) float32.
    """
    f = np.asarray(fused, dtype=np.float32)
    m = np.asarray(ms, dtype=np.float32)
    r = int(ratio)
    if f.ndim != 3 or m.shape != (f.shape[0], f.shape[1] // r, f.shape[2] // r) or f.shape[1] % r or f.shape[2] % r:
        raise ValueError(f"consistent: fused {f.shape} and ms {m.shape} are not (C, H, W) and (C, H/{r}, W/{r})")
    return f - upsample_bicubic(degrade(f, ms_gnyq, r) - m, r)
