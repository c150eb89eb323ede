"""The eager inference path (model/blocks.py, PSDNet.infer): the autograd path's numbers, inputs untouched.

Outside autograd the blocks write into the buffers they made, convolve concatenations piece by
piece and run stage 1 / the encoder one sub-patch / half at a time; ``PSDNet.infer`` keeps only
what ``out3`` needs. All of it must give the plain ops' results (float rounding only).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from psdnet_qgis.errors import PSDNetInputError
from psdnet_qgis.model.blocks import PReLU, add_into, conv_of_cat
from psdnet_qgis.model.psdnet import PSDNet, PSDNetOutput

torch.set_num_threads(1)
CL = torch.channels_last


def _net(ratio: int, stage1: str = "multipatch", seed: int = 3) -> PSDNet:
    torch.manual_seed(seed)
    net = PSDNet(4, ratio, width=8, stage1=stage1).eval()
    with torch.no_grad():  # distinct PReLU slopes, so a wrong slope would show
        for k, m in enumerate(net.modules()):
            if isinstance(m, nn.PReLU):
                m.weight.fill_(0.05 + 0.01 * (k % 20))
    return net


def _inputs(b: int, ratio: int, h: int, w: int, fmt: torch.memory_format) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    ms = torch.randn(b, 4, h, w, generator=g).contiguous(memory_format=fmt)
    pan = torch.randn(b, 1, h * ratio, w * ratio, generator=g).contiguous(memory_format=fmt)
    return ms, pan


@pytest.mark.parametrize("fmt", [torch.contiguous_format, CL])
@pytest.mark.parametrize("ratio,size,stage1", [(4, (16, 16), "multipatch"), (3, (9, 13), "multipatch"),
                                               (2, (12, 8), "multipatch"), (4, (16, 24), "whole")])
def test_inference_matches_autograd_and_leaves_inputs(fmt: torch.memory_format, ratio: int,
                                                      size: tuple[int, int], stage1: str) -> None:
    net = _net(ratio, stage1)
    if fmt == CL:
        net = net.to(memory_format=CL)  # type: ignore[call-overload]  # the predictor's layout
    ms, pan = _inputs(2, ratio, *size, fmt)
    ms0, pan0 = ms.clone(), pan.clone()
    ref = net(ms, pan)  # autograd on: the plain ops, stage 1 on the stacked pieces
    assert ref.out3.requires_grad
    with torch.inference_mode():
        out = net(ms, pan)
        img = net.infer(ms, pan)
    for name in PSDNetOutput._fields:
        torch.testing.assert_close(getattr(out, name), getattr(ref, name).detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(img, ref.out3.detach(), rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # no_grad takes the same path as inference_mode
        torch.testing.assert_close(net.infer(ms, pan), img, rtol=0, atol=0)
    assert torch.equal(ms, ms0) and torch.equal(pan, pan0)


def test_infer_of_a_zero_residual_model_is_exactly_lms() -> None:
    net = _net(4).zero_residual_()
    ms, pan = _inputs(1, 4, 13, 10, CL)
    lms = F.interpolate(ms, scale_factor=4, mode="bicubic", align_corners=False)
    with torch.inference_mode():
        assert torch.equal(net.infer(ms, pan), lms)


def test_infer_refuses_a_teacher() -> None:
    ms, pan = _inputs(1, 4, 8, 8, torch.contiguous_format)
    with pytest.raises(PSDNetInputError, match="teacher"):
        PSDNet(4, 4, width=8, teacher=True).infer(ms, pan)


def test_prelu_in_place_only_outside_autograd() -> None:
    act = PReLU()
    with torch.no_grad():
        act.weight.fill_(0.3)
    x = torch.randn(2, 3, 5, 5)
    want = F.prelu(x, act.weight.detach())
    y = x.clone()
    with torch.inference_mode():
        out = act(y)
    assert out.data_ptr() == y.data_ptr() and torch.equal(out, want)  # same buffer, same numbers
    y = x.clone().requires_grad_()
    out = act(y)
    assert out.data_ptr() != y.data_ptr() and torch.equal(out.detach(), want)
    out.sum().backward()  # autograd: the plain op
    assert act.weight.grad is not None


def test_add_into_writes_into_the_new_buffer_only_when_it_can() -> None:
    x = torch.randn(2, 3, 4, 4)
    with torch.inference_mode():
        y = torch.randn(2, 3, 4, 4)
        want = x + y
        out = add_into(y, x)
        assert out.data_ptr() == y.data_ptr() and torch.equal(out, want)
        xx = x.clone()
        assert torch.equal(add_into(xx, xx), 2 * x) and torch.equal(xx, x)  # aliasing: a new tensor
        small = torch.randn(2, 3, 1, 1)  # broadcasting: a new tensor
        assert torch.equal(add_into(small, x), x + small)
        half = torch.randn(2, 3, 4, 4, dtype=torch.bfloat16)  # promotion: a new float32 tensor
        assert add_into(half, x).dtype == torch.float32


@pytest.mark.parametrize("fmt", [torch.contiguous_format, CL])
@pytest.mark.parametrize("kernel", [1, 3])
def test_conv_of_cat_matches_the_concatenation(fmt: torch.memory_format, kernel: int) -> None:
    torch.manual_seed(0)
    block = nn.Sequential(nn.Conv2d(12, 5, kernel, padding=kernel // 2), PReLU()).eval()
    block = block.to(memory_format=fmt)  # type: ignore[call-overload]
    xs = [torch.randn(2, c, 9, 7).contiguous(memory_format=fmt) for c in (4, 3, 5)]
    with torch.inference_mode():
        want = block(torch.cat(xs, dim=1))
        got = conv_of_cat(block, xs)
        lazy = conv_of_cat(block, [lambda: xs[0], lambda: xs[1], xs[2]])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(lazy, got, rtol=0, atol=0)
    with torch.inference_mode(), pytest.raises(ValueError, match="channels"):
        conv_of_cat(block, xs[:2])
    # autograd: the concatenation itself
    out = conv_of_cat(block, [x.requires_grad_() for x in xs])
    out.sum().backward()
    assert all(x.grad is not None for x in xs)
