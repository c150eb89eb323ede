"""Post-hoc slimming (model/slim.py): a slim copy is an exact sub-network of the full one."""

from __future__ import annotations

import re

import pytest
import torch

from psdnet_qgis.errors import PSDNetInputError
from psdnet_qgis.model.psdnet import PSDNet
from psdnet_qgis.model.slim import channel_importance, keep_indices, slim

torch.set_num_threads(1)


def _net(c: int, r: int, width: int = 16, seed: int = 0) -> PSDNet:
    torch.manual_seed(seed)
    net = PSDNet(c, r, width=width).eval()
    with torch.no_grad():  # spread the channel norms, so the ranking is not a tie
        for p in net.parameters():
            if p.dim() > 1:
                p.mul_(torch.rand_like(p[:1]) + 0.5) if p.shape[0] > 1 else None
    return net


def _inputs(c: int, r: int, h: int, w: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, c, h, w, generator=g), torch.rand(1, 1, h * r, w * r, generator=g)


def test_full_width_is_the_same_network() -> None:
    net = _net(4, 4, 12)
    ms, pan = _inputs(4, 4, 16, 16)
    with torch.inference_mode():
        torch.testing.assert_close(slim(net, 12)(ms, pan).out3, net(ms, pan).out3, rtol=0, atol=0)


@pytest.mark.parametrize("ratio,width", [(4, 8), (2, 8), (3, 4)])
def test_slim_is_a_psdnet_of_that_width(ratio: int, width: int) -> None:
    net = _net(3, ratio, 16)
    s = slim(net, width)
    assert isinstance(s, PSDNet) and s.width == width and s.ratio == ratio and s.bands == 3
    ms, pan = _inputs(3, ratio, 12, 12)
    with torch.inference_mode():
        out = s(ms, pan).out3
    assert out.shape == (1, 3, 12 * ratio, 12 * ratio) and torch.isfinite(out).all()


def test_weights_are_slices_of_the_full_ones() -> None:
    net = _net(4, 4, 16)
    keep = keep_indices(net, 8)
    s = slim(net, 8)
    g1, g2, g3 = keep["G1"], keep["G2"], keep["G3"]
    torch.testing.assert_close(s.enc1[0].body[0].weight, net.enc1[0].body[0].weight[g1][:, g1])
    torch.testing.assert_close(s.enc2[0].body[0].weight, net.enc2[0].body[0].weight[g2][:, g2])
    torch.testing.assert_close(s.up2.weight, net.up2.weight[g2][:, g3])
    # a concatenation input keeps G1 in each part
    cat = torch.cat([g1, g1 + 16])
    torch.testing.assert_close(s.stem1.fuse[0].weight, net.stem1.fuse[0].weight[g1][:, cat])
    # transposed convolutions store (in, out, k, k)
    torch.testing.assert_close(s.stem1.image[0].weight, net.stem1.image[0].weight[:, g1])
    # image bands and PAN are never cut
    assert s.head3.last.weight.shape[0] == 4 and s.stem1.pan[0].weight.shape[1] == 1


def test_the_most_important_channels_are_kept() -> None:
    net = _net(4, 4, 16)
    with torch.no_grad():  # channel 5 of the base width: (near) zero in every layer
        for name, p in net.named_parameters():
            if p.dim() > 1 and p.shape[0] == 16 and "mlp" not in name:
                p[5] *= 1e-3
    score = channel_importance(net)["G1"]
    assert int(torch.argmin(score)) == 5
    assert 5 not in keep_indices(net, 8)["G1"].tolist()


def test_zero_residual_stays_exact() -> None:
    s = slim(_net(4, 4, 16).zero_residual_(), 8)
    ms, pan = _inputs(4, 4, 12, 9)
    lms = torch.nn.functional.interpolate(ms, scale_factor=4, mode="bicubic", align_corners=False)
    with torch.inference_mode():
        o = s(ms, pan)
    for out in (o.out1, o.out2, o.out3):
        torch.testing.assert_close(out, lms, rtol=0, atol=0)


def test_bad_width_is_a_clear_error() -> None:
    net = _net(4, 4, 8)
    with pytest.raises(PSDNetInputError, match=re.escape("slim width: got 12, use 4 to 8 (the model's width).")):
        slim(net, 12)
    with pytest.raises(
        PSDNetInputError,
        match=re.escape("slim: got a teacher PSDNet; slim the student (teacher=False)."),
    ):
        slim(PSDNet(4, 4, width=8, teacher=True), 4)
