"""Radiometric normalisation of network inputs/outputs (pure numpy).

"zscore4": ``v = 0.5 + (x - mean) / (4 * std)`` per band, so that +-2 standard deviations
map to [0, 1]. Statistics are global to a raster (computed once by the engine from a
sample, never per tile: per-tile statistics would make neighbouring tiles disagree and
show seams) and are stored in dict form beside model metadata or in run reports.

"joint4": the same formula with one mean and one std shared by all MS bands (pooled over
the bands), so the normalised MS keeps the bands' relative levels (spectral shape); the
PAN keeps its own statistics. Used for the normalisation ablation (docs/TRAINING_LOG.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import PSDNetInputError

METHOD = "zscore4"
#: Supported methods (see the module docstring).
METHODS = ("zscore4", "joint4")

# std floor relative to the band's magnitude: a constant band (e.g. a fill-only band or
# a synthetic test) must not divide by zero, and its normalised values stay at 0.5.
_REL_STD_FLOOR = 1e-6
_ABS_STD_FLOOR = 1e-12


def _floor_std(std: np.ndarray, mean: np.ndarray) -> np.ndarray:
    return np.maximum(std, np.maximum(_REL_STD_FLOOR * np.abs(mean), _ABS_STD_FLOOR))


def _band_stats(x: np.ndarray, valid: np.ndarray | None, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean/std over valid pixels, float64. x: (C, H, W).

    One band at a time, so the float64 temporaries are one band's (8 MB for the engine's
    1024 x 1024 sample), not all bands' several times over.
    """
    c = x.shape[0]
    flat = x.reshape(c, -1)
    v = None
    if valid is not None:
        v = np.asarray(valid, dtype=bool)
        if v.shape not in (x.shape[1:], x.shape, (1,) + x.shape[1:]):
            raise PSDNetInputError(
                f"Normalizer: {name}_valid has shape {v.shape}; it must be (H, W) or (C, H, W) "
                f"matching {name} {x.shape}."
            )
        v = np.broadcast_to(v, x.shape).reshape(c, -1)
    count = np.zeros(c, dtype=np.int64)
    mean = np.zeros(c)
    var = np.zeros(c)
    for b in range(c):
        band = flat[b].astype(np.float64)
        mask = np.isfinite(band) if v is None else v[b] & np.isfinite(band)
        count[b] = mask.sum()
        if not count[b]:
            continue
        mean[b] = np.where(mask, band, 0.0).sum() / count[b]
        var[b] = (np.where(mask, band - mean[b], 0.0) ** 2).sum() / count[b]
    if np.any(count == 0):
        bad = [int(b) + 1 for b in np.nonzero(count == 0)[0]]
        raise PSDNetInputError(
            f"Normalizer: {name} band(s) {bad} have no valid pixel; check the nodata value and "
            "that the inputs overlap."
        )
    return mean, _floor_std(np.sqrt(var), mean)


