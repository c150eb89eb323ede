"""Resampling between the MS and PAN grids (pure numpy).

Geometry: MS pixel i covers PAN pixels [i*r, (i+1)*r) (GDAL "area" convention), so the
centre of PAN pixel x sits at MS coordinate ``(x + 0.5) / r - 0.5``. This is exactly what
``torch.nn.functional.interpolate(mode="bicubic", align_corners=False)`` assumes; the
function below is its numpy twin (Keys cubic with a = -0.75, source indices clamped to the
border, source coordinates not clamped), so the engine and the training data agree.
"""

from __future__ import annotations

import numpy as np

from ..errors import PSDNetInputError

_A = -0.75  # torch / OpenCV cubic convolution parameter


def _cubic_taps(n_in: int, ratio: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and weights of the 4-tap cubic kernel for each output pixel of one axis.

    Returns:
        (idx, wgt): (4, n_in * ratio) int64 clamped source indices and float32 weights.
    """
    out = np.arange(n_in * ratio)
    # Integer ratio: the fractional phase only depends on out % ratio, computed in float32
    # like torch does, so the coefficients agree to the last bits.
    src = (out.astype(np.float32) + np.float32(0.5)) / np.float32(ratio) - np.float32(0.5)
    base = np.floor(src)
    t = (src - base).astype(np.float32)
    a = np.float32(_A)

    def near(x: np.ndarray) -> np.ndarray:  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: np.ndarray) -> np.ndarray:  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    wgt = np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)]).astype(np.float32)
    idx = base.astype(np.int64)[None, :] + np.arange(-1, 3)[:, None]
    return np.clip(idx, 0, n_in - 1), wgt


def _apply_axis(x: np.ndarray, axis: int, ratio: int) -> np.ndarray:
    n = x.shape[axis]
    idx, wgt = _cubic_taps(n, ratio)
    offsets = _phase_offsets(idx, wgt, n, ratio)
    if offsets is not None:
        return _apply_axis_by_phase(x, axis, ratio, wgt, offsets)
    shape = [1] * x.ndim
    shape[axis] = -1
    out = np.take(x, idx[0], axis=axis) * wgt[0].reshape(shape)
    for k in range(1, 4):
        out += np.take(x, idx[k], axis=axis) * wgt[k].reshape(shape)
    return out


def _phase_offsets(idx: np.ndarray, wgt: np.ndarray, n: int, ratio: int) -> np.ndarray | None:
    """Per output phase ``p`` (outputs ``j * ratio + p``), the offset ``d_p`` such that the taps
    read source pixels ``j + d_p - 1 .. j + d_p + 2`` (clamped) with the same four weights for
    every ``j``; None where that does not hold (then the gather runs): the float32 phases are
    exact for ratios 2, 4 and 8, while at 3 or 5 a phase's weights vary in their last bits, as
    torch's do."""
    j = np.arange(n)
    f = np.float32
    d = np.floor((np.arange(ratio, dtype=f) + f(0.5)) / f(ratio) - f(0.5)).astype(np.int64)  # floor(src) - j
    w = wgt.reshape(4, n, ratio)
    expect = np.clip(j[:, None] + d[None, :] + np.arange(-1, 3)[:, None, None], 0, n - 1)
    if not (np.array_equal(idx.reshape(4, n, ratio), expect) and np.array_equal(w, np.broadcast_to(w[:, :1], w.shape))):
        return None
    return d


def _apply_axis_by_phase(x: np.ndarray, axis: int, ratio: int, wgt: np.ndarray, d: np.ndarray) -> np.ndarray:
    """:func:`_apply_axis` as ``ratio`` phases of four shifted views of the edge-padded input: the
    same products summed in the same order as the gather (identical output), without copying
    each tap (1.4x faster on the engine's 144 MS px tiles)."""
    n = x.shape[axis]
    lo = int(max(0, 1 - d.min()))  # pad so that j + d_p - 1 >= 0 for j = 0
    hi = int(max(0, d.max() + 2))  # and j + d_p + 2 <= n - 1 + hi for j = n - 1
    pad = [(0, 0)] * x.ndim
    pad[axis] = (lo, hi)
    xp = np.pad(x, pad, mode="edge")
    shape = list(x.shape)
    shape[axis] = n * ratio
    out = np.empty(shape, np.float32)
    at = [slice(None)] * x.ndim
    for p in range(ratio):
        acc = None
        for k in range(4):
            start = int(d[p]) + k - 1 + lo
            at[axis] = slice(start, start + n)
            term = xp[tuple(at)] * wgt[k, p]
            if acc is None:
                acc = term
            else:
                acc += term
        at[axis] = slice(p, None, ratio)
        out[tuple(at)] = acc
    return out


def upsample_bicubic(ms: np.ndarray, ratio: int) -> np.ndarray:
    """Bicubic upsampling by an integer ratio, identical to torch's bicubic (align_corners=False).

    Args:
        ms: (C, h, w) or (h, w) array.
        ratio: Integer upsampling factor (>= 1).

    Returns:
        (C, h*ratio, w*ratio) (or (h*ratio, w*ratio)) float32 array.
    """
    if int(ratio) != ratio or ratio < 1:
        raise PSDNetInputError(f"upsample_bicubic: ratio={ratio!r}; use an integer PAN/MS ratio >= 1.")
    ratio = int(ratio)
    x = np.asarray(ms, dtype=np.float32)
    if x.ndim not in (2, 3) or x.shape[-1] < 1 or x.shape[-2] < 1:
        raise PSDNetInputError(
            f"upsample_bicubic: ms has shape {x.shape}; pass a (C, h, w) or (h, w) array with h, w >= 1."
        )
    if ratio == 1:
        return x.copy()
    # Rows first on the small array, then columns: separable, 4 taps per axis.
    return _apply_axis(_apply_axis(x, x.ndim - 2, ratio), x.ndim - 1, ratio)
