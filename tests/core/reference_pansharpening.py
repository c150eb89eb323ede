"""Independent whole-image reference implementations of GSA, MTF-GLP-HPM and MTF-GLP-FS.

Written for the tests from the published definitions (Vivone et al., "A new benchmarking
framework for pansharpening", IEEE GRSM 2021, and the algorithms documented with its
toolbox), deliberately in the toolbox's own formulation (zero-mean images, float64, one
pass over the whole image, no fit/apply split, no tiling) so that a regression in
``core.classical`` shows as a gap to these numbers. Shared building blocks are the
interpolator (``core.resample.upsample_bicubic``, the engine's interpolator in place of the
toolbox's 23-tap one) and the MTF filters (``core.mtf``), both tested on their own.
"""

from __future__ import annotations

import numpy as np

from psdnet_qgis.core import mtf
from psdnet_qgis.core.resample import upsample_bicubic


def _up(x: np.ndarray, ratio: int) -> np.ndarray:
    return upsample_bicubic(np.asarray(x, np.float32), ratio).astype(np.float64)


def gsa_reference(ms: np.ndarray, pan: np.ndarray, ratio: int, g_pan: float) -> np.ndarray:
    """GSA as defined: MS and PAN zero-mean; intensity weights by least squares of the
    low-pass decimated PAN on the original (low-resolution) MS bands plus a constant;
    intensity on the interpolated MS; gains cov(I, MS_b) / var(I); detail = PAN0 - I0 (no
    PAN std equalisation); final band means equal to the interpolated MS means."""
    ms = np.asarray(ms, np.float64)
    pan = np.asarray(pan, np.float64).reshape(ms.shape[1] * ratio, ms.shape[2] * ratio)
    c = ms.shape[0]
    up = _up(ms, ratio)
    up0 = up - up.mean(axis=(1, 2), keepdims=True)
    lr0 = ms - ms.mean(axis=(1, 2), keepdims=True)
    pan0 = pan - pan.mean()
    pan_lr = mtf.degrade(pan0.astype(np.float32), g_pan, ratio).astype(np.float64)
    design = np.concatenate([lr0.reshape(c, -1), np.ones((1, lr0[0].size))]).T
    alpha, *_ = np.linalg.lstsq(design, pan_lr.reshape(-1), rcond=None)
    intensity = np.tensordot(alpha[:c], up0, axes=1) + alpha[c]
    i0 = intensity - intensity.mean()
    delta = pan0 - i0
    out = np.empty_like(up)
    for b in range(c):
        g = np.mean(i0 * up0[b]) / np.var(i0)
        out[b] = up0[b] + g * delta
    out += up.mean(axis=(1, 2), keepdims=True) - out.mean(axis=(1, 2), keepdims=True)
    return out


def _equalised_pan(pan: np.ndarray, band: np.ndarray, g: float, ratio: int) -> np.ndarray:
    """PAN mean/std-equalised to an interpolated MS band, std taken of the low-pass PAN."""
    lp = mtf.mtf_filter(pan.astype(np.float32), g, ratio).astype(np.float64)
    return (pan - pan.mean()) * (band.std() / lp.std()) + band.mean()


def _glp_lowpass(img: np.ndarray, g: float, ratio: int) -> np.ndarray:
    """MTF low-pass, decimation and interpolation back (the Laplacian-pyramid step)."""
    return _up(mtf.degrade(img.astype(np.float32), g, ratio)[None], ratio)[0]


def hpm_reference(ms: np.ndarray, pan: np.ndarray, ratio: int, gains: tuple[float, ...]) -> np.ndarray:
    """MTF-GLP-HPM: out_b = MS_up_b * P_b / P_L,b, P_b the PAN equalised to band b, P_L,b
    its GLP low-pass with band b's MTF."""
    ms = np.asarray(ms, np.float64)
    pan = np.asarray(pan, np.float64).reshape(ms.shape[1] * ratio, ms.shape[2] * ratio)
    up = _up(ms, ratio)
    out = np.empty_like(up)
    for b, g in enumerate(gains):
        p = _equalised_pan(pan, up[b], g, ratio)
        out[b] = up[b] * p / (_glp_lowpass(p, g, ratio) + np.finfo(np.float64).eps)
    return out


def fs_reference(ms: np.ndarray, pan: np.ndarray, ratio: int, gains: tuple[float, ...]) -> np.ndarray:
    """MTF-GLP-FS: additive GLP detail P - P_L,b with the injection gain regressed at full
    scale, g_b = cov(MS_up_b, P_lp,b) / var(P_lp,b), P_lp,b the PAN low-passed (not
    decimated) with band b's MTF."""
    ms = np.asarray(ms, np.float64)
    pan = np.asarray(pan, np.float64).reshape(ms.shape[1] * ratio, ms.shape[2] * ratio)
    up = _up(ms, ratio)
    out = np.empty_like(up)
    for b, g in enumerate(gains):
        lp = mtf.mtf_filter(pan.astype(np.float32), g, ratio).astype(np.float64)
        lp0 = lp - lp.mean()
        k = np.mean(lp0 * (up[b] - up[b].mean())) / np.var(lp0)
        out[b] = up[b] + k * (pan - _glp_lowpass(pan, g, ratio))
    return out