@dataclass
class Normalizer:
    """Per-band "zscore4" normalisation of MS and PAN.

    Attributes:
        ms_mean, ms_std: (C,) float64 MS band statistics.
        pan_mean, pan_std: PAN statistics (floats).
    """

    ms_mean: np.ndarray
    ms_std: np.ndarray
    pan_mean: float
    pan_std: float
    method: str = field(default=METHOD)

    def __post_init__(self) -> None:
        self.ms_mean = np.atleast_1d(np.asarray(self.ms_mean, dtype=np.float64))
        self.ms_std = _floor_std(np.atleast_1d(np.asarray(self.ms_std, dtype=np.float64)), self.ms_mean)
        if self.ms_mean.shape != self.ms_std.shape or self.ms_mean.ndim != 1:
            raise PSDNetInputError(
                f"Normalizer: ms_mean {self.ms_mean.shape} and ms_std {self.ms_std.shape} must be "
                "1-D arrays of one value per band."
            )
        self.pan_mean = float(self.pan_mean)
        self.pan_std = float(_floor_std(np.asarray(self.pan_std, dtype=np.float64), np.asarray(self.pan_mean)))
        if self.method not in METHODS:
            raise PSDNetInputError(
                f"Normalizer: method {self.method!r} is not supported; use one of {METHODS}."
            )

    @property
    def bands(self) -> int:
        return int(self.ms_mean.size)

    @classmethod
    def from_arrays(
        cls,
        ms: np.ndarray,
        pan: np.ndarray,
        ms_valid: np.ndarray | None = None,
        pan_valid: np.ndarray | None = None,
        method: str = METHOD,
    ) -> Normalizer:
        """Global statistics from sample arrays.

        Args:
            ms: (C, h, w) MS sample.
            pan: (1, H, W) or (H, W) PAN sample.
            ms_valid: Optional (h, w) or (C, h, w) bool mask of valid MS pixels.
            pan_valid: Optional (H, W) or (1, H, W) bool mask of valid PAN pixels.
            Non-finite values are always excluded.
            method: "zscore4" (per-band statistics) or "joint4" (one pooled MS mean/std).
        """
        ms = np.asarray(ms)
        if ms.ndim != 3:
            raise PSDNetInputError(f"Normalizer.from_arrays: ms has shape {ms.shape}; pass (C, h, w).")
        pan = np.asarray(pan)
        pan3 = pan[None] if pan.ndim == 2 else pan
        if pan3.ndim != 3 or pan3.shape[0] != 1:
            raise PSDNetInputError(
                f"Normalizer.from_arrays: pan has shape {pan.shape}; pass (H, W) or (1, H, W)."
            )
        pv = None if pan_valid is None else np.asarray(pan_valid, dtype=bool).reshape(pan3.shape[1:])
        if method not in METHODS:
            raise PSDNetInputError(f"Normalizer: method {method!r} is not supported; use one of {METHODS}.")
        ms_mean, ms_std = _band_stats(ms, ms_valid, "ms")
        if method == "joint4":
            # Pooled over bands (each band weighted equally): total variance = mean within-band
            # variance + variance of the band means.
            m = float(ms_mean.mean())
            s = float(np.sqrt(np.mean(ms_std**2 + (ms_mean - m) ** 2)))
            ms_mean, ms_std = np.full_like(ms_mean, m), np.full_like(ms_std, s)
        pan_mean, pan_std = _band_stats(pan3, pv, "pan")
        return cls(ms_mean, ms_std, float(pan_mean[0]), float(pan_std[0]), method)

    def _check(self, x: np.ndarray, what: str) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[0] != self.bands:
            raise PSDNetInputError(
                f"Normalizer.{what}: array has shape {x.shape}; expected ({self.bands}, H, W) for the "
                f"{self.bands}-band statistics."
            )
        return x

    def norm_ms(self, ms: np.ndarray) -> np.ndarray:
        """(C, h, w) -> normalised (C, h, w) float32."""
        x = self._check(ms, "norm_ms")
        scale = (1.0 / (4.0 * self.ms_std)).astype(np.float32)[:, None, None]
        return ((x.astype(np.float32) - self.ms_mean.astype(np.float32)[:, None, None]) * scale + 0.5).astype(
            np.float32, copy=False
        )

    def denorm_ms(self, v: np.ndarray) -> np.ndarray:
        """Normalised (C, H, W) -> radiometric (C, H, W) float32."""
        x = self._check(v, "denorm_ms")
        scale = (4.0 * self.ms_std).astype(np.float32)[:, None, None]
        return ((x.astype(np.float32) - 0.5) * scale + self.ms_mean.astype(np.float32)[:, None, None]).astype(
            np.float32, copy=False
        )

    def norm_pan(self, pan: np.ndarray) -> np.ndarray:
        """(H, W) or (1, H, W) -> normalised, same shape, float32."""
        x = np.asarray(pan, dtype=np.float32)
        return ((x - np.float32(self.pan_mean)) * np.float32(1.0 / (4.0 * self.pan_std)) + np.float32(0.5)).astype(
            np.float32, copy=False
        )

    def denorm_pan(self, v: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`norm_pan`, float32."""
        x = np.asarray(v, dtype=np.float32)
        return ((x - np.float32(0.5)) * np.float32(4.0 * self.pan_std) + np.float32(self.pan_mean)).astype(
            np.float32, copy=False
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "method": self.method,
            "ms_mean": [float(v) for v in self.ms_mean],
            "ms_std": [float(v) for v in self.ms_std],
            "pan_mean": float(self.pan_mean),
            "pan_std": float(self.pan_std),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalizer:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(d["ms_mean"], d["ms_std"], d["pan_mean"], d["pan_std"], d.get("method", METHOD))
        except KeyError as exc:
            raise PSDNetInputError(
                f"Normalizer.from_dict: key {exc} missing; expected method, ms_mean, ms_std, pan_mean, pan_std."
            ) from None
