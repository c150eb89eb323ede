"""Building blocks of :class:`~psdnet_qgis.model.psdnet.PSDNet`.

Convolution shorthands, the attention blocks (:class:`CAB`, :class:`SAB`), the residual and
transfer units (:class:`ResBlock`, :class:`TransBlock`), the stage :class:`Stem` and
:class:`Head`, the DBPN projections (:class:`DownProjection`, :class:`UpProjection`,
:class:`DBPNBlock`) and the :class:`OFB`. The network assembles them in ``model/psdnet.py``;
``model/fastcpu.py`` replaces them by fused copies and ``model/slim.py`` slices them.
The attribute names here are part of the state-dict keys of the stored weights. Written,
like the network, from the design facts in ``PSDNET.md``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv3(cin: int, cout: int) -> nn.Conv2d:
    """3x3 convolution with 'same' zero padding."""
    return nn.Conv2d(cin, cout, 3, padding=1)


def conv1(cin: int, cout: int) -> nn.Conv2d:
    """1x1 convolution."""
    return nn.Conv2d(cin, cout, 1)


class CAB(nn.Module):
    """Channel attention block: two 3x3 convs, (avg + max)-pool squeeze 4x, sigmoid gate, residual."""

    def __init__(self, width: int, reduction: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3(width, width), nn.PReLU(), conv3(width, width))
        mid = max(1, width // reduction)
        self.mlp = nn.Sequential(conv1(width, mid), nn.PReLU(), conv1(mid, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, w, H, W) -> (B, w, H, W)``."""
        y = self.body(x)
        att = self.mlp(F.adaptive_avg_pool2d(y, 1)) + self.mlp(F.adaptive_max_pool2d(y, 1))
        return x + y * torch.sigmoid(att)


class SAB(nn.Module):
    """Spatial attention block: channel mean/max maps -> 3x3 conv to ``width`` -> sigmoid gate, residual."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = conv3(2, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, w, H, W) -> (B, w, H, W)``."""
        stats = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x + x * torch.sigmoid(self.conv(stats))


class ResBlock(nn.Module):
    """conv3x3 -> PReLU -> conv3x3, plus input."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3(width, width), nn.PReLU(), conv3(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, w, H, W) -> (B, w, H, W)``."""
        return x + self.body(x)


class TransBlock(nn.Module):
    """Carries features between stages: 3x3 conv -> PReLU -> 1x1 conv -> PReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3(cin, cout), nn.PReLU(), conv1(cout, cout), nn.PReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, cin, H, W) -> (B, cout, H, W)``."""
        return self.body(x)


class Head(nn.Module):
    """conv3x3 + PReLU, conv3x3 to ``bands``; the caller applies tanh and adds ``lms``."""

    def __init__(self, width: int, bands: int) -> None:
        super().__init__()
        self.conv = conv3(width, width)
        self.act = nn.PReLU()
        self.last = conv3(width, bands)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, w, H, W) -> (B, C, H, W)`` residual (before tanh)."""
        return self.last(self.act(self.conv(x)))


class Stem(nn.Module):
    """Image branch + PAN branch -> concat -> conv -> CAB -> SAB.

    Args:
        image_branch: maps the image input to ``width`` channels at PAN resolution.
        width: feature channels.
    """

    def __init__(self, image_branch: nn.Module, width: int) -> None:
        super().__init__()
        self.image = image_branch
        self.pan = nn.Sequential(conv3(1, width), nn.PReLU(), conv3(width, width), nn.PReLU())
        self.fuse = nn.Sequential(conv3(2 * width, width), nn.PReLU())
        self.cab = CAB(width)
        self.sab = SAB(width)

    def forward(self, img: torch.Tensor, pan: torch.Tensor) -> torch.Tensor:
        """``img`` (B, C, h', w') and ``pan`` (B, 1, H, W) -> ``(B, w, H, W)``."""
        x = self.fuse(torch.cat([self.image(img), self.pan(pan)], dim=1))
        return self.sab(self.cab(x))


class DownProjection(nn.Module):
    """DBPN down-projection unit: HR ``(n r)`` -> LR ``(n)`` with error feedback."""

    def __init__(self, width: int, ratio: int) -> None:
        super().__init__()
        k, s, p = ratio + 4, ratio, 2
        self.down1 = nn.Sequential(nn.Conv2d(width, width, k, s, p), nn.PReLU())
        self.up = nn.Sequential(nn.ConvTranspose2d(width, width, k, s, p), nn.PReLU())
        self.down2 = nn.Sequential(nn.Conv2d(width, width, k, s, p), nn.PReLU())

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``(B, w, n r, m r) -> (B, w, n, m)``."""
        l0 = self.down1(h)
        h0 = self.up(l0)
        return l0 + self.down2(h0 - h)


