"""Grid arithmetic shared by inference, assessment and training (pure stdlib/numpy).

``engine.raster.open_inputs`` decides every working grid with these functions (training
reads its scenes through it too), so there is one footprint intersection, one snapping
rule and one alignment tolerance.

The project's geometry convention (docs/ARCHITECTURE.md): MS pixel (i, j) covers PAN
pixels [i*r, (i+1)*r) x [j*r, (j+1)*r), pixel corners aligned.
"""

from __future__ import annotations

import math

#: Largest relative distance of the MS/PAN pixel-size ratio to an integer that is accepted.
RATIO_TOLERANCE = 0.02
#: Misregistration (in pixels of the grid being matched, over the whole raster) below which
#: a raster is read directly on the working grid instead of being resampled onto it.
ALIGN_TOLERANCE_PX = 0.05

#: A footprint (xmin, ymin, xmax, ymax) in map units.
Bounds = tuple[float, float, float, float]
#: A north-up GDAL geotransform (x0, px, 0, y0, 0, -py).
GeoTransform = tuple[float, float, float, float, float, float]

# Slack when snapping map coordinates to pixel edges: a footprint edge that lies on a pixel
# edge up to float rounding keeps that pixel.
_SNAP_EPS = 1e-6


def intersect(a: Bounds, b: Bounds) -> Bounds | None:
    """The intersection of two footprints, None when they do not overlap (or only touch)."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def misalignment(ms_gt: GeoTransform, ms_size: tuple[int, int], pan_gt: GeoTransform,
                 ratio: int) -> tuple[float, float, float, float]:
    """How far a north-up MS grid is from a grid of ``ratio`` PAN pixels on PAN pixel corners.

    Args:
        ms_gt, pan_gt: geotransforms in the same CRS.
        ms_size: (width, height) of the MS raster.
        ratio: integer MS / PAN pixel-size ratio.

    Returns:
        (offset_x, offset_y, drift_x, drift_y) in PAN px: the MS origin's distance to the
        nearest PAN pixel corner, and the position error that the pixel-size difference to
        exactly ``ratio`` PAN px accumulates over the whole MS raster.
    """
    pan_px, pan_py = pan_gt[1], -pan_gt[5]
    ox, oy = origin_in_pan_px(ms_gt, pan_gt)
    drift_x = abs(ms_gt[1] - ratio * pan_px) * ms_size[0] / pan_px
    drift_y = abs(-ms_gt[5] - ratio * pan_py) * ms_size[1] / pan_py
    return abs(ox - round(ox)), abs(oy - round(oy)), drift_x, drift_y


def origin_in_pan_px(ms_gt: GeoTransform, pan_gt: GeoTransform) -> tuple[float, float]:
    """The MS raster's top-left corner in PAN pixel coordinates (column, row)."""
    return (ms_gt[0] - pan_gt[0]) / pan_gt[1], (ms_gt[3] - pan_gt[3]) / pan_gt[5]


def aligned_axis(offset: int, n_pan: int, n_ms: int, ratio: int) -> tuple[int, int, int]:
    """Along one axis of an aligned MS grid: the whole MS pixels whose PAN footprint is in the PAN.

    Args:
        offset: MS origin in PAN px (an integer: the grids are aligned).
        n_pan, n_ms: PAN and MS sizes along the axis.
        ratio: r.

    Returns:
        (k0, k1, pan_offset): MS pixels k0..k1-1, each covering PAN pixels
        [offset + k r, offset + (k + 1) r), all inside the PAN; ``pan_offset`` is the first
        PAN pixel covered, ``offset + k0 r``.
    """
    k0 = max(0, -(offset // ratio))
    k1 = min(n_ms, (n_pan - offset) // ratio)
    return k0, k1, offset + k0 * ratio


def pixel_window(bounds: Bounds, gt: GeoTransform, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The pixels of a north-up grid that lie wholly inside ``bounds``, clipped to the raster.

    Args:
        bounds: footprint in the grid's CRS.
        gt: the grid's geotransform.
        size: (width, height) of the raster.

    Returns:
        (col0, col1, row0, row1): columns col0..col1-1 and rows row0..row1-1.
    """
    px, py = gt[1], -gt[5]
    c0 = max(0, math.ceil((bounds[0] - gt[0]) / px - _SNAP_EPS))
    c1 = min(size[0], math.floor((bounds[2] - gt[0]) / px + _SNAP_EPS))
    r0 = max(0, math.ceil((gt[3] - bounds[3]) / py - _SNAP_EPS))
    r1 = min(size[1], math.floor((gt[3] - bounds[1]) / py + _SNAP_EPS))
    return c0, c1, r0, r1
