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
    ("Near Infrared", "nir1"), ("Near-IR", "nir1"), ("Red (B4)", "red"), ("NIR band 8", "nir1"),
])
def test_canonical_name(text, name):
    assert bands.canonical_name(text) == name


def test_names_from_metadata_needs_every_band_named_once():
    assert bands.names_from_metadata(["Blue", "Green", "Red", "NIR"]) == ["blue", "green", "red", "nir1"]
    assert bands.names_from_metadata(["Blue", "", "Red", "NIR"]) is None
    assert bands.names_from_metadata(["Red", "Red", "Green", "Blue"]) is None
    # a Pleiades / SPOT export: red, green, blue, NIR
    assert bands.names_from_metadata(["Red", "Green", "Blue", "Near Infrared"]) == ["red", "green", "blue", "nir1"]


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


def test_uniform_scene_is_inconclusive_not_contradicted():
    """Noise, not haze, sets the darkest pixels of a uniform scene: here it falls with wavelength,
    which ranks the dark-pixel ratios exactly reversed, yet the ratios span too little to count."""
    rng = np.random.default_rng(0)
    noise = np.linspace(0.02, 0.005, 8)[:, None, None]
    ms = 500.0 * (1.0 + noise * rng.standard_normal((8, 32, 32)))
    check = bands.check_order(ms, W8)
    assert check.haze is not None and check.haze > 0.9  # the sign alone says "reversed"
    assert check.verdict == "inconclusive", check
    assert "uniform scene" in check.reason


def test_evidence_strength_is_reported():
    _, ms = worldview8_scene((24, 28), 4, seed=3)
    check = bands.check_order(ms, W8)
    assert check.pixels == 24 * 28
    lo, hi = check.haze_range
    assert lo <= check.haze <= hi or np.isclose(check.haze, lo) or np.isclose(check.haze, hi)
    assert "over resampled blocks" in check.reason and "672 px" in check.reason


@pytest.mark.parametrize("side", [12, 16, 32])
def test_small_scenes_keep_right_and_wrong_apart(side):
    """Small MS (down to 12 x 12 px): a right order is never refused, a reversed one never confirmed."""
    for seed in range(6):
        _, ms = worldview8_scene((side, side), 4, seed=seed)
        assert bands.check_order(ms, W8).verdict != "contradicted", (side, seed)
        assert bands.check_order(ms[::-1], W8).verdict != "confirmed", (side, seed)


def test_check_is_deterministic():
    _, ms = worldview8_scene((20, 20), 4, seed=1)
    assert bands.check_order(ms, W8) == bands.check_order(ms.copy(), W8)


RGBN = ["red", "green", "blue", "nir1"]
BGRN = ["blue", "green", "red", "nir1"]


@pytest.fixture(scope="module")
def rgbn():
    """A 4-band MS in red, green, blue, NIR order (Pleiades / SPOT exports)."""
    _, ms = worldview8_scene((24, 28), 4, seed=3)
    return ms[[4, 2, 1, 6]]


def test_four_bands_in_red_green_blue_nir_order_are_confirmed(rgbn):
    check = bands.check_order(rgbn, RGBN)
    assert check.verdict == "confirmed", check
    assert check.distinct > 0 and check.nir is None  # NIR apart from the visible bands; no NIR pair


def test_four_bands_claimed_in_the_wrong_order_are_never_confirmed(rgbn):
    # the same file claimed blue, green, red, NIR (red and blue swapped): haze does not confirm
    assert bands.check_order(rgbn, BGRN).verdict != "confirmed"
    bgrn = rgbn[[2, 1, 0, 3]]
    assert bands.check_order(bgrn, BGRN).verdict == "confirmed"
    # red and NIR swapped: haze alone would pass it, the NIR sign does not
    swapped = bgrn[[0, 1, 3, 2]]
    check = bands.check_order(swapped, BGRN)
    assert check.haze <= bands.HAZE_CONFIRM and check.distinct < 0
    assert check.verdict != "confirmed", check
    # reversed: contradicted
    assert bands.check_order(bgrn[::-1], BGRN).verdict == "contradicted"


def test_nir_that_follows_the_visible_bands_contradicts():
    """Vegetation (NIR) independent of the visible texture, the same haze in every band: the band
    claimed NIR is in fact blue, and it follows green and red better than the claimed visible
    bands (one of them the real NIR) follow each other. Haze alone cannot tell."""
    from tests.rasters import synthetic_scene

    _, tex = synthetic_scene((24, 28), 1, 4, seed=1, max_value=1.0)
    _, veg = synthetic_scene((24, 28), 1, 4, seed=2, max_value=1.0)
    ms = np.concatenate([100 + 300 * tex, 110 + 280 * tex, 120 + 260 * tex, 100 + 300 * veg])  # B, G, R, NIR
    right = bands.check_order(ms, BGRN)
    assert right.distinct > 0.8 and right.verdict != "contradicted"
    fake = bands.check_order(ms[[3, 1, 2, 0]], BGRN)  # NIR and blue swapped
    assert fake.haze_range[0] < bands.HAZE_CONTRADICT  # not the haze sign...
    assert fake.distinct_range[1] <= bands.DISTINCT_CONTRADICT  # ...the NIR one
    assert fake.verdict == "contradicted", fake


