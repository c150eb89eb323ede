"""Building blocks of :class:`~psdnet_qgis.model.psdnet.PSDNet`.

Convolution shorthands, the attention blocks (:class:`CAB`, :class:`SAB`), the residual and
transfer units (:class:`ResBlock`, :class:`TransBlock`), the stage :class:`Stem` and
:class:`Head`, the DBPN projections (:class:`DownProjection`, :class:`UpProjection`,
:class:`DBPNBlock`) and the :class:`OFB`. The network assembles them in ``model/psdnet.py``;
``model/fastcpu.py`` replaces them by fused copies and ``model/slim.py`` slices them.
The attribute names here are part of the state-dict keys of the stored weights. Written,
like the network, from the design facts in ``PSDNET.md``.

Memory at inference: outside autograd (``torch.no_grad`` / ``torch.inference_mode``,
:func:`eager_inference`) the blocks write activations, residual sums and attention gates
into the buffers they have just made instead of new ones (:class:`PReLU`, :func:`add_into`),
and a convolution of a channel concatenation runs as the sum of the pieces' convolutions
without the concatenated copy (:func:`conv_of_cat`). The first two give the same numbers bit
for bit; the split convolution adds the same products in another order (float rounding,
about 1e-7). On the engine's 576 px tile this keeps fewer full-resolution maps alive at
once. Under autograd every block runs its plain ops: the graph keeps the activations anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def eager_inference() -> bool:
    """True in eager inference: no autograd (``torch.no_grad`` / ``torch.inference_mode``), no
    TorchScript tracing, no ``torch.compile`` / ``torch.export``. The blocks may then overwrite
    the buffers they have made; the tracers and compilers get the plain ops."""
    return (not torch.is_grad_enabled() and not torch.jit.is_tracing()
            and not torch.compiler.is_compiling())


def add_into(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``x + y`` for a ``y`` the caller has just made (held nowhere else).

    Written into ``y`` when :func:`eager_inference` and ``y`` already has the sum's shape and
    dtype (same values: float addition is commutative); else a new tensor.
    """
    if (eager_inference() and y is not x and y.shape == x.shape and y.dtype == x.dtype
            and y.device == x.device):
        return y.add_(x)
    return x + y


def channel_max(x: torch.Tensor, keepdim: bool = True) -> torch.Tensor:
    """``x.amax(dim=1, keepdim=keepdim)``, the same values; on the CPU in bf16 / fp16 eager inference
    as a tree of pairwise maxima of channel halves.

    torch's reduction over the channels of a bf16 map is slow on the CPU: on a 576 px map in
    channels-last memory (2-core AMD EPYC, AVX-512 + bf16, one thread) 19.3 ms for 32 channels and
    3.1 ms for 8, against 4.6 and 2.7 ms for the tree; fp32 and the autograd path keep ``amax``.
    """
    if (x.device.type != "cpu" or x.dtype not in (torch.bfloat16, torch.float16) or x.shape[1] < 2
            or not eager_inference()):
        return x.amax(dim=1, keepdim=keepdim)
    y = x
    while y.shape[1] > 1:
        c, h = y.shape[1], y.shape[1] // 2
        m = torch.maximum(y[:, :h], y[:, h:2 * h])
        if c % 2:
            m[:, :1] = torch.maximum(m[:, :1], y[:, 2 * h:])
        y = m
    return y if keepdim else y[:, 0]


def _rows(x: torch.Tensor) -> torch.Tensor | None:
    """``(B, C, H, W)`` in channels-last memory as a ``(B H W, C)`` view; None when it is not."""
    v = x.permute(0, 2, 3, 1)
    return v.view(-1, x.shape[1]) if v.is_contiguous() else None


Piece = torch.Tensor | Callable[[], torch.Tensor]


