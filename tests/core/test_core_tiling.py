"""Tile planning and blending weights."""

from __future__ import annotations

import re

import numpy as np
import pytest

from psdnet_qgis.core.tiling import Tile, default_tile, half_hann_ramp, plan_tiles, resolve_tiling, tile_weights
from psdnet_qgis.errors import PSDNetInputError


def _accumulate(height: int, width: int, tile: int, overlap: int, ratio: int) -> tuple[np.ndarray, np.ndarray]:
    acc = np.zeros((height * ratio, width * ratio), np.float32)
    cover = np.zeros((height, width), np.int32)
    for t in plan_tiles(height, width, tile, overlap):
        w = tile_weights(t, ratio)
        assert w.shape == (t.height * ratio, t.width * ratio) and w.dtype == np.float32
        assert w.min() >= 0.0 and w.max() <= 1.0
        acc[t.row * ratio:(t.row + t.height) * ratio, t.col * ratio:(t.col + t.width) * ratio] += w
        cover[t.row:t.row + t.height, t.col:t.col + t.width] += 1
    return acc, cover


def test_ramp_formula() -> None:
    for n in (1, 2, 5, 16, 64):
        i = np.arange(n)
        np.testing.assert_allclose(half_hann_ramp(n), 0.5 + 0.5 * np.cos(np.pi * i / n), atol=0)
    assert half_hann_ramp(0).shape == (0,)
    assert half_hann_ramp(8)[0] == 1.0


@pytest.mark.parametrize(
    "height,width,tile,overlap,ratio",
    [
        (100, 100, 32, 8, 4), (97, 61, 32, 16, 4), (33, 33, 32, 8, 4), (10, 7, 32, 8, 4),
        (64, 64, 32, 0, 2), (65, 31, 32, 0, 3), (21, 21, 8, 2, 4), (13, 13, 8, 4, 2),
        (1, 1, 1, 0, 4), (40, 41, 9, 4, 1), (129, 200, 64, 32, 4), (50, 50, 16, 3, 5),
    ],
)
def test_weights_sum_to_exactly_one(height: int, width: int, tile: int, overlap: int, ratio: int) -> None:
    acc, cover = _accumulate(height, width, tile, overlap, ratio)
    assert cover.min() >= 1  # plan covers the raster
    assert np.all(acc == 1.0)


def test_weights_sum_many_random_plans() -> None:
    rng = np.random.default_rng(0)
    for _ in range(60):
        tile = int(rng.integers(2, 40))
        overlap = int(rng.integers(0, tile // 2 + 1))
        h, w = (int(v) for v in rng.integers(1, 130, 2))
        acc, cover = _accumulate(h, w, tile, overlap, int(rng.integers(1, 5)))
        assert cover.min() >= 1
        assert np.all(acc == 1.0), (h, w, tile, overlap)


def test_plan_geometry() -> None:
    tiles = plan_tiles(100, 70, 32, 8)
    rows = sorted({t.row for t in tiles})
    cols = sorted({t.col for t in tiles})
    assert rows == [0, 24, 48, 68]  # stride 24, last clamped to 100 - 32
    assert cols == [0, 24, 38]
    first, last = tiles[0], tiles[-1]
    assert (first.top, first.left, first.bottom, first.right) == (0, 0, 8, 8)
    assert (last.row + last.height, last.col + last.width) == (100, 70)
    assert last.top == 48 + 32 - 68 and last.left == 24 + 32 - 38 and last.bottom == 0 and last.right == 0


def test_small_raster_single_tile() -> None:
    tiles = plan_tiles(10, 20, 64, 16)
    assert tiles == [Tile(0, 0, 10, 20, 0, 0, 0, 0, 16)]
    np.testing.assert_array_equal(tile_weights(tiles[0], 4), np.ones((40, 80), np.float32))


def test_interior_ramp_matches_formula() -> None:
    tiles = plan_tiles(1, 100, 32, 8)
    w = tile_weights(tiles[0], 2)[0]
    np.testing.assert_allclose(w[-16:], half_hann_ramp(16), atol=2**-13)
    assert np.all(w[:-16] == 1.0)


def test_overlap_too_large_rejected() -> None:
    with pytest.raises(
        PSDNetInputError,
        match=re.escape(
            "plan_tiles: overlap=17 MS px is not in [0, tile // 2] = [0, 16] for tile=32; "
            "use an overlap of at most half the tile (e.g. 4)."
        ),
    ):
        plan_tiles(100, 100, 32, 17)
    with pytest.raises(PSDNetInputError):
        plan_tiles(100, 100, 32, -1)
    with pytest.raises(PSDNetInputError):
        plan_tiles(0, 100, 32, 8)


def test_default_tiles_split_the_raster_evenly():
    assert default_tile(4) == (120, 8, 4)  # 128 MS px with margins: the measured sweet spot
    assert default_tile(4, ms_shape=(256, 256)) == (136, 8, 4)  # 2 x 2, not 3 x 3 tiles
    # 20 tiles of 136 (+ 2 x 4 = 144 computed) beat 23 of 120 (128): 2880 vs 2944 px a side
    assert default_tile(4, ms_shape=(2560, 2560))[0] == 136
    assert default_tile(4, ms_shape=(20, 30))[0] == 30  # one tile
    tile, overlap, _ = default_tile(4, ms_shape=(12, 12))
    assert tile == 12 and overlap <= tile // 2
    assert default_tile(2, "exp")[2] == 8


def test_resolve_tiling_keeps_the_callers_values_and_fills_in_the_rest():
    assert resolve_tiling(4, "psdnet", (256, 256)) == default_tile(4, ms_shape=(256, 256))
    assert resolve_tiling(4, "psdnet", (256, 256), tile=64) == (64, 8, 4)  # 32 PAN px overlap
    assert resolve_tiling(4, "psdnet", (256, 256), tile=16) == (16, 4, 4)  # at most tile // 4
    assert resolve_tiling(4, "exp", (256, 256), tile=16, overlap=0, margin=6) == (16, 0, 6)


@pytest.mark.parametrize("kw,match", [(dict(tile=4), "tile=4 MS px is too small"),
                                      (dict(tile=16, overlap=9), "between 0 and tile // 2 = 8"),
                                      (dict(margin=3), "margin=3 MS px is too small")])
def test_resolve_tiling_rejects_bad_values(kw, match):
    with pytest.raises(PSDNetInputError, match=match):
        resolve_tiling(4, "psdnet", (256, 256), **kw)
