"""Helpers shared by several test files of the engine and processing tiers: read a raster back,
the zero-residual reference, the calibrated mix of the classical candidates, an engine feedback
that keeps its log lines."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def read(path: Path) -> np.ndarray:
    """Whole raster as (C, H, W) float32."""
    from osgeo import gdal

    ds = gdal.Open(str(path))
    arr = ds.ReadAsArray().astype(np.float32)
    return arr.reshape(ds.RasterCount, ds.RasterYSize, ds.RasterXSize)


def bicubic_reference(ms: np.ndarray, ratio: int, margin: int) -> np.ndarray:
    """What a zero-residual model must give: bicubic of the reflection-padded MS, cropped."""
    from psdnet_qgis.core.resample import upsample_bicubic

    mp = np.pad(ms, ((0, 0), (margin, margin), (margin, margin)), mode="reflect")
    m = margin * ratio
    return upsample_bicubic(mp, ratio)[:, m:-m, m:-m]


def classical_mix(pan: Path, ms: Path, folder: Path, weights: np.ndarray, lms: np.ndarray,
                  bands: Sequence[int] | None = None, consistency: Sequence[float | None] | None = None,
                  intensity: Sequence[int] | None = None, **kw: Any) -> np.ndarray:
    """``lms + sum_k w_k (classical_k - lms)`` over the calibration's classical candidates.

    Each candidate is run by the engine on (pan, ms) into ``folder`` with ``kw``. ``weights`` are
    the reported (C, 1 + K) weights (column 0 the network's, left out), ``lms`` the upsampled MS;
    ``bands`` (0-based) restricts all three to those MS bands. ``consistency``: the report's MTF
    gain per MS band of the consistency step (``core.wald.consistent``), applied to the mix on
    the whole image; None: no step. ``intensity``: the bands of GSA's intensity
    (``engine.calibration.intensity_bands``); GSA then runs on the whole image here (statistics
    from the whole raster, as the engine fits them on a small raster), not through the engine.
    """
    from psdnet_qgis.engine.calibration import CANDIDATES
    from psdnet_qgis.engine.run import pansharpen

    sel = slice(None) if bands is None else list(bands)
    w = np.asarray(weights, np.float32)[sel]
    expect = lms.copy()
    for k, method in enumerate(CANDIDATES, start=1):
        if method == "gsa" and intensity is not None:
            from psdnet_qgis.core.classical import gsa_apply, gsa_stats

            m, p = read(ms), read(pan)
            r = r_of(p, m)
            fused = gsa_apply(m, p, r, gsa_stats(m, p, r, kw.get("sensor"), intensity_bands=intensity))
        else:
            pansharpen(pan, ms, folder / f"{method}.tif", method=method, **kw)
            fused = read(folder / f"{method}.tif")
        expect += w[:, k, None, None] * (fused[sel] - lms)
    if consistency is not None:
        from psdnet_qgis.core.wald import consistent

        gains = [consistency[b] for b in (range(len(consistency)) if bands is None else bands)]
        keep = [i for i, g in enumerate(gains) if g is not None]
        r = r_of(expect, read(ms))
        expect[keep] = consistent(expect[keep], read(ms)[sel][keep], r, [float(gains[i]) for i in keep])
    return expect


def r_of(fine: np.ndarray, coarse: np.ndarray) -> int:
    """The PAN/MS ratio of two arrays (last axis)."""
    return int(fine.shape[-1] // coarse.shape[-1])


class Recorder:
    """Engine feedback that keeps the log lines (warnings prefixed "W ") and the progress, and
    can cancel after ``cancel_after`` progress calls."""

    def __init__(self, cancel_after: int | None = None) -> None:
        self.lines: list[str] = []
        self.percents: list[float] = []
        self.cancel_after = cancel_after

    def info(self, msg: str) -> None:
        self.lines.append(msg)

    def warning(self, msg: str) -> None:
        self.lines.append("W " + msg)

    def progress(self, percent: float) -> None:
        self.percents.append(percent)

    def is_canceled(self) -> bool:
        return self.cancel_after is not None and len(self.percents) > self.cancel_after