# ---------------------------------------------------------------------------------------- Landsat
@pytest.mark.parametrize(("text", "number"), [
    ("B5", 5), ("Band 5", 5), ("SR_B5", 5), ("B5 (NIR)", 5), ("B05", 5), ("band_7", 7),
    ("LC08_L1TP_195025_20130707_20170503_01_T1_B5.TIF", 5), ("l8_B5.tif", 5), ("/data/l8/l8_B7.TIF", 7),
    ("subset_band2_TOA.tif", 2), ("LC08_L2SP_195025_20200707_20200912_02_T1_ST_B10.TIF", 10),
    ("Blue", None), ("", None), ("ms.tif", None), ("l8_stack.tif", None),
])
def test_landsat_band_number(text, number):
    assert bands.landsat_band_number(text) == number


@pytest.mark.parametrize(("text", "oli", "etm"), [
    ("B1", "coastal", "blue"), ("B2", "blue", "green"), ("B4", "red", "nir"), ("B5", "nir", "swir1"),
    ("B6", "swir1", "thermal"), ("B7", "swir2", "swir2"), ("B8", None, None), ("SR_B3", "green", "red"),
    # a band name in the text wins over the number (whose meaning depends on the instrument)
    ("B5 (NIR)", "nir", "nir"), ("Near Infrared", "nir", "nir"), ("SWIR 1", "swir1", "swir1"),
    ("Coastal", "coastal", None), ("Yellow", None, None),
])
def test_landsat_name_per_instrument(text, oli, etm):
    assert bands.landsat_name(text, "oli") == oli
    assert bands.landsat_name(text, "etm") == etm
    assert bands.landsat_name(text, "tm") == etm


@pytest.mark.parametrize(("label", "instrument"), [
    ("Landsat 8 OLI", "oli"), ("Landsat 9 OLI", "oli"), ("Landsat 8/9 OLI", "oli"), ("Landsat-8/9 OLI", "oli"),
    ("landsat8", "oli"), ("Landsat 7 ETM+", "etm"), ("Landsat 5 TM", "tm"), ("Landsat 4 TM", "tm"),
    ("Landsat 5 MSS", None), ("Landsat 8 TIRS", None), ("WorldView-3", None), ("unknown", None), (None, None),
])
def test_landsat_instrument(label, instrument):
    assert bands.landsat_instrument(label) == instrument


def test_landsat_names_need_every_band_once_and_keep_the_worldview_names_apart():
    files = [f"LC08_L1TP_195025_20130707_20170503_01_T1_B{i}.TIF" for i in range(1, 8)]
    assert bands.landsat_names(files, "oli") == ["coastal", "blue", "green", "red", "nir", "swir1", "swir2"]
    assert bands.landsat_names(["B2", "B3", "B4", "B5"], "oli") == ["blue", "green", "red", "nir"]
    assert bands.landsat_names(["B1", "B2", "B3", "B4", "B5", "B7"], "etm") == [
        "blue", "green", "red", "nir", "swir1", "swir2"]
    assert bands.landsat_names(["B2", "B2", "B4"], "oli") is None
    assert bands.landsat_names(["B2", "B8", "B4"], "oli") is None  # B8 is the PAN
    # without a Landsat sensor a band number names nothing (WorldView behaviour unchanged)
    assert bands.canonical_name("Band 3") is None and bands.canonical_name("NIR") == "nir1"


def test_swir_and_nir_are_canonical_names():
    assert bands.canonical_name("SWIR 1") == "swir1" and bands.canonical_name("SWIR-2 (B7)") == "swir2"
    assert bands.canonical_name("Short-wave infrared 1") == "swir1" and bands.canonical_name("TIRS 1") == "thermal1"
    assert [bands.WAVELENGTH_NM[n] for n in ("red", "nir", "swir1", "swir2")] == sorted(
        bands.WAVELENGTH_NM[n] for n in ("red", "nir", "swir1", "swir2"))
    # a model's NIR is Landsat's one NIR band
    assert bands.select(["coastal", "blue", "green", "red", "nir"], ["Blue", "Green", "Red", "NIR"]) == [1, 2, 3, 4]
    assert bands.select(["coastal", "blue", "green", "red", "nir", "swir1", "swir2"],
                        ["blue", "green", "red"]) == [1, 2, 3]


def test_the_pan_covers_no_swir_or_thermal_band():
    assert [bands.pan_covers(n) for n in ("coastal", "blue", "red", "nir", "nir1", "swir1", "swir2",
                                          "thermal", "cirrus")] == [True] * 5 + [False] * 4


def test_check_confirms_a_landsat_order_and_contradicts_it_reversed():
    from tests.rasters import LANDSAT7, landsat_scene

    _, ms = landsat_scene((32, 32), 2, seed=4)
    ok = bands.check_order(ms, LANDSAT7)
    assert ok.verdict == "confirmed", ok
    assert ok.distinct is not None and ok.distinct > 0  # the NIR-apart sign uses Landsat's "nir"
    assert bands.check_order(ms[::-1], LANDSAT7).verdict == "contradicted"
