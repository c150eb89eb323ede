"""What the classical methods share: their call forms, input checks and pooled statistics.

The methods live in :mod:`.cs` (component substitution: brovey, gsa, bdsd_pc) and
:mod:`.mra` (multiresolution analysis: mtf_glp_hpm, mtf_glp_fs); the package
(:mod:`psdnet_qgis.core.classical`) holds exp, the method table and the ``fit`` / ``apply``
dispatch.

The fitted methods need image statistics (regression weights, gains, mean/std matching).
Estimated per tile they make neighbouring tiles disagree (seams of up to several band std),
so each comes in three call forms, documented here once:

* one call, ``method(ms, pan, ratio, sensor=None)``: ``ms`` (C, h, w) and ``pan`` (H, W) or
  (1, H, W) on the same radiometric scale, ``H = h * ratio`` with ``ratio`` the integer
  PAN/MS ratio, ``sensor`` the sensor name whose MTF gains the method uses (None = the
  defaults of :func:`.mtf.gnyq_for`: 0.3 per MS band, 0.15 for the PAN). Returns (C, H, W)
  float32; it is ``method_apply(ms, pan, ratio, method_stats(ms, pan, ratio, sensor))``,
  statistics from this image.
* ``method_stats(ms, pan, ratio, sensor=None, valid=None)``, run once per raster: ``ms`` and
  ``pan`` are one image or equally long lists of windows of one raster (:data:`Windows`);
  ``valid`` is an optional (h, w) bool mask (or list) of the MS pixels that, with their
  ``ratio x ratio`` PAN blocks, enter the statistics (e.g. False on window margins or
  nodata); filtering runs over the whole window first. Returns the method's small frozen
  dataclass of coefficients (``to_dict()`` for logs and tests).
* ``method_apply(ms, pan, ratio, stats, up=None)``: one image or tile with the ``stats`` fitted
  on the whole raster; local given them (pointwise, MTF filter and bicubic support), so a tiled
  run equals a whole-image run up to float rounding. ``up``: the bicubic-upsampled ``ms`` when
  the caller has it (several methods on one tile upsample it once; not changed). Returns (C, H,
  W) float32; ``stats`` fitted for another band count raise
  :class:`~psdnet_qgis.errors.PSDNetInputError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, cast, overload

import numpy as np

from ...errors import PSDNetInputError
from ..resample import upsample_bicubic

__all__ = ["Windows", "FittedStats", "check_inputs", "check_windows", "apply_inputs", "gather", "nnls_gram",
           "pan_mask", "std64"]

#: One image or a list of windows of one raster.
Windows = np.ndarray | Sequence[np.ndarray]


class FittedStats(Protocol):
    """What :func:`apply_inputs` asks of a method's stats: the band count they were fitted for."""

    @property
    def bands(self) -> int: ...

    def matches(self, c: int) -> bool: ...


def check_inputs(ms: np.ndarray, pan: np.ndarray, ratio: int, method: str) -> tuple[np.ndarray, np.ndarray, int]:
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


def apply_inputs(ms: np.ndarray, pan: np.ndarray, ratio: int, method: str, stats: FittedStats,
                 up: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """The start of every ``*_apply``: :func:`check_inputs`, the band check of ``stats``, ms_up.

    ``up``: ``upsample_bicubic(ms, ratio)`` when the caller has it already (several methods on one
    tile upsample it once); a copy is returned, the caller's array is not changed.

    Returns:
        ``(ms, pan, ratio, ms_up)``: as :func:`check_inputs`, and the bicubic-upsampled MS
        (C, H, W) float32, the caller's own array.
    """
    m, p, ratio = check_inputs(ms, pan, ratio, method)
    c = m.shape[0]
    if not stats.matches(c):
        raise PSDNetInputError(f"{method}: stats were fitted for {stats.bands} bands, ms has {c}; refit them.")
    if up is None:
        return m, p, ratio, upsample_bicubic(m, ratio)
    if up.shape != (c, *p.shape):
        raise PSDNetInputError(f"{method}: the upsampled ms has shape {up.shape}, expected {(c, *p.shape)}; "
                               "pass upsample_bicubic(ms, ratio).")
    return m, p, ratio, np.array(up, dtype=np.float32)


def _mask(v: np.ndarray | None, m: np.ndarray, method: str) -> np.ndarray | None:
    """One window's mask as (h, w) bool, or None where every pixel counts."""
    if v is None:
        return None
    v = np.asarray(v, dtype=bool)
    if v.shape != m.shape[1:]:
        raise PSDNetInputError(
            f"{method}: valid mask has shape {v.shape} but the MS window is "
            f"{m.shape[1]} x {m.shape[2]} px; pass one bool per MS pixel."
        )
    return None if v.all() else v


def check_windows(ms: Windows, pan: Windows, ratio: int, valid: Windows | None, method: str
                  ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray | None], int]:
    """Validate one image or a list of windows; masks go to (h, w) bool or None (all valid)."""
    single = isinstance(ms, np.ndarray) or (not isinstance(ms, (list, tuple)))
    ms_l: list[np.ndarray] = [cast(np.ndarray, ms)] if single else list(cast(Sequence[np.ndarray], ms))
    pan_l: list[np.ndarray] = [cast(np.ndarray, pan)] if single else list(cast(Sequence[np.ndarray], pan))
    val_l: list[np.ndarray | None]
    if valid is None:
        val_l = [None] * len(ms_l)
    else:
        val_l = [cast(np.ndarray, valid)] if single else list(cast(Sequence[np.ndarray], valid))
    if not ms_l or len(pan_l) != len(ms_l) or len(val_l) != len(ms_l):
        raise PSDNetInputError(
            f"{method}: got {len(ms_l)} MS, {len(pan_l)} PAN and {len(val_l)} mask windows; pass "
            "one image or equally long lists of windows."
        )
    out_m, out_p, out_v = [], [], []
    for m, p, v in zip(ms_l, pan_l, val_l, strict=False):
        m, p, ratio = check_inputs(m, p, ratio, method)
        out_m.append(m)
        out_p.append(p)
        out_v.append(_mask(v, m, method))
    c = out_m[0].shape[0]
    if any(m.shape[0] != c for m in out_m):
        raise PSDNetInputError(f"{method}: MS windows have different band counts; pass windows of one image.")
    if all(v is not None and not v.any() for v in out_v):
        raise PSDNetInputError(
            f"{method}: no valid pixel to estimate the statistics from; check the nodata masks."
        )
    return out_m, out_p, out_v, ratio


