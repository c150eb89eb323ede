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

:func:`default_tile` / :func:`resolve_tiling` choose the tile, overlap and context margin
of a run from the ratio, the method and the raster size.
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


# ------------------------------------------------------------------------------ defaults
#: PSDNet tile side *including* the context margins, in PAN px: 128 MS px (512 PAN px) is
#: the fastest per pixel on the 2-core AVX512-BF16 CPU (scripts/bench_speed.py); larger
#: tiles fall out of cache, smaller ones spend more on their margins.
PSDNET_TILE_PAN = 512
#: PSDNet context margin in MS px (>= 4): with 4, tiled and whole-image runs already differ
#: at the float-noise level only (tests/engine/test_engine_run.py); more only costs time.
PSDNET_MARGIN = 4
#: PSDNet pads its input to a multiple of this many MS px (model/psdnet.py PAD_MULTIPLE).
PSDNET_PAD = 8
#: Classical methods are cheap per pixel and their statistics are global (fitted once per
#: raster by the engine), so big tiles change nothing but the overhead.
CLASSICAL_TILE_PAN = 1024
#: Context margin of classical methods in MS px: the 41-tap MTF filter of mtf_glp_hpm
#: reaches 20 PAN px (5 MS px at r = 4) and the bicubic 2 MS px more.
CLASSICAL_MARGIN = 8
#: Default tile overlap in PAN px (blending ramp length).
OVERLAP_PAN = 32
#: PSDNet tiles may grow this many MS px past the nominal tile when that needs fewer pixels
#: computed in all; the peak memory of a 136 + 2 x 4 MS px tile (1.23 GB) is that of
#: 128 + 2 x 4.
PSDNET_TILE_GROW = 16
#: Smallest tile side and context margin a run accepts, in MS px.
MIN_TILE = 8
MIN_MARGIN = 4


def _cheapest_split(size: int, tile: int, overlap: int, margin: int) -> int:
    """Tiles along an axis of ``size`` MS px that compute the fewest pixels (PSDNet).

    Each tile computes its core plus ``2 * margin`` rounded up to a multiple of
    :data:`PSDNET_PAD`; tiles are at most ``tile + PSDNET_TILE_GROW``. Ties: fewer tiles.
    """
    t_max = tile + PSDNET_TILE_GROW
    n_lo = max(1, -(-(size - overlap) // (t_max - overlap)))
    best_n, best_cost = n_lo, None
    for n in range(n_lo, n_lo + 4):
        t = -(-(size - overlap) // n) + overlap
        cost = n * (-(-(t + 2 * margin) // PSDNET_PAD) * PSDNET_PAD)
        if best_cost is None or cost < best_cost:
            best_n, best_cost = n, cost
    return best_n


def default_tile(ratio: int, method: str = "psdnet", ms_shape: tuple[int, int] | None = None
                 ) -> tuple[int, int, int]:
    """Default (tile, overlap, margin) in MS px.

    The nominal tile (:data:`PSDNET_TILE_PAN` minus margins; 120 MS px at r = 4, overlap 8,
    margin 4) is then adapted to the raster so the tiles split it evenly: with a fixed tile
    the clamped last tile can recompute almost a whole tile (a 256 MS px raster would take
    3 x 3 tiles of 120 instead of 2 x 2 of 132).
    For PSDNet the number of tiles per axis is the one that computes the fewest padded
    pixels (:func:`_cheapest_split`; tiles up to :data:`PSDNET_TILE_GROW` MS px larger than
    nominal): a 1024 MS px axis takes 8 tiles of 136 (8 x 144 px computed with margins and
    padding) instead of 9 of 128 (9 x 136 px), 11 % fewer pixels in 2-D.

    Args:
        ratio: PAN/MS ratio.
        method: "psdnet" or a classical method.
        ms_shape: (height, width) of the MS working grid, for the adaptation.
    """
    if method == "psdnet":
        margin = PSDNET_MARGIN
        tile = max(16, PSDNET_TILE_PAN // ratio - 2 * margin)
    else:
        margin = CLASSICAL_MARGIN
        tile = max(16, CLASSICAL_TILE_PAN // ratio - 2 * margin)
    overlap = max(2, min(tile // 4, OVERLAP_PAN // ratio))
    if ms_shape is not None:
        sizes = []
        for size in ms_shape:
            if size <= tile:
                sizes.append(size)
                continue
            n = max(1, round((size - overlap) / (tile - overlap)))
            if method == "psdnet":
                n = _cheapest_split(size, tile, overlap, margin)
            sizes.append(-(-(size - overlap) // n) + overlap)
        tile = max(max(sizes), 2 * overlap)
        if method == "psdnet":
            # PSDNet pads every tile (with margins) to a multiple of 8 MS px and computes the
            # padding anyway: grow the tile into it instead (more overlap, same cost).
            tile = -(-(tile + 2 * margin) // PSDNET_PAD) * PSDNET_PAD - 2 * margin
        tile = min(tile, max(ms_shape))
        overlap = min(overlap, tile // 2)  # small rasters: one tile, the overlap is moot
    return int(tile), int(overlap), int(margin)


def resolve_tiling(ratio: int, method: str, ms_shape: tuple[int, int], tile: int | None = None,
                   overlap: int | None = None, margin: int | None = None) -> tuple[int, int, int]:
    """(tile, overlap, margin) of a run in MS px: the caller's values, defaults for the rest.

    Without ``tile`` the defaults are adapted to the raster (:func:`default_tile`); with a
    caller's tile and no overlap, the overlap is :data:`OVERLAP_PAN` PAN px, at most a
    quarter of the tile.

    Args:
        ratio: PAN/MS ratio.
        method: "psdnet" or a classical method.
        ms_shape: (height, width) of the MS working grid.
        tile, overlap, margin: the caller's values (None or 0 tile: default).

    Raises:
        PSDNetInputError: a tile under :data:`MIN_TILE`, an overlap outside
            ``[0, tile // 2]`` or a margin under :data:`MIN_MARGIN`.
    """
    d_tile, d_overlap, d_margin = default_tile(ratio, method, None if tile else ms_shape)
    tile = int(tile) if tile else d_tile
    if overlap is None:
        overlap = d_overlap if tile == d_tile else max(0, min(tile // 4, OVERLAP_PAN // ratio))
    overlap = int(overlap)
    if tile < MIN_TILE:
        raise PSDNetInputError(f"tile={tile} MS px is too small; use a tile of at least {MIN_TILE} MS px.")
    if not 0 <= overlap <= tile // 2:
        raise PSDNetInputError(
            f"overlap={overlap} MS px must be between 0 and tile // 2 = {tile // 2}; "
            f"use e.g. {tile // 8}."
        )
    margin = d_margin if margin is None else int(margin)
    if margin < MIN_MARGIN:
        raise PSDNetInputError(f"margin={margin} MS px is too small; use at least {MIN_MARGIN}.")
    return tile, overlap, margin