def conv_of_cat(block: nn.Module, pieces: Sequence[Piece]) -> torch.Tensor:
    """``block(torch.cat(pieces, dim=1))`` for a ``block`` that is ``Sequential(Conv2d, ...)``.

    A piece is a tensor or a function making it (called once, in order). Outside autograd
    (:func:`eager_inference`, no autocast) without the concatenated copy: the convolution's
    weight is split along its input channels and each piece's convolution is added into one
    buffer as soon as the piece exists, so a piece made by a function is released before the
    next one is made (a 1x1 convolution of channels-last maps runs as matrix products
    accumulated in place). The same products in another order: float rounding only. Anything
    else (autograd, autocast, other blocks such as ``model/fastcpu.py``'s) concatenates.
    """
    conv = block[0] if isinstance(block, nn.Sequential) and len(block) else None
    if not (isinstance(block, nn.Sequential) and type(conv) is nn.Conv2d and conv.groups == 1
            and eager_inference() and not torch.is_autocast_enabled(conv.weight.device.type)):
        return block(torch.cat([p() if callable(p) else p for p in pieces], dim=1))
    w, b = conv.weight, conv.bias
    pointwise = conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.padding == (0, 0)
    y: torch.Tensor | None = None
    c0 = 0
    for p in pieces:
        x = p() if callable(p) else p
        part = w[:, c0:c0 + x.shape[1]]
        bias = b if c0 == 0 else None
        c0 += x.shape[1]
        rx = _rows(x) if pointwise else None
        ry = _rows(y) if rx is not None and y is not None else None
        if rx is not None and (y is None or ry is not None):
            wt = part.reshape(part.shape[0], part.shape[1]).t()
            if ry is not None:
                ry.addmm_(rx, wt)
            else:
                acc = torch.addmm(bias, rx, wt) if bias is not None else torch.mm(rx, wt)
                y = acc.view(x.shape[0], x.shape[2], x.shape[3], -1).permute(0, 3, 1, 2)
        else:
            z = F.conv2d(x, part, bias, conv.stride, conv.padding, conv.dilation)
            y = z if y is None else y.add_(z)
            del z
        del x
    if y is None or c0 != conv.in_channels:
        raise ValueError(f"conv_of_cat: the pieces have {c0} channels, the convolution takes {conv.in_channels}")
    for m in list(block)[1:]:
        y = m(y)
    return y


class PReLU(nn.PReLU):
    """:class:`torch.nn.PReLU` that, outside autograd on the CPU, rewrites its input in place.

    Only ever applied to the fresh output of a convolution, which nothing else holds. A
    one-slope PReLU is a leaky ReLU with that slope: the same numbers, one buffer fewer.
    (Not on CUDA: reading the slope would synchronise the device at every activation.)
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if eager_inference() and self.weight.numel() == 1 and x.is_cpu and x.dtype == self.weight.dtype:
            return F.leaky_relu_(x, float(self.weight))
        return super().forward(x)


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
        self.body = nn.Sequential(conv3(width, width), PReLU(), conv3(width, width))
        mid = max(1, width // reduction)
        self.mlp = nn.Sequential(conv1(width, mid), PReLU(), conv1(mid, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, w, H, W) -> (B, w, H, W)``."""
        y = self.body(x)
        att = self.mlp(F.adaptive_avg_pool2d(y, 1)) + self.mlp(F.adaptive_max_pool2d(y, 1))
        gate = torch.sigmoid(att)
        if eager_inference() and y.dtype == gate.dtype == x.dtype:
            return y.mul_(gate).add_(x)  # x + y * gate in y's buffer
        return x + y * gate


class SAB(nn.Module):
    """Spatial attention block: channel mean/max maps -> 3x3 conv to ``width`` -> sigmoid gate, residual."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = conv3(2, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, w, H, W) -> (B, w, H, W)``."""
        stats = torch.cat([x.mean(dim=1, keepdim=True), channel_max(x)], dim=1)
        gate = self.conv(stats)
        if eager_inference() and gate.dtype == x.dtype and gate.shape == x.shape:
            return gate.sigmoid_().mul_(x).add_(x)  # x + x * sigmoid(.) in the gate's buffer
        return x + x * torch.sigmoid(gate)


class ResBlock(nn.Module):
    """conv3x3 -> PReLU -> conv3x3, plus input."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3(width, width), PReLU(), conv3(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, w, H, W) -> (B, w, H, W)``."""
        return add_into(self.body(x), x)


class TransBlock(nn.Module):
    """Carries features between stages: 3x3 conv -> PReLU -> 1x1 conv -> PReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3(cin, cout), PReLU(), conv1(cout, cout), PReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, cin, H, W) -> (B, cout, H, W)``."""
        return self.body(x)


