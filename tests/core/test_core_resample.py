"""Bicubic upsampling: numpy twin of torch's bicubic."""

from __future__ import annotations

import numpy as np
import pytest

from psdnet_qgis.core.resample import upsample_bicubic
from psdnet_qgis.errors import PSDNetInputError


@pytest.mark.parametrize("ratio", [2, 3, 4])
@pytest.mark.parametrize("shape", [(3, 17, 23), (1, 1, 5), (4, 2, 2), (2, 40, 9)])
def test_matches_torch(ratio: int, shape: tuple[int, int, int]) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(ratio)
    ms = (rng.random(shape) * 1000).astype(np.float32) / 1000
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(ms)[None], scale_factor=ratio, mode="bicubic", align_corners=False
    )[0].numpy()
    out = upsample_bicubic(ms, ratio)
    assert out.shape == ref.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_constant_and_2d() -> None:
    ms = np.full((2, 5, 6), 7.25, np.float32)
    np.testing.assert_allclose(upsample_bicubic(ms, 4), 7.25, atol=1e-5)
    assert upsample_bicubic(ms[0], 3).shape == (15, 18)
    np.testing.assert_array_equal(upsample_bicubic(ms, 1), ms)


def test_bad_ratio() -> None:
    with pytest.raises(PSDNetInputError):
        upsample_bicubic(np.zeros((1, 4, 4)), 0)
    with pytest.raises(PSDNetInputError):
        upsample_bicubic(np.zeros((1, 4, 4)), 2.5)
