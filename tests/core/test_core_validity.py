"""core.validity: the one validity rule of every raster reader (finite, not nodata, not fill)."""

from __future__ import annotations

import numpy as np

from psdnet_qgis.core.validity import valid_pixels


def _window() -> np.ndarray:
    arr = np.ones((3, 2, 4), np.float32)
    arr[0, 0, 0] = np.nan
    arr[1, 0, 1] = np.inf
    arr[2, 1, 2] = -9999.0  # nodata in one band only
    arr[0, 1, 3] = -3.4e38  # huge negative fill
    return arr


def test_a_pixel_is_valid_only_when_every_band_is_finite():
    valid = valid_pixels(_window())
    assert valid.shape == (2, 4)
    np.testing.assert_array_equal(valid, [[False, False, True, True], [True, True, True, True]])


def test_nodata_in_any_band_makes_the_pixel_invalid():
    valid = valid_pixels(_window(), -9999.0)
    np.testing.assert_array_equal(valid, [[False, False, True, True], [True, True, False, True]])


def test_nodata_is_compared_in_float32():
    arr = np.full((1, 1, 2), 0.1, np.float32)
    arr[0, 0, 1] = -3.4028234663852886e38
    np.testing.assert_array_equal(valid_pixels(arr, 0.1), [[False, True]])
    np.testing.assert_array_equal(valid_pixels(arr, -3.4028234663852886e38), [[True, False]])


def test_a_nan_nodata_adds_nothing_to_the_finiteness_test():
    np.testing.assert_array_equal(valid_pixels(_window(), float("nan")), valid_pixels(_window()))


def test_fill_below_marks_huge_negative_values_invalid():
    valid = valid_pixels(_window(), fill_below=-1e30)
    np.testing.assert_array_equal(valid, [[False, False, True, True], [True, True, True, False]])