def gather(arrays: Sequence[np.ndarray], masks: Sequence[np.ndarray | None]) -> np.ndarray:
    """Valid pixels of (..., H, W) arrays as one (..., N) array (a view for one unmasked array)."""
    parts = []
    for a, v in zip(arrays, masks, strict=False):
        flat = a.reshape(a.shape[:-2] + (-1,))
        parts.append(flat if v is None else flat[..., v.reshape(-1)])
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)


@overload
def pan_mask(v: np.ndarray, ratio: int) -> np.ndarray: ...


@overload
def pan_mask(v: None, ratio: int) -> None: ...


def pan_mask(v: np.ndarray | None, ratio: int) -> np.ndarray | None:
    """An MS-grid mask (h, w) at PAN scale (H, W): each pixel repeated ``ratio x ratio`` times."""
    return None if v is None else np.repeat(np.repeat(v, ratio, axis=0), ratio, axis=1)


def std64(x: np.ndarray) -> float:
    """Standard deviation accumulated in float64."""
    return float(np.std(x, dtype=np.float64))


def nnls_gram(gram: np.ndarray, rhs: np.ndarray, sum_to_one: bool = False) -> np.ndarray:
    """argmin_x x'Gx - 2 b'x subject to x >= 0 (and ``sum(x) = 1`` with ``sum_to_one``), exact,
    for a few unknowns (BDSD-PC; the per-scene calibration of ``core.calibration``).

    The problem is convex, so its minimiser is the unconstrained (with ``sum_to_one``: the
    equality-constrained, Lagrange ``G x = b + mu 1``) minimiser over some set of free variables
    that happens to be non-negative; with at most about 9 unknowns every set (512) can be tried,
    which is exact and needs no iteration tolerance.
    """
    n = rhs.size
    best, best_obj = np.zeros(n), (np.inf if sum_to_one else 0.0)
    if sum_to_one:
        scale = float(np.trace(gram)) / n
        if not scale > 0.0:  # every candidate equals the baseline: any split is the same
            return np.full(n, 1.0 / n)
        gram, rhs = gram / scale, rhs / scale  # the same minimiser, a well-conditioned system
    for mask in range(1, 1 << n):
        free = [i for i in range(n) if mask >> i & 1]
        sub = gram[np.ix_(free, free)]
        if sum_to_one:
            k = len(free)
            kkt = np.zeros((k + 1, k + 1))
            kkt[:k, :k], kkt[:k, k], kkt[k, :k] = sub, -1.0, 1.0
            x_s = np.linalg.lstsq(kkt, np.concatenate([rhs[free], [1.0]]), rcond=None)[0][:k]
            if abs(x_s.sum() - 1.0) > 1e-6:
                continue
        else:
            x_s, *_ = np.linalg.lstsq(sub, rhs[free], rcond=None)
        if np.any(x_s < 0.0):
            continue
        obj = float(x_s @ sub @ x_s - 2.0 * rhs[free] @ x_s)
        if obj < best_obj:
            best_obj = obj
            best = np.zeros(n)
            best[free] = x_s
    return best