class Head(nn.Module):
    """conv3x3 + PReLU, conv3x3 to ``bands``; the caller applies tanh and adds ``lms``."""

    def __init__(self, width: int, bands: int) -> None:
        super().__init__()
        self.conv = conv3(width, width)
        self.act = PReLU()
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
        self.pan = nn.Sequential(conv3(1, width), PReLU(), conv3(width, width), PReLU())
        self.fuse = nn.Sequential(conv3(2 * width, width), PReLU())
        self.cab = CAB(width)
        self.sab = SAB(width)

    def forward(self, img: torch.Tensor, pan: torch.Tensor) -> torch.Tensor:
        """``img`` (B, C, h', w') and ``pan`` (B, 1, H, W) -> ``(B, w, H, W)``."""
        # the image features are folded into the convolution before the PAN branch runs
        x = conv_of_cat(self.fuse, [lambda: self.image(img), lambda: self.pan(pan)])
        return self.sab(self.cab(x))


class DownProjection(nn.Module):
    """DBPN down-projection unit: HR ``(n r)`` -> LR ``(n)`` with error feedback."""

    def __init__(self, width: int, ratio: int) -> None:
        super().__init__()
        k, s, p = ratio + 4, ratio, 2
        self.down1 = nn.Sequential(nn.Conv2d(width, width, k, s, p), PReLU())
        self.up = nn.Sequential(nn.ConvTranspose2d(width, width, k, s, p), PReLU())
        self.down2 = nn.Sequential(nn.Conv2d(width, width, k, s, p), PReLU())

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``(B, w, n r, m r) -> (B, w, n, m)``."""
        l0 = self.down1(h)
        h0 = self.up(l0)
        err = h0.sub_(h) if eager_inference() and h0.shape == h.shape and h0.dtype == h.dtype else h0 - h
        del h0
        return add_into(self.down2(err), l0)


class UpProjection(nn.Module):
    """DBPN up-projection unit: LR ``(n)`` -> HR ``(n r)`` with error feedback."""

    def __init__(self, width: int, ratio: int) -> None:
        super().__init__()
        k, s, p = ratio + 4, ratio, 2
        self.up1 = nn.Sequential(nn.ConvTranspose2d(width, width, k, s, p), PReLU())
        self.down = nn.Sequential(nn.Conv2d(width, width, k, s, p), PReLU())
        self.up2 = nn.Sequential(nn.ConvTranspose2d(width, width, k, s, p), PReLU())

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """``(B, w, n, m) -> (B, w, n r, m r)``."""
        h0 = self.up1(lr)
        l0 = self.down(h0)
        err = l0.sub_(lr) if eager_inference() and l0.shape == lr.shape and l0.dtype == lr.dtype else l0 - lr
        del l0
        return add_into(self.up2(err), h0)


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
        self.cat_h = nn.Sequential(conv1(2 * width, width), PReLU())
        self.down2 = DownProjection(width, ratio)
        self.cat_l = nn.Sequential(conv1(2 * width, width), PReLU())
        self.up2 = UpProjection(width, ratio)
        self.out_h = nn.Sequential(conv1(2 * width, width), PReLU())
        self.out_l = nn.Sequential(conv1(2 * width, width), PReLU())

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, w, n r, m r) -> ((B, w, n r, m r), (B, w, n, m))``."""
        l1 = self.down1(h)
        h1 = self.up1(l1)
        l2 = self.down2(conv_of_cat(self.cat_h, [h, h1]))
        h2 = self.up2(conv_of_cat(self.cat_l, [l1, l2]))
        return conv_of_cat(self.out_h, [h1, h2]), conv_of_cat(self.out_l, [l1, l2])


class OFB(nn.Module):
    """Original-resolution feature block: [CAB -> SAB -> conv -> PReLU] x 3 (shared weights) + input."""

    def __init__(self, width: int, repeats: int = 3) -> None:
        super().__init__()
        self.cab = CAB(width)
        self.sab = SAB(width)
        self.conv = conv3(width, width)
        self.act = PReLU()
        self.repeats = repeats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, w, H, W) -> (B, w, H, W)``."""
        y = x
        for _ in range(self.repeats):
            # one step at a time, so that each intermediate is released once the next exists
            y = self.cab(y)
            y = self.sab(y)
            y = self.act(self.conv(y))
        return add_into(y, x)
