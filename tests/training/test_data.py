"""Wald pairs, patch sampling and the radiometric-scale invariance of the training data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from psdnet_qgis.errors import PSDNetInputError
from psdnet_qgis.training.data import PatchSampler, crop_pair, largest_valid_window, make_wald_pair


def _scene(seed: int = 0, h: int = 48, w: int = 40, r: int = 4, c: int = 4):
    """Smooth random MS (C, h, w) and a PAN (1, h r, w r) correlated with it."""
    rng = np.random.default_rng(seed)
    base = rng.random((h * r // 4 + 1, w * r // 4 + 1)).astype(np.float32)
    big = np.kron(base, np.ones((4, 4), np.float32))[: h * r, : w * r]
    pan = (300 + 500 * big + 20 * rng.random((h * r, w * r))).astype(np.float32)[None]
    blk = pan[0].reshape(h, r, w, r).mean((1, 3))
    ms = np.stack([blk * (0.5 + 0.2 * b) + 10 * b for b in range(c)]).astype(np.float32)
    return ms, pan


def test_pair_shapes_and_normalisation():
    ms, pan = _scene()
    p = make_wald_pair(ms, pan, 4, 0.3, 0.15)
    assert p.ms.shape == (4, 12, 10) and p.pan.shape == (1, 48, 40) and p.gt.shape == (4, 48, 40)
    assert p.valid.all()
    # zscore4 of the inputs: mean 0.5, std 0.25 per band.
    np.testing.assert_allclose(p.ms.mean((1, 2)), 0.5, atol=1e-4)
    np.testing.assert_allclose(p.ms.std((1, 2)), 0.25, atol=1e-4)
    np.testing.assert_allclose(p.normalizer.denorm_ms(p.gt), ms, rtol=1e-4, atol=1e-2)


@pytest.mark.parametrize("a,b", [(1000.0, 0.0), (1e-3, 0.0), (1.0, 5000.0), (3.0, -200.0)])
def test_pair_invariant_to_radiometric_scale_and_offset(a, b):
    ms, pan = _scene(1)
    p = make_wald_pair(ms, pan, 4, (0.3, 0.3, 0.3, 0.3), 0.15)
    q = make_wald_pair(ms * a + b, pan * a + b, 4, (0.3, 0.3, 0.3, 0.3), 0.15)
    for x, y in ((p.ms, q.ms), (p.pan, q.pan), (p.gt, q.gt)):
        np.testing.assert_allclose(x, y, atol=2e-4)


def test_nodata_is_masked_and_not_sampled():
    ms, pan = _scene(2, h=64, w=96)
    ms_valid = np.ones((64, 96), bool)
    ms_valid[:, 64:] = False  # a no-data band on the right
    ms[:, ~ms_valid] = 0
    pan_valid = np.repeat(np.repeat(ms_valid, 4, 0), 4, 1)
    pan[:, ~pan_valid] = 0
    p = make_wald_pair(ms, pan, 4, 0.3, 0.15, ms_valid, pan_valid)
    assert not p.valid[:, 64:].any()
    assert p.valid[:, :40].all()
    # Statistics ignore the fill: the zero area does not drag the mean.
    assert p.normalizer.ms_mean.min() > 100
    s = PatchSampler([p], 32, seed=0)
    assert len(s.positions[0]) > 0
    for y, x in s.positions[0]:
        assert p.valid[y:y + 32, x:x + 32].all()


def test_sampler_seeded_shapes_and_resume_state():
    ms, pan = _scene(3)
    p = make_wald_pair(ms, pan, 4, 0.3, 0.15)
    a = PatchSampler([p], 32, seed=7)
    b = PatchSampler([p], 32, seed=7)
    ms_a, pan_a, gt_a = a.sample(3)
    assert ms_a.shape == (3, 4, 8, 8) and pan_a.shape == (3, 1, 32, 32) and gt_a.shape == (3, 4, 32, 32)
    assert ms_a.dtype == torch.float32
    torch.testing.assert_close(ms_a, b.sample(3)[0])
    state = a.state_dict()
    nxt = a.sample(2)[2]
    a.load_state_dict(state)
    torch.testing.assert_close(a.sample(2)[2], nxt)


def test_augmentation_keeps_ms_pan_geometry():
    """After flips/rotations each MS pixel still sits over its r x r PAN block: with a
    PAN equal to the gt (same content), the block means of the sample agree."""
    rng = np.random.default_rng(4)
    gt = rng.random((1, 64, 64)).astype(np.float32)
    p = make_wald_pair(np.repeat(gt, 1, 0), np.kron(gt, np.ones((1, 4, 4), np.float32)), 4, 0.3, 0.15)
    s = PatchSampler([p], 32, seed=1)
    for _ in range(4):
        ms, pan, g = s.sample(4)
        # Identical transforms: degraded PAN at gt resolution vs gt correlate strongly.
        c = np.corrcoef(pan.numpy().ravel(), g.numpy().ravel())[0, 1]
        assert c > 0.5


def test_largest_valid_window_and_crop():
    v = np.ones((40, 48), bool)
    v[:16, :24] = False
    y, x, h, w = largest_valid_window(v, 4)
    assert (h, w) == (24, 48) and (y, x) == (16, 0)
    ms, pan = _scene(5, h=40, w=48)
    p = make_wald_pair(ms, pan, 4, 0.3, 0.15)
    c = crop_pair(p, (16, 0, 24, 48))
    assert c.ms.shape == (4, 6, 12) and c.gt.shape == (4, 24, 48)
    with pytest.raises(PSDNetInputError):
        crop_pair(p, (1, 0, 24, 48))


def test_bad_inputs_raise():
    ms, pan = _scene()
    with pytest.raises(PSDNetInputError):
        make_wald_pair(ms, pan[:, :-4], 4, 0.3, 0.15)
    with pytest.raises(PSDNetInputError):
        make_wald_pair(ms[:, :8, :8], pan[:, :32, :32], 4, 0.3, 0.15)
    p = make_wald_pair(ms, pan, 4, 0.3, 0.15)
    with pytest.raises(PSDNetInputError):
        PatchSampler([p], 30)


def test_pairs_of_one_group_are_drawn_as_one_scene():
    ms, pan = _scene(1)
    one = make_wald_pair(ms, pan, 4, 0.3, 0.15, name="vhr")
    group = [make_wald_pair(ms, pan, 4, 0.3, 0.15, name=f"set#{k}") for k in range(3)]
    for balance in (0.0, 0.5):
        s = PatchSampler([one, *group], 32, balance=balance)
        # the group has three times the area of the single scene: weight 3 ** balance to 1
        np.testing.assert_allclose(s.weights[1:].sum() / s.weights[0], 3.0 ** balance)
        np.testing.assert_allclose(s.weights[1:], s.weights[1])
    alone = PatchSampler([one, make_wald_pair(ms, pan, 4, 0.3, 0.15, name="other")], 32, balance=0.5)
    np.testing.assert_array_equal(alone.weights, [0.5, 0.5])  # names without '#': unchanged


def test_a_pair_keeps_its_classical_base_and_the_sampler_cuts_it_with_the_gt():
    """base="mtf_glp_fs": the pair keeps MTF-GLP-FS of its own degraded inputs (normalised like
    the gt), and every batch's base patches are cut and turned exactly as its gt patches."""
    from psdnet_qgis.core import classical

    ms, pan = _scene()
    p = make_wald_pair(ms, pan, 4, 0.3, 0.15, base="mtf_glp_fs", sensor="WV3")
    plain = make_wald_pair(ms, pan, 4, 0.3, 0.15)
    assert plain.base is None and p.base is not None and p.base.shape == p.gt.shape
    ms_lr, pan_lr = p.normalizer.denorm_ms(p.ms), p.normalizer.denorm_pan(p.pan)[0]
    want = classical.apply("mtf_glp_fs", ms_lr, pan_lr, 4, classical.fit("mtf_glp_fs", ms_lr, pan_lr, 4, "WV3"))
    np.testing.assert_allclose(p.normalizer.denorm_ms(p.base), want, rtol=1e-3, atol=0.5)
    twin = make_wald_pair(ms, pan, 4, 0.3, 0.15, base="mtf_glp_fs", sensor="WV3")
    twin.base = twin.gt.copy()  # a base equal to the gt shows that both are cut alike
    s = PatchSampler([twin], 32, seed=3)
    for _ in range(3):
        _, _, gt = s.sample(4)
        assert s.last_base is not None and torch.equal(s.last_base, gt)
    q = PatchSampler([plain], 32)
    assert q.sample(2) and q.last_base is None
    with pytest.raises(PSDNetInputError, match="some pairs have a classical base and some do not"):
        PatchSampler([p, plain], 32)