class UpProjection(nn.Module):
    """DBPN up-projection unit: LR ``(n)`` -> HR ``(n r)`` with error feedback."""

    def __init__(self, width: int, ratio: int) -> None:
        super().__init__()
        k, s, p = ratio + 4, ratio, 2
        self.up1 = nn.Sequential(nn.ConvTranspose2d(width, width, k, s, p), nn.PReLU())
        self.down = nn.Sequential(nn.Conv2d(width, width, k, s, p), nn.PReLU())
        self.up2 = nn.Sequential(nn.ConvTranspose2d(width, width, k, s, p), nn.PReLU())

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """``(B, w, n, m) -> (B, w, n r, m r)``."""
        h0 = self.up1(lr)
        l0 = self.down(h0)
        return h0 + self.up2(l0 - lr)


class DBPNBlock(nn.Module):
    """One DBPN sub-block: alternating down/up projections with dense concatenation.

    ``l1 = D1(h)``, ``h1 = U1(l1)``, ``l2 = D2(1x1[h, h1])``, ``h2 = U2(1x1[l1, l2])``;
    the sub-block concatenates its HR maps ``[h1, h2]`` and its LR maps
    ``[l1, l2]`` and fuses each back to ``width`` channels with a 1x1 conv.
    """

    def __init__(self, width: int, ratio: int) -> None:
        super().__init__()
        self.down1 = DownProjection(width, ratio)
        self.up1 = UpProjection(width, ratio)
        self.cat_h = nn.Sequential(conv1(2 * width, width), nn.PReLU())
        self.down2 = DownProjection(width, ratio)
        self.cat_l = nn.Sequential(conv1(2 * width, width), nn.PReLU())
        self.up2 = UpProjection(width, ratio)
        self.out_h = nn.Sequential(conv1(2 * width, width), nn.PReLU())
        self.out_l = nn.Sequential(conv1(2 * width, width), nn.PReLU())

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, w, n r, m r) -> ((B, w, n r, m r), (B, w, n, m))``."""
        l1 = self.down1(h)
        h1 = self.up1(l1)
        l2 = self.down2(self.cat_h(torch.cat([h, h1], dim=1)))
        h2 = self.up2(self.cat_l(torch.cat([l1, l2], dim=1)))
        return self.out_h(torch.cat([h1, h2], dim=1)), self.out_l(torch.cat([l1, l2], dim=1))


class OFB(nn.Module):
    """Original-resolution feature block: [CAB -> SAB -> conv -> PReLU] x 3 (shared weights) + input."""

    def __init__(self, width: int, repeats: int = 3) -> None:
        super().__init__()
        self.cab = CAB(width)
        self.sab = SAB(width)
        self.conv = conv3(width, width)
        self.act = nn.PReLU()
        self.repeats = repeats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, w, H, W) -> (B, w, H, W)``."""
        y = x
        for _ in range(self.repeats):
            y = self.act(self.conv(self.sab(self.cab(y))))
        return x + y
