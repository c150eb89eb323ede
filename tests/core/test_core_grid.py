"""Pure grid arithmetic of ``core.grid`` (footprints, snapping, alignment)."""

from __future__ import annotations

import pytest

from psdnet_qgis.core import grid


def test_intersect_overlap_touch_and_disjoint():
    assert grid.intersect((0, 0, 10, 10), (5, -5, 20, 8)) == (5, 0, 10, 8)
    assert grid.intersect((0, 0, 10, 10), (10, 0, 20, 10)) is None  # touching edges only
    assert grid.intersect((0, 0, 1, 1), (2, 2, 3, 3)) is None


@pytest.mark.parametrize(("offset", "n_pan", "n_ms", "want"), [
    (0, 40, 10, (0, 10, 0)),    # same footprint
    (-6, 40, 12, (2, 11, 2)),   # MS starts 6 PAN px before the PAN: first whole pixel k=2
    (8, 40, 10, (0, 8, 8)),     # MS starts inside the PAN; 8 whole pixels fit before its end
])
def test_aligned_axis_keeps_whole_ms_pixels_inside_pan(offset, n_pan, n_ms, want):
    k0, k1, pan_off = grid.aligned_axis(offset, n_pan, n_ms, 4)
    assert (k0, k1, pan_off) == want
    assert pan_off >= 0 and pan_off + (k1 - k0) * 4 <= n_pan


def test_pixel_window_snaps_inwards_and_clips():
    gt = (100.0, 15.0, 0.0, 1000.0, 0.0, -15.0)
    # Edges on pixel edges (up to rounding) keep those pixels; others snap inwards.
    assert grid.pixel_window((100.0, 850.0, 250.0, 1000.0), gt, (50, 50)) == (0, 10, 0, 10)
    assert grid.pixel_window((107.5, 842.5, 257.5, 992.5), gt, (50, 50)) == (1, 10, 1, 10)
    assert grid.pixel_window((0.0, 0.0, 1e6, 1e6), gt, (50, 40)) == (0, 50, 0, 40)


def test_misalignment_offset_and_drift_in_pan_px():
    pan_gt = (0.0, 0.5, 0.0, 100.0, 0.0, -0.5)
    assert grid.misalignment((0.0, 2.0, 0.0, 100.0, 0.0, -2.0), (100, 100), pan_gt, 4) == (0, 0, 0, 0)
    off_x, off_y, dx, dy = grid.misalignment((0.25, 2.0, 0.0, 99.5, 0.0, -2.0), (100, 100), pan_gt, 4)
    assert off_x == pytest.approx(0.5) and off_y == 0 and dx == dy == 0
    # 0.001 m too large per MS pixel over 100 pixels = 0.1 m = 0.2 PAN px of drift
    _, _, dx, _ = grid.misalignment((0.0, 2.001, 0.0, 100.0, 0.0, -2.0), (100, 100), pan_gt, 4)
    assert dx == pytest.approx(0.2)
    assert grid.origin_in_pan_px((1.0, 2.0, 0.0, 99.0, 0.0, -2.0), pan_gt) == (2.0, 2.0)
