"""Helpers shared by several test files of the engine and processing tiers: read a raster back,
the zero-residual reference, an engine feedback that keeps its log lines."""

from __future__ import annotations

from pathlib import Path

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


class Recorder:
    """Engine feedback that keeps the log lines (warnings prefixed "W ")."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, msg: str) -> None:
        self.lines.append(msg)

    def warning(self, msg: str) -> None:
        self.lines.append("W " + msg)

    def progress(self, percent: float) -> None:
        pass

    def is_canceled(self) -> bool:
        return False
