"""core.bands: band names from descriptions, the WorldView 8-band order, the check on the pixels."""

from __future__ import annotations

import numpy as np
import pytest

from psdnet_qgis.core import bands
from tests.rasters import worldview8_scene

W8 = list(bands.WORLDVIEW8)


@pytest.mark.parametrize(("text", "name"), [
    ("Coastal", "coastal"), ("Band 1 - Coastal Blue", "coastal"), ("Blue", "blue"), ("GREEN", "green"),
    ("Yellow", "yellow"), ("Red", "red"), ("Red Edge", "rededge"), ("NIR1", "nir1"), ("NIR 1", "nir1"),
    ("Near-IR2", "nir2"), ("NIR", "nir1"), ("B5Red", "red"), ("", None), ("Band 3", None),
])
def test_canonical_name(text, name):
    assert bands.canonical_name(text) == name


def test_names_from_metadata_needs_every_band_named_once():
    assert bands.names_from_metadata(["Blue", "Green", "Red", "NIR"]) == ["blue", "green", "red", "nir1"]
    assert bands.names_from_metadata(["Blue", "", "Red", "NIR"]) is None
    assert bands.names_from_metadata(["Red", "Red", "Green", "Blue"]) is None


def test_default_names_only_for_eight_bands():
    assert bands.default_names(8) == W8
    assert bands.default_names(4) is None


def test_select_maps_a_four_band_models_names():
    assert bands.select(W8, ["Blue", "Green", "Red", "NIR"]) == [1, 2, 4, 6]
    assert bands.select(["blue", "green", "red"], ["blue", "green", "red", "nir"]) is None


def test_check_confirms_the_right_order_and_contradicts_the_reversed_one():
    _, ms = worldview8_scene((24, 28), 4, seed=3)
    ok = bands.check_order(ms, W8)
    assert ok.verdict == "confirmed", ok
    assert ok.haze < -0.9 and ok.nir > 0.05
    rev = bands.check_order(ms[::-1], W8)
    assert rev.verdict == "contradicted", rev
    assert "expected near -1" in rev.reason


def test_check_is_calibration_free():
    _, ms = worldview8_scene((24, 28), 4, seed=3)
    gains = np.array([3.0, 0.5, 1.7, 2.2, 0.9, 4.0, 0.3, 1.1])[:, None, None]
    assert bands.check_order(ms * gains, W8).verdict == "confirmed"


def test_check_without_enough_pixels_is_inconclusive():
    _, ms = worldview8_scene((24, 28), 4, seed=3)
    valid = np.zeros(ms.shape[1:], bool)
    valid[:5, :5] = True
    assert bands.check_order(ms, W8, valid).verdict == "inconclusive"
