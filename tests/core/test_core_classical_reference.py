"""Classical methods pinned against the independent reference implementations (Vivone et al.).

``reference_pansharpening`` holds whole-image float64 implementations written from the
published definitions; the product code (fit once, apply per tile, float32) must stay within
5 % ERGAS of them on a reduced-resolution (Wald) pair, and the ERGAS values themselves are
pinned so that a change of either side shows.
"""

from __future__ import annotations

import numpy as np
import pytest

from psdnet_qgis.core import classical as K
from psdnet_qgis.core import metrics as M
from psdnet_qgis.core import mtf
from psdnet_qgis.core.classical.base import nnls_gram
from psdnet_qgis.core.resample import upsample_bicubic

from . import reference_pansharpening as R

RATIO = 4
SENSOR = "WorldView-2"


def _field(c: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return sum(upsample_bicubic(rng.random((c, n // s, n // s)), s) for s in (1, 2, 4, 8, 16))


@pytest.fixture(scope="module")
def wald() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reference MS (4, 128, 128), degraded MS (4, 32, 32), degraded PAN (128, 128))."""
    c, n = 4, 128
    common = _field(1, n, 11)
    ref = 200 + 300 * (0.7 * common + 0.3 * _field(c, n, 12)) * np.array([0.8, 1.0, 1.1, 1.4])[:, None, None]
    ref = ref.astype(np.float32)
    # a PAN with its own fine detail on top of the MS content, at RATIO times the resolution
    pan_fr = 20 * upsample_bicubic(_field(1, n, 13), RATIO)[0] + upsample_bicubic(ref.mean(0)[None], RATIO)[0]
    g = mtf.gnyq_for(SENSOR, c)
    return ref, mtf.degrade(ref, g.ms, RATIO), mtf.degrade(pan_fr.astype(np.float32), g.pan, RATIO)


#: ERGAS of the reference implementations on the fixture.
PINNED = {"gsa": 1.4733, "mtf_glp_hpm": 1.4401, "mtf_glp_fs": 1.4710}


def _reference(name: str, ms: np.ndarray, pan: np.ndarray) -> np.ndarray:
    g = mtf.gnyq_for(SENSOR, ms.shape[0])
    if name == "gsa":
        return R.gsa_reference(ms, pan, RATIO, g.pan)
    if name == "mtf_glp_hpm":
        return R.hpm_reference(ms, pan, RATIO, g.ms)
    return R.fs_reference(ms, pan, RATIO, g.ms)


@pytest.mark.parametrize("name", ["gsa", "mtf_glp_hpm", "mtf_glp_fs"])
def test_within_5_percent_ergas_of_the_reference(name: str, wald) -> None:
    ref, ms, pan = wald
    own = M.ergas(K.METHODS[name](ms, pan, RATIO, SENSOR), ref, RATIO)
    theirs = M.ergas(_reference(name, ms, pan), ref, RATIO)
    assert abs(own - theirs) <= 0.05 * theirs
    assert theirs == pytest.approx(PINNED[name], rel=1e-3)
    assert own == pytest.approx(PINNED[name], rel=0.01)


@pytest.mark.parametrize("name", ["gsa", "mtf_glp_hpm", "mtf_glp_fs"])
def test_pixels_follow_the_definition(name: str, wald) -> None:
    """Not only the score: the fused pixels are the definition's (e.g. GSA's detail is the
    zero-mean PAN minus the zero-mean intensity, with no PAN std equalisation)."""
    _, ms, pan = wald
    own = K.METHODS[name](ms, pan, RATIO, SENSOR)
    theirs = _reference(name, ms, pan)
    detail = np.std(theirs - upsample_bicubic(ms, RATIO))
    assert np.sqrt(np.mean((own - theirs) ** 2)) < 0.01 * detail


def test_gsa_without_std_equalisation_beats_the_equalised_variant(wald) -> None:
    """The regression of issue 13: scaling the PAN to std(I) left a negative low-pass copy
    of the PAN in the detail and cost ERGAS."""
    ref, ms, pan = wald
    stats = K.gsa_stats(ms, pan, RATIO, SENSOR)
    up = upsample_bicubic(ms, RATIO)
    c = ms.shape[0]
    intensity = np.tensordot(stats.alpha[:c], up, axes=1) + stats.alpha[c]
    matched = (pan - stats.pan_mean) * stats.intensity_std / stats.pan_std + stats.intensity_mean
    equalised = up + stats.gains[:, None, None] * (matched - intensity)[None]
    assert M.ergas(K.gsa(ms, pan, RATIO, SENSOR), ref, RATIO) < M.ergas(equalised, ref, RATIO)


def test_bdsd_pc_constraints_and_optimality(wald) -> None:
    """g_b >= 0 and w_bk >= 0, and the NNLS solution satisfies the KKT conditions."""
    _, ms, pan = wald
    gamma = K.bdsd_pc_stats(ms, pan, RATIO, SENSOR).gamma
    assert gamma.shape == (4, 5) and np.all(gamma >= 0.0) and np.all(gamma[:, 0] > 0.0)
    rng = np.random.default_rng(3)
    a = rng.normal(size=(200, 6))
    b = a @ np.array([1.0, -2.0, 0.5, 0.0, -0.1, 3.0]) + rng.normal(scale=0.1, size=200)
    x = nnls_gram(a.T @ a, a.T @ b)
    grad = a.T @ (a @ x - b)
    assert np.all(x >= 0)
    np.testing.assert_allclose(grad[x > 0], 0.0, atol=1e-8)
    assert np.all(grad[x == 0] >= -1e-8)


@pytest.mark.parametrize("name", ["mtf_glp_fs", "bdsd_pc"])
def test_tiles_with_global_stats_equal_the_whole_image(name: str, wald) -> None:
    _, ms, pan = wald
    stats = K.fit(name, ms, pan, RATIO, SENSOR)
    whole = K.apply(name, ms, pan, RATIO, stats)
    m = 8  # context margin (MS px): the MTF filter's and bicubic's reach
    tile = K.apply(name, ms[:, 4:28, 4:28], pan[4 * RATIO:28 * RATIO, 4 * RATIO:28 * RATIO], RATIO, stats)
    inner = slice((m - 4) * RATIO, (24 - (m - 4)) * RATIO)
    np.testing.assert_allclose(tile[:, inner, inner], whole[:, 8 * RATIO:24 * RATIO, 8 * RATIO:24 * RATIO],
                               rtol=1e-5, atol=1e-3)


def test_sensor_choices_and_names() -> None:
    assert mtf.SENSOR_CHOICES[0] == mtf.UNKNOWN and mtf.SENSOR_CHOICES[-1] == mtf.AUTO
    assert list(mtf.SENSOR_CHOICES[1:-1]) == list(mtf.SENSORS)
    for spelling, name in (("WV02", "WorldView-2"), ("wv3", "WorldView-3"), ("LANDSAT_8", "Landsat 8/9 OLI"),
                           ("GE01", "GeoEye-1"), ("Pléiades", "Pleiades"), ("auto", None), ("nope", None)):
        assert mtf.canonical_sensor(spelling) == name
    assert "0.35" in mtf.describe_gains("wv2", 8) and "defaults" in mtf.describe_gains(None, 4)
