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


@pytest.mark.parametrize("ratio", [2, 3, 4, 5, 8])
@pytest.mark.parametrize("shape", [(4, 37, 25), (3, 1, 1), (2, 1, 7), (1, 2, 3)])
def test_phase_views_give_the_gathers_numbers_exactly(ratio: int, shape: tuple[int, int, int]) -> None:
    """The per-phase shifted views (the fast path) sum the same products in the same order as the
    gather of the four taps: identical output, bit for bit; where the phases are not exact the
    gather itself runs."""
    from psdnet_qgis.core import resample

    x = np.random.default_rng(ratio).random(shape, dtype=np.float32) * 2047
    for axis in (1, 2):
        n = shape[axis]
        idx, wgt = resample._cubic_taps(n, ratio)
        offsets = resample._phase_offsets(idx, wgt, n, ratio)
        # powers of two: exact phases in float32, the fast path; 3 and 5: the weights of a phase
        # differ in their last bits from pixel to pixel (as torch's), so the gather runs
        assert offsets is not None or ratio not in (2, 4, 8)
        view = [1] * 3
        view[axis] = -1
        gather = np.take(x, idx[0], axis=axis) * wgt[0].reshape(view)
        for k in range(1, 4):
            gather += np.take(x, idx[k], axis=axis) * wgt[k].reshape(view)
        assert np.array_equal(resample._apply_axis(x, axis, ratio), gather)
