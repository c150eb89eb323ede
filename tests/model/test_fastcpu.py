"""Fused CPU inference copy (model/fastcpu.py): same outputs as the network, original untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from psdnet_qgis.model import fastcpu
from psdnet_qgis.model.psdnet import PSDNet
from tests.cpu import requires_bf16, requires_fused

torch.set_num_threads(1)

pytestmark = requires_fused
ROOT = Path(__file__).resolve().parents[2]
CL = torch.channels_last


def _inputs(c: int, r: int, h: int, w: int, seed: int = 0, b: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ms = torch.randn(b, c, h, w, generator=g).contiguous(memory_format=CL)
    pan = torch.randn(b, 1, h * r, w * r, generator=g).contiguous(memory_format=CL)
    return ms, pan


def _random_net(c: int, r: int, width: int, seed: int, stage1: str = "multipatch") -> PSDNet:
    torch.manual_seed(seed)
    net = PSDNet(c, r, width=width, stage1=stage1).eval()
    with torch.no_grad():  # distinct PReLU slopes, so a wrong slope would show
        for k, m in enumerate(net.modules()):
            if isinstance(m, torch.nn.PReLU):
                m.weight.fill_(0.05 + 0.01 * (k % 20))
    return net


@pytest.mark.parametrize("ratio,size,stage1", [(4, (16, 16), "multipatch"), (4, (13, 10), "multipatch"),
                                               (2, (12, 20), "multipatch"), (3, (9, 9), "multipatch"),
                                               (4, (16, 24), "whole")])
def test_fp32_fused_equals_network(ratio: int, size: tuple[int, int], stage1: str) -> None:
    net = _random_net(4, ratio, 8, seed=ratio, stage1=stage1)
    ms, pan = _inputs(4, ratio, *size, seed=1, b=2)
    fused = fastcpu.fuse_for_cpu(net, torch.float32)
    with torch.inference_mode():
        ref = net(ms, pan)
        got = fused(ms, pan)
    for name in ("out1", "out2", "out3", "f2", "f3"):
        a, b = getattr(got, name), getattr(ref, name)
        assert a.shape == b.shape and a.dtype == torch.float32
        # only the order of float32 roundings differs
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, pytest.param(torch.bfloat16, marks=requires_bf16)])
def test_original_model_untouched_and_zero_residual_exact(dtype: torch.dtype) -> None:
    net = _random_net(4, 4, 8, seed=5)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fused = fastcpu.fuse_for_cpu(net, dtype)
    assert not any(p.requires_grad for p in fused.parameters())  # inference only
    after = net.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) and after[k].dtype == torch.float32 for k in before)
    net.zero_residual_()
    fused = fastcpu.fuse_for_cpu(net, dtype)
    ms, pan = _inputs(4, 4, 13, 11, seed=2)
    lms = F.interpolate(ms, scale_factor=4, mode="bicubic", align_corners=False)
    with torch.inference_mode():
        out = fused(ms, pan)
    for img in (out.out1, out.out2, out.out3):
        assert img.dtype == torch.float32 and torch.equal(img, lms)  # lms stays float32


@requires_bf16
def test_bf16_fused_close_to_fp32_with_bundled_weights() -> None:
    path = ROOT / "resources" / "models" / "psdnet_vhr4.pt"
    if not path.exists():
        pytest.skip("bundled psdnet_vhr4 weights not present")
    from psdnet_qgis.model.weights import load_model

    net, _ = load_model(str(path))
    net = net.float().eval()
    g = torch.Generator().manual_seed(3)
    # smooth image-like input (normalised units) plus texture, 40 x 40 MS px
    base = F.interpolate(torch.randn(1, 4, 5, 5, generator=g), size=(40, 40), mode="bicubic")
    ms = (base + 0.2 * torch.randn(1, 4, 40, 40, generator=g)).contiguous(memory_format=CL)
    pan = (F.interpolate(ms.mean(1, keepdim=True), scale_factor=4, mode="bicubic")
           + 0.2 * torch.randn(1, 1, 160, 160, generator=g)).contiguous(memory_format=CL)
    with torch.inference_mode():
        ref = net(ms, pan).out3
        got = fastcpu.fuse_for_cpu(net, torch.bfloat16)(ms, pan).out3
    d = (got - ref).abs()
    # measured: max 0.02, mean 0.002 (band std units); bf16 has 8 significant bits
    assert d.mean() < 0.01 and d.max() < 0.1


def test_channel_max_is_amax_exactly_in_every_dtype_and_width() -> None:
    """The bf16 tree of pairwise maxima (faster than torch's bf16 channel reduction on the CPU) gives
    amax's values, NaN included, on whole maps and on the real channels of a padded one."""
    from psdnet_qgis.model.blocks import channel_max

    gen = torch.Generator().manual_seed(0)
    for c in (1, 2, 3, 7, 8, 28, 32):
        for dtype in (torch.bfloat16, torch.float32):
            x = torch.randn(2, c, 13, 9, generator=gen).to(dtype).contiguous(memory_format=torch.channels_last)
            x[0, 0, 0, 0] = float("nan")
            with torch.inference_mode():
                for part in (x, x[:, :max(1, c - 4)]):
                    for keep in (True, False):
                        got, want = channel_max(part, keep), part.amax(dim=1, keepdim=keep)
                        assert got.shape == want.shape
                        assert torch.equal(got.nan_to_num(-99.0), want.nan_to_num(-99.0)), (c, dtype, keep)
