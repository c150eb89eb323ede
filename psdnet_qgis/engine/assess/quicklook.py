"""Side-by-side quicklook PNGs (MS upsampled | fused | PAN), written with GDAL's PNG driver."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def stretch(img: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Linear stretch of ``img`` (C, H, W) to uint8 with per-band limits ``lo``, ``hi`` (C,)."""
    span = np.maximum(hi - lo, 1e-12)
    out = (img - lo[:, None, None]) / span[:, None, None]
    return (np.clip(np.nan_to_num(out), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def percentiles(imgs: list[np.ndarray], low: float = 2.0, high: float = 98.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-band 2-98 % limits shared by several (C, H, W) images, so they are shown alike."""
    stacked = np.concatenate([i.reshape(i.shape[0], -1) for i in imgs], axis=1)
    return np.nanpercentile(stacked, low, axis=1), np.nanpercentile(stacked, high, axis=1)


def write_quicklook(path: str | Path, lms: np.ndarray, fused: np.ndarray, pan: np.ndarray,
                    rgb: tuple[int, int, int] = (2, 1, 0), min_height: int = 300, gap: int = 6) -> Path:
    """Write ``lms | fused | pan`` as one PNG.

    Args:
        path: output .png.
        lms: MS upsampled to the PAN grid, (C, H, W).
        fused: pansharpened image, (C, H, W).
        pan: panchromatic band, (1, H, W) or (H, W).
        rgb: 0-based band indices shown as red, green, blue (same index repeated for < 3 bands).
        min_height: small scenes are enlarged (nearest neighbour) to at least this many rows.
        gap: white columns between the panels.
    """
    from osgeo import gdal

    gdal.UseExceptions()
    idx = [min(i, lms.shape[0] - 1) for i in rgb]
    colour = [lms[idx].astype(np.float64), fused[idx].astype(np.float64)]
    lo, hi = percentiles(colour)
    panels = [stretch(c, lo, hi) for c in colour]
    pan3 = np.repeat(pan.reshape(1, *pan.shape[-2:]).astype(np.float64), 3, axis=0)
    plo, phi = percentiles([pan3[:1]])
    panels.append(stretch(pan3, np.repeat(plo, 3), np.repeat(phi, 3)))
    zoom = max(1, int(np.ceil(min_height / panels[0].shape[1])))
    panels = [p.repeat(zoom, axis=1).repeat(zoom, axis=2) for p in panels]
    h = panels[0].shape[1]
    white = np.full((3, h, gap), 255, np.uint8)
    canvas = np.concatenate([panels[0], white, panels[1], white, panels[2]], axis=2)
    mem = gdal.GetDriverByName("MEM").Create("", canvas.shape[2], h, 3, gdal.GDT_Byte)
    for b in range(3):
        mem.GetRasterBand(b + 1).WriteArray(canvas[b])
    path = Path(path)
    gdal.GetDriverByName("PNG").CreateCopy(str(path), mem)
    aux = path.with_name(path.name + ".aux.xml")
    if aux.exists():
        aux.unlink()
    return path
