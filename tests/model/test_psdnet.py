"""PSDNet network: shapes, exact zero residual, teacher mode, gradients, stitching."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from psdnet_qgis.errors import PSDNetInputError
from psdnet_qgis.model.psdnet import PSDNet, PSDNetOutput, count_parameters
from psdnet_qgis.model.stitching import stitch
from psdnet_qgis.training.losses import feature_distillation, stages_l1

torch.set_num_threads(1)

SIZES = [(8, 8), (9, 13), (16, 24), (12, 8)]


def _inputs(b: int, c: int, r: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, h, w, generator=g), torch.rand(b, 1, h * r, w * r, generator=g)


@pytest.mark.parametrize("bands", [1, 3, 4, 8])
@pytest.mark.parametrize("ratio", [2, 3, 4])
def test_output_shapes(bands: int, ratio: int) -> None:
    torch.manual_seed(0)
    net = PSDNet(bands, ratio, width=8).eval()
    for h, w in SIZES:
        ms, pan = _inputs(1, bands, ratio, h, w)
        with torch.inference_mode():
            out = net(ms, pan)
        assert isinstance(out, PSDNetOutput)
        H, W = h * ratio, w * ratio
        for img in (out.out1, out.out2, out.out3):
            assert img.shape == (1, bands, H, W)
            assert torch.isfinite(img).all()
        assert out.f2.shape == (1, 8, H, W)
        assert out.f3.shape == (1, 8, H, W)


@pytest.mark.parametrize("ratio", [2, 3, 4])
@pytest.mark.parametrize("size", [(8, 8), (13, 10)])
def test_zero_residual_gives_exact_lms(ratio: int, size: tuple[int, int]) -> None:
    net = PSDNet(4, ratio, width=8).zero_residual_().eval()
    ms, pan = _inputs(2, 4, ratio, *size)
    lms = F.interpolate(ms, scale_factor=ratio, mode="bicubic", align_corners=False)
    with torch.inference_mode():
        out = net(ms, pan)
    for img in (out.out1, out.out2, out.out3):
        assert torch.equal(img, lms)


def test_channels_last_matches() -> None:
    torch.manual_seed(1)
    net = PSDNet(4, 4, width=8).eval()
    ms, pan = _inputs(1, 4, 4, 16, 16)
    with torch.inference_mode():
        ref = net(ms, pan).out3
        net_cl = net.to(memory_format=torch.channels_last)
        cl = torch.channels_last
        got = net_cl(ms.contiguous(memory_format=cl), pan.contiguous(memory_format=cl)).out3
    assert torch.allclose(ref, got, atol=1e-5)


def test_teacher_student_shapes_and_loss() -> None:
    torch.manual_seed(2)
    student = PSDNet(3, 4, width=8)
    teacher = PSDNet(3, 4, width=8, teacher=True)
    ms, pan = _inputs(2, 3, 4, 16, 12)
    gt = torch.rand(2, 3, 64, 48)
    s = student(ms, pan)
    with torch.no_grad():
        t = teacher(ms, pan, gt)
    assert s.f2.shape == t.f2.shape and s.f3.shape == t.f3.shape
    loss0 = stages_l1(s, gt)
    loss1 = stages_l1(s, gt) + 1.0 * feature_distillation(s, t)
    assert loss1 > loss0
    expected = sum(F.l1_loss(o, gt) for o in (s.out1, s.out2, s.out3)) + F.mse_loss(s.f2, t.f2) + F.mse_loss(s.f3, t.f3)
    assert torch.allclose(loss1, expected)


def test_teacher_uses_gt() -> None:
    torch.manual_seed(3)
    teacher = PSDNet(2, 2, width=8, teacher=True).eval()
    ms, pan = _inputs(1, 2, 2, 16, 16)
    gt = torch.rand(1, 2, 32, 32)
    with torch.inference_mode():
        a = teacher(ms, pan, gt)
        b = teacher(ms, pan, gt + 0.5)
    assert torch.equal(a.out1, b.out1)  # stage 1 does not see gt
    assert not torch.allclose(a.out2, b.out2)
    with pytest.raises(PSDNetInputError,
                       match=r"PSDNet gt: a teacher model needs gt of shape \(1, 2, 32, 32\), got None"):
        teacher(ms, pan)


def test_gradient_flows_to_every_parameter() -> None:
    torch.manual_seed(4)
    net = PSDNet(4, 3, width=8)
    ms, pan = _inputs(1, 4, 3, 9, 11)
    gt = torch.rand(1, 4, 27, 33)
    stages_l1(net(ms, pan), gt).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    # A PReLU slope can legitimately get a zero gradient when all its inputs are
    # positive (tiny width-8 attention MLPs), so require almost every tensor.
    nonzero = sum(int((p.grad != 0).any()) for p in net.parameters())
    assert nonzero >= 0.97 * len(list(net.parameters()))
    for stage in ("stem1", "dbpn", "head1", "enc3", "dec1", "head2", "ofbs", "head3"):
        assert any((p.grad != 0).any() for p in getattr(net, stage).parameters()), stage


def test_bad_inputs_are_rejected() -> None:
    net = PSDNet(4, 4, width=8)
    with pytest.raises(PSDNetInputError, match=r"PSDNet ms: tile of 7 x 8 MS px is too small; use at least 8 x 8"):
        net(torch.rand(1, 4, 7, 8), torch.rand(1, 1, 28, 32))
    with pytest.raises(PSDNetInputError, match=r"PSDNet pan: expected shape \(1, 1, 32, 32\) for ratio 4, "
                                               r"got \(1, 1, 30, 32\); crop PAN to exactly ratio x the MS tile"):
        net(torch.rand(1, 4, 8, 8), torch.rand(1, 1, 30, 32))
    with pytest.raises(PSDNetInputError, match=r"PSDNet ms: expected shape \(B, 4, h, w\), got \(1, 3, 8, 8\); "
                                               r"use a model trained for 3 bands or select matching bands"):
        net(torch.rand(1, 3, 8, 8), torch.rand(1, 1, 32, 32))
    with pytest.raises(PSDNetInputError, match="PSDNet ratio: got 5, supported ratios are 2, 3 and 4"):
        PSDNet(4, 5)


def test_stitch_is_half_hann_partition_of_unity() -> None:
    a = torch.ones(1, 1, 10, 3)
    b = torch.zeros(1, 1, 10, 3)
    out = stitch(a, b, dim=2, overlap=4)
    assert out.shape == (1, 1, 16, 3)
    w = [0.5 + 0.5 * math.cos(math.pi * i / 4) for i in range(4)]
    assert torch.allclose(out[0, 0, 6:10, 0], torch.tensor(w))
    assert torch.equal(out[0, 0, :6], torch.ones(6, 3))
    assert torch.equal(out[0, 0, 10:], torch.zeros(6, 3))
    c = torch.full((1, 2, 3, 10), 0.7)
    assert torch.allclose(stitch(c, c, dim=3, overlap=8), torch.full((1, 2, 3, 12), 0.7))


def test_parameter_count_close_to_paper() -> None:
    n = count_parameters(PSDNet(4, 4, width=28))
    assert 2.5e6 < n < 3.0e6


def test_a_few_adam_steps_reduce_the_loss() -> None:
    torch.manual_seed(5)
    net = PSDNet(3, 2, width=8)
    ms, pan = _inputs(2, 3, 2, 8, 8, seed=5)
    gt = F.interpolate(ms, scale_factor=2, mode="bicubic", align_corners=False) + 0.1 * (pan - 0.5)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = stages_l1(net(ms, pan), gt)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]


def test_stage1_whole_patch_ablation_same_parameters_and_shapes():
    a = PSDNet(4, 4, 8)
    b = PSDNet(4, 4, 8, stage1="whole")
    b.load_state_dict(a.state_dict())  # same parameters, only the stage-1 layout differs
    ms, pan = torch.rand(1, 4, 12, 20), torch.rand(1, 1, 48, 80)
    with torch.inference_mode():
        oa, ob = a(ms, pan), b(ms, pan)
    assert oa.out3.shape == ob.out3.shape == (1, 4, 48, 80)
    assert not torch.allclose(oa.out1, ob.out1)
    assert b.arch_kwargs()["stage1"] == "whole" and "stage1" not in a.arch_kwargs()
    with pytest.raises(PSDNetInputError, match=r"PSDNet stage1: got 'quarters', use one of \('multipatch', 'whole'\)"):
        PSDNet(4, 4, 8, stage1="quarters")


def test_detail_inputs_ignore_each_bands_level_and_keep_the_exact_lms(tmp_path) -> None:
    """inputs="detail": the stems see high-pass detail and the previous stage's residual, so a
    constant added to a band (a sensor's offset, haze) moves the output by exactly that constant
    (up to float rounding); a zero residual still gives exactly ``lms``; infer is forward's out3;
    the mode travels with the weights."""
    from psdnet_qgis.model.weights import load_model, save_model

    torch.manual_seed(0)
    m = PSDNet(4, 4, 8, inputs="detail").eval()
    ms, pan = _inputs(1, 4, 4, 12, 20)
    shift = torch.tensor([0.3, -0.2, 0.1, 0.5]).view(1, 4, 1, 1)
    with torch.inference_mode():
        out = m(ms, pan).out3
        moved = m(ms + shift, pan + 0.25).out3
        assert torch.allclose(moved - shift, out, atol=1e-5)
        assert torch.allclose(m.infer(ms, pan), out, atol=1e-5)
    plain = PSDNet(4, 4, 8).eval()
    plain.load_state_dict(m.state_dict())  # same parameters, different inputs
    with torch.inference_mode():
        assert not torch.allclose(plain(ms + shift, pan).out3 - shift, plain(ms, pan).out3, atol=1e-3)
    assert m.arch_kwargs()["inputs"] == "detail" and "inputs" not in plain.arch_kwargs()
    save_model(m, tmp_path / "d.pt")
    back, _ = load_model(tmp_path / "d.pt")
    assert back.inputs == "detail"
    with torch.inference_mode():
        assert torch.allclose(back.infer(ms, pan), m.infer(ms, pan), atol=2e-2)  # fp16 storage
        lms = F.interpolate(ms, scale_factor=4, mode="bicubic", align_corners=False)
        assert torch.equal(m.zero_residual_()(ms, pan).out3, lms)
    with pytest.raises(PSDNetInputError, match=r"PSDNet inputs: got 'hp', use one of \('image', 'detail'\)"):
        PSDNet(4, 4, 8, inputs="hp")


def test_a_network_on_a_classical_base_adds_its_residual_to_that_base() -> None:
    """base="mtf_glp_fs": the stage outputs are residuals on the ``base`` the caller gives (a
    classical fusion), not on bicubic: a zero residual returns the base exactly; without a base,
    or with one of the wrong shape, the message names the shape it needs; the mode is stored."""
    m = PSDNet(4, 4, 8, base="mtf_glp_fs").eval()
    ms, pan = _inputs(2, 4, 4, 12, 16)
    base = torch.rand(2, 4, 48, 64)
    with torch.inference_mode():
        assert torch.allclose(m.infer(ms, pan, base), m(ms, pan, base=base).out3, atol=1e-5)
        m.zero_residual_()
        for o in m(ms, pan, base=base)[:3]:
            assert torch.equal(o, base)
        assert torch.equal(m.infer(ms, pan, base), base)
    with pytest.raises(PSDNetInputError, match=r"on a mtf_glp_fs base needs base of shape \(2, 4, 48, 64\), got None"):
        m(ms, pan)
    with pytest.raises(PSDNetInputError, match=r"got \(2, 4, 44, 64\)"):
        m.infer(ms, pan, base[:, :, :44])
    assert m.arch_kwargs()["base"] == "mtf_glp_fs" and "base" not in PSDNet(4, 4, 8).arch_kwargs()
    with pytest.raises(PSDNetInputError, match=r"PSDNet base: got 'gsa'"):
        PSDNet(4, 4, 8, base="gsa")
