"""Tile planning and seam-free blending weights (pure numpy, no GIS types).

A plan covers an MS working grid of ``height x width`` MS pixels with tiles of ``tile``
MS pixels that advance by ``tile - overlap``; the last tile of a row/column is clamped to
the raster end. Each tile is fused separately at PAN resolution and the predictions are
accumulated with :func:`tile_weights`, which sum to exactly 1 over a plan, so the
accumulation needs no normalisation pass.

Blending inside a shared overlap uses a half-Hann (raised cosine) ramp: the earlier tile
(above / to the left) fades out with ``half_hann_ramp`` while the later tile fades in with
its complement. The clamped last tile can overlap its neighbour by more than ``overlap``;
the extra part is pure context for it (weight 0) and the ramp covers only the nominal
``overlap`` at the far end of the shared strip. This keeps every pixel blended by at most
two tiles per axis, which is what makes the weights sum to one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import PSDNetInputError

# The ramp is rounded to multiples of 2**-12. A product of two such values is a multiple of
# 2**-24 in [0, 1] and therefore exact in float32, so the 2-D weights of a plan sum to
# exactly 1.0 (not 1 +- 1 ulp). The rounding changes the ramp by at most 1.2e-4.
_QUANT = 4096.0


def half_hann_ramp(n: int) -> np.ndarray:
    """Falling half-Hann ramp ``w(i) = 0.5 + 0.5 cos(pi i / n)``, ``i = 0..n-1``.

    Args:
        n: Ramp length in pixels (>= 0).

    Returns:
        (n,) float64 array going from 1 (at i = 0) towards 0.
    """
    if n < 0:
        raise PSDNetInputError(f"half_hann_ramp: length n={n} is negative; pass n >= 0.")
    i = np.arange(n, dtype=np.float64)
    return 0.5 + 0.5 * np.cos(np.pi * i / max(n, 1))


@dataclass(frozen=True)
class Tile:
    """A tile of the MS working grid, in MS pixels.

    Attributes:
        row, col: Top-left corner of the tile.
        height, width: Tile size.
        top, bottom, left, right: Overlap shared with the neighbour on that side (0 at
            raster edges). Only the clamped last tile of a row/column and its predecessor
            can have an overlap larger than ``blend``.
        blend: Nominal overlap of the plan, i.e. the width of the blending ramp. ``None``
            (a hand-made tile) means "ramp over the whole overlap on every side".
    """

    row: int
    col: int
    height: int
    width: int
    top: int
    bottom: int
    left: int
    right: int
    blend: int | None = None


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets along one axis: stride ``tile - overlap``, last one clamped."""
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return starts


def plan_tiles(height: int, width: int, tile: int, overlap: int) -> list[Tile]:
    """Cover a ``height x width`` MS grid with overlapping tiles (row-major order).

    Args:
        height, width: Size of the MS working grid (MS pixels, >= 1).
        tile: Tile side in MS pixels (>= 1).
        overlap: Overlap between neighbouring tiles in MS pixels, ``0 <= overlap <= tile // 2``.

    Returns:
        Tiles in row-major order. A raster smaller than ``tile`` along an axis gets one tile
        of the raster size along that axis.

    Raises:
        PSDNetInputError: On non-positive sizes or an overlap outside ``[0, tile // 2]``.
    """
    if height < 1 or width < 1:
        raise PSDNetInputError(
            f"plan_tiles: raster size {height} x {width} MS px is empty; the inputs must overlap "
            "by at least one MS pixel."
        )
    if tile < 1:
        raise PSDNetInputError(f"plan_tiles: tile={tile} MS px; use a tile size >= 1.")
    if overlap < 0 or overlap > tile // 2:
        raise PSDNetInputError(
            f"plan_tiles: overlap={overlap} MS px is not in [0, tile // 2] = [0, {tile // 2}] for "
            f"tile={tile}; use an overlap of at most half the tile (e.g. {tile // 8})."
        )
    rows = _starts(height, tile, overlap)
    cols = _starts(width, tile, overlap)
    th, tw = min(tile, height), min(tile, width)

    def sides(starts: list[int], k: int, size: int) -> tuple[int, int]:
        before = starts[k - 1] + size - starts[k] if k > 0 else 0
        after = starts[k] + size - starts[k + 1] if k + 1 < len(starts) else 0
        return before, after

    tiles = []
    for i, r0 in enumerate(rows):
        top, bottom = sides(rows, i, th)
        for j, c0 in enumerate(cols):
            left, right = sides(cols, j, tw)
            tiles.append(Tile(r0, c0, th, tw, top, bottom, left, right, overlap))
    return tiles


def _axis_weights(length: int, before: int, after: int, blend: int | None, ratio: int) -> np.ndarray:
    """1-D weights of one tile along one axis, in PAN pixels (float64, quantised)."""
    w = np.ones(length * ratio, dtype=np.float64)
    nb = before if blend is None else min(before, blend)
    na = after if blend is None else min(after, blend)
    if after > 0:
        # Earlier tile of the pair: fades out over the last na*r PAN px of the shared strip.
        n = na * ratio
        if n > 0:
            w[w.size - n:] = np.round(half_hann_ramp(n) * _QUANT) / _QUANT
    if before > 0:
        # Later tile: zero over the extra (context-only) part, then the complement ramp,
        # aligned with the neighbour's ramp at the far end of the shared strip.
        extra = (before - nb) * ratio
        n = nb * ratio
        w[:extra] = 0.0
        if n > 0:
            w[extra:extra + n] *= 1.0 - np.round(half_hann_ramp(n) * _QUANT) / _QUANT
    return w


def tile_weights(t: Tile, ratio: int) -> np.ndarray:
    """Blending weights of a tile at PAN resolution.

    Separable half-Hann ramps over each shared overlap (``overlap * ratio`` PAN px), 1
    elsewhere. Summed over all tiles of a :func:`plan_tiles` plan they are exactly 1.

    Args:
        t: The tile (MS pixels).
        ratio: PAN/MS resolution ratio (>= 1).

    Returns:
        (t.height * ratio, t.width * ratio) float32 array.
    """
    if ratio < 1:
        raise PSDNetInputError(f"tile_weights: ratio={ratio}; the PAN/MS ratio must be an integer >= 1.")
    wy = _axis_weights(t.height, t.top, t.bottom, t.blend, ratio)
    wx = _axis_weights(t.width, t.left, t.right, t.blend, ratio)
    return np.outer(wy, wx).astype(np.float32)
