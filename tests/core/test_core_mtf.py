"""MTF-matched filters, sensor table and degradation."""

from __future__ import annotations

import numpy as np
import pytest

from psdnet_qgis.core import mtf
from psdnet_qgis.core.resample import upsample_bicubic
from psdnet_qgis.errors import PSDNetInputError


def _response_1d(h: np.ndarray, f: float) -> float:
    n = np.arange(h.size) - (h.size - 1) / 2
    return float(np.sum(h * np.cos(2 * np.pi * f * n)))


@pytest.mark.parametrize("gnyq,ratio", [(0.3, 4), (0.15, 4), (0.55, 2), (0.23, 4), (0.35, 3), (0.11, 4)])
def test_kernel_gain_at_nyquist(gnyq: float, ratio: int) -> None:
    k = mtf.mtf_kernel(gnyq, ratio)
    assert k.shape == (41, 41)
    assert abs(k.sum() - 1.0) < 1e-12
    np.testing.assert_allclose(k, k.T)
    h = k.sum(axis=1)  # separable: marginal is the 1-D kernel
    assert _response_1d(h, 0.0) == pytest.approx(1.0)
    assert _response_1d(h, 1 / (2 * ratio)) == pytest.approx(gnyq, abs=0.01)


def test_filter_measured_response_on_sinusoid() -> None:
    ratio, g = 4, 0.3
    f = 1 / (2 * ratio)
    x = np.arange(256)
    img = np.cos(2 * np.pi * f * x)[None, None, :].repeat(64, axis=1).astype(np.float32)
    out = mtf.mtf_filter(img, g, ratio)
    inner = out[0, :, 40:-40]
    gain = np.abs(inner).max()
    assert gain == pytest.approx(g, abs=0.01)


def test_constant_stays_constant() -> None:
    img = np.full((3, 40, 52), 123.5, np.float32)
    np.testing.assert_allclose(mtf.mtf_filter(img, [0.3, 0.2, 0.4], 4), 123.5, rtol=1e-5)
    for r in (2, 3, 4):
        out = mtf.degrade(img, 0.3, r)
        assert out.shape == (3, 40 // r, 52 // r)
        np.testing.assert_allclose(out, 123.5, rtol=1e-5)


def test_degrade_shapes_and_2d() -> None:
    img = np.random.default_rng(0).random((2, 37, 50)).astype(np.float32)
    assert mtf.degrade(img, 0.3, 4).shape == (2, 9, 12)
    assert mtf.degrade(img[0], 0.3, 4).shape == (9, 12)
    assert mtf.mtf_filter(img[0], 0.3, 4).shape == (37, 50)
    assert mtf.degrade(img, 0.3, 4).dtype == np.float32


@pytest.mark.parametrize("ratio", [2, 3, 4])
def test_degrade_is_area_centred(ratio: int) -> None:
    # A linear ramp filtered by a symmetric kernel keeps its value at the sampling point,
    # so degrade must return the ramp at the MS pixel centres i*r + (r-1)/2.
    n = 64 * ratio
    ramp = np.arange(n, dtype=np.float64)
    img = np.broadcast_to(ramp, (1, 8 * ratio, n)).astype(np.float32)
    out = mtf.degrade(img, 0.3, ratio)[0, 0]
    centres = np.arange(64) * ratio + (ratio - 1) / 2
    inner = slice(30 // ratio + 1, 64 - 30 // ratio - 1)
    np.testing.assert_allclose(out[inner], centres[inner], atol=1e-3)


def test_degrade_then_upsample_roundtrip_unbiased() -> None:
    # Smooth image: degrade + bicubic upsample reproduces it with no half-pixel shift.
    y, x = np.mgrid[0:128, 0:128] / 128.0
    img = np.sin(2 * np.pi * x)[None].astype(np.float32) + np.cos(2 * np.pi * y)[None].astype(np.float32)
    back = upsample_bicubic(mtf.degrade(img, 0.9, 4), 4)
    assert np.abs(back - img)[:, 16:-16, 16:-16].max() < 0.02


def test_sensor_table_and_gnyq_for() -> None:
    assert mtf.SENSORS["QuickBird"].ms == (0.34, 0.32, 0.30, 0.22)
    assert mtf.SENSORS["IKONOS"].pan == 0.17
    assert mtf.SENSORS["WorldView-2"].ms == (0.35,) * 7 + (0.27,)
    assert len(mtf.SENSORS["WorldView-3"].ms) == 8 and mtf.SENSORS["WorldView-3"].pan == 0.14
    assert set(mtf.SENSORS) >= {"QuickBird", "IKONOS", "GeoEye-1", "WorldView-2", "WorldView-3",
                                "Pleiades", "Landsat 8/9 OLI"}
    ms, pan = mtf.gnyq_for("wv3", 8)
    assert ms == mtf.SENSORS["WorldView-3"].ms and pan == 0.14
    assert mtf.gnyq_for("WorldView-3", 4).ms == (0.355, 0.360, 0.365, 0.335)
    assert mtf.gnyq_for("GeoEye-1", 4) == ((0.23,) * 4, 0.16)
    assert mtf.gnyq_for("landsat8", 4).ms == (0.55, 0.55, 0.55, 0.53)
    assert mtf.gnyq_for(None, 3) == ((0.3,) * 3, 0.15)
    assert mtf.gnyq_for("SomeSat", 5) == ((0.3,) * 5, 0.15)
    assert len(mtf.gnyq_for("QuickBird", 3).ms) == 3


def test_bad_inputs() -> None:
    with pytest.raises(PSDNetInputError):
        mtf.mtf_kernel(1.2, 4)
    with pytest.raises(PSDNetInputError):
        mtf.mtf_filter(np.zeros((2, 8, 8)), [0.3], 4)
    with pytest.raises(PSDNetInputError):
        mtf.degrade(np.zeros((1, 3, 3)), 0.3, 4)
