"""CPU inference copy of a :class:`~psdnet_qgis.model.psdnet.PSDNet` with fused oneDNN ops.

:func:`fuse_for_cpu` returns a copy of a trained network whose blocks call oneDNN's fused
convolutions directly (``torch.ops.mkldnn._convolution_pointwise``, the kernels that
``torch.compile`` uses on CPU), optionally with the weights converted once to bf16. The
parameters and the arithmetic are those of the network; only the order of roundings changes:

* a convolution (or transposed convolution) followed by a one-slope ``PReLU`` runs as one
  convolution with a ``leaky_relu`` post-op (at inference a one-parameter PReLU *is* a leaky
  ReLU with that slope): one pass over the activations instead of two;
* ``x + conv(y)`` (the ResBlock residual) runs as one convolution with an ``add`` post-op;
* a 1x1 convolution of a channel concatenation ``conv([a, b])`` runs as
  ``conv_a(a) + conv_b(b)`` (the weight split in two, the sum as a post-op): no
  concatenated copy;
* every feature map carries its channels padded with zeros to a multiple of
  :data:`CHANNEL_PAD` (28 -> 32, 56 -> 64, 84 -> 96): the weights get zero rows/columns and
  zero biases, so the padding channels stay exactly 0 through every block (PReLU(0) = 0,
  attention gates multiply 0) and the real channels get the same sums. oneDNN's AMX kernels
  work on 16/32-channel blocks, so a padded 32-channel convolution runs faster than the
  28-channel one;
* the channel mean of the spatial attention is a 1x1 convolution with unit weights (times
  ``1 / C``), the global average pool of the channel attention a ``sum`` times ``1 / (H W)``
  and the gates ``x + x s`` / ``x + y s`` use ``addcmul`` (one pass each).

Nothing here has gradients: it is for inference only (``torch.inference_mode``). Training,
the plain model and CUDA runs do not use it. ``bf16`` weights need a CPU with native bf16
(AVX512-BF16 / AMX; :func:`psdnet_qgis.model.precision.auto_precision` checks) and change the
outputs by the bf16 rounding only (see ``tests/model/test_fastcpu.py``).

Only the bf16 CPU path uses the copy: in fp32 the fused ops were no faster than the plain
channels-last network, whose convolutions already run through the same oneDNN kernels
(docs/BENCHMARKS.md, "PSDNet-Fast").
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from psdnet_qgis.model import blocks as B
from psdnet_qgis.model import psdnet as P

_MK = getattr(torch.ops, "mkldnn", None)
#: Feature channels are padded with zero channels to a multiple of this.
CHANNEL_PAD = 16


def pad_channels(c: int) -> int:
    """Padded channel count of a feature map with ``c`` channels."""
    return -(-int(c) // CHANNEL_PAD) * CHANNEL_PAD


#: The fused copy is used only where the channel padding adds at most this fraction of channels:
#: width 28 (-> 32, +14 %) runs fused, width 8 (-> 16, twice the channels) runs bf16 autocast.
#: ``psdnet_vhr4_fast`` on a 2-core Zen 5 (AVX-512 + bf16), 4.2 MPx engine runs: fused 12.3-12.6,
#: autocast 9.3-9.5, fp32 12.1-12.5 CPU s (docs/RUNTIMES.md, "bf16 autocast for the width-8 models").
MAX_PAD_FRACTION = 0.25


def worth_fusing(width: int) -> bool:
    """Whether a network of feature ``width`` runs faster as the fused copy than under bf16 autocast
    (its padded channels are at most :data:`MAX_PAD_FRACTION` more)."""
    return pad_channels(width) <= (1.0 + MAX_PAD_FRACTION) * int(width)


def available() -> bool:
    """True when this torch build has oneDNN's fused convolution ops."""
    try:
        return bool(torch.backends.mkldnn.is_available()
                    and hasattr(_MK, "_convolution_pointwise")
                    and hasattr(_MK, "_convolution_pointwise_")
                    and hasattr(_MK, "_convolution_transpose_pointwise"))
    except Exception:  # noqa: BLE001 - any odd build: no fused path
        return False


def _cl1(x: torch.Tensor) -> torch.Tensor:
    """A one-channel tensor viewed with channels-last strides (same memory, no copy).

    With one channel both layouts are contiguous, and oneDNN then picks NCHW for the
    output of the convolution, which makes every following op convert it back.
    """
    b, _, h, w = x.shape
    if x.is_contiguous() and x.stride(1) != 1:
        return x.as_strided(x.shape, (h * w, 1, w, 1))
    return x


def _slope(act: nn.Module | None) -> float | None:
    """Slope of a one-parameter PReLU (None when ``act`` is not one)."""
    if isinstance(act, nn.PReLU) and act.weight.numel() == 1:
        return float(act.weight.detach().float().reshape(()))
    return None


class FusedConv(nn.Module):
    """``act(conv(x))`` or ``act(conv(x) + other)`` with oneDNN post-ops, on padded channels.

    Args:
        conv: a ``Conv2d`` (groups 1) or a ``ConvTranspose2d``.
        act: optional one-parameter ``PReLU`` applied after the convolution (and after
            ``other`` is added).
        dtype: weight dtype (float32 or bfloat16).
        weight, bias: replacement weight (a slice of ``conv.weight`` along its input
            channels) and bias; ``use_bias=False`` drops the bias.
        in_idx: channel of the (padded) input holding each real input channel (default
            ``0..cin-1``); in_p: channels of the padded input (default ``cin``).
        out_p: channels of the output (default ``cout``): rows past ``cout`` are zero.
    """

    def __init__(self, conv: nn.Module, act: nn.Module | None, dtype: torch.dtype,
                 weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
                 use_bias: bool = True, in_idx: list[int] | None = None,
                 in_p: int | None = None, out_p: int | None = None) -> None:
        super().__init__()
        self.transposed = isinstance(conv, nn.ConvTranspose2d)
        if int(conv.groups) != 1:
            raise ValueError("FusedConv: grouped convolutions are not padded")
        w = (conv.weight if weight is None else weight).detach().float()
        b = conv.bias if (bias is None and use_bias) else bias
        if self.transposed:
            w = w.transpose(0, 1)  # (in, out, kh, kw) -> (out, in, kh, kw) while padding
        cout, cin = w.shape[:2]
        idx = list(range(cin)) if in_idx is None else list(in_idx)
        in_p = cin if in_p is None else int(in_p)
        out_p = cout if out_p is None else int(out_p)
        wp = w.new_zeros((out_p, in_p) + tuple(w.shape[2:]))
        wp[:cout, idx] = w
        if self.transposed:
            wp = wp.transpose(0, 1)
        self.register_buffer("weight", wp.to(dtype).contiguous(memory_format=torch.channels_last))
        if b is not None:
            bp = torch.zeros(out_p)
            bp[:cout] = b.detach().float()
            b = bp.to(dtype)
        self.register_buffer("bias", b)
        self.padding = list(conv.padding)
        self.stride = list(conv.stride)
        self.dilation = list(conv.dilation)
        self.output_padding = list(getattr(conv, "output_padding", (0, 0)))
        self.slope = _slope(act)
        if act is not None and self.slope is None:
            raise ValueError("FusedConv: only a one-parameter PReLU can be fused")
        #: oneDNN post-op without scalars ("none" or "sigmoid") when there is no PReLU.
        self.post = "none"

    def forward(self, x: torch.Tensor, other: torch.Tensor | None = None, into: bool = False) -> torch.Tensor:
        """``into``: add the convolution into ``other`` itself (the caller's own buffer) instead of
        a new output: one map fewer alive, and fewer buffers of that size for the heap to keep."""
        attr, scal = ("leaky_relu", [self.slope]) if self.slope is not None else (self.post, [])
        if x.shape[1] == 1:
            x = _cl1(x)
        if other is None:
            if self.transposed:
                return _MK._convolution_transpose_pointwise(
                    x, self.weight, self.bias, self.padding, self.output_padding, self.stride,
                    self.dilation, 1, attr, scal, "")
            return _MK._convolution_pointwise(x, self.weight, self.bias, self.padding, self.stride,
                                              self.dilation, 1, attr, scal, "")
        assert not self.transposed
        if into:
            y = _MK._convolution_pointwise_.binary(other, x, self.weight, self.bias, self.padding,
                                                   self.stride, self.dilation, 1, "add", None,
                                                   None, [], None)
        else:
            y = _MK._convolution_pointwise.binary(x, other, self.weight, self.bias, self.padding,
                                                  self.stride, self.dilation, 1, "add", None,
                                                  None, [], None)
        if self.slope is not None:
            y = F.leaky_relu_(y, self.slope)
        return y


def _fc(conv: nn.Module, act: nn.Module | None, dtype: torch.dtype, raw_in: bool = False,
        raw_out: bool = False) -> FusedConv:
    """FusedConv with padded input (unless ``raw_in``) and padded output (unless ``raw_out``)."""
    transposed = isinstance(conv, nn.ConvTranspose2d)
    cout, cin = (conv.weight.shape[1], conv.weight.shape[0]) if transposed else conv.weight.shape[:2]
    return FusedConv(conv, act, dtype, in_p=None if raw_in else pad_channels(cin),
                     out_p=None if raw_out else pad_channels(cout))


class FusedCatConv(nn.Module):
    """``act(conv(cat(xs)))`` as ``act(conv_1(x_1) + ... + conv_n(x_n))``: no concatenation.

    The weight is split along its input channels (``widths``, each input padded); the bias
    goes with the first part and each further part adds the running sum as a post-op.
    """

    def __init__(self, conv: nn.Conv2d, act: nn.Module | None, widths: list[int],
                 dtype: torch.dtype) -> None:
        super().__init__()
        if sum(widths) != conv.in_channels or conv.groups != 1:
            raise ValueError("FusedCatConv: the widths must add up to the conv's input channels")
        parts, c0 = [], 0
        out_p = pad_channels(conv.out_channels)
        for k, c in enumerate(widths):
            parts.append(FusedConv(conv, None, dtype, weight=conv.weight[:, c0:c0 + c],
                                   bias=conv.bias if k == 0 else None, use_bias=k == 0,
                                   in_p=pad_channels(c), out_p=out_p))
            c0 += c
        self.parts = nn.ModuleList(parts)
        self.slope = _slope(act)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        y = self.parts[0](xs[0])
        for part, x in zip(self.parts[1:], xs[1:], strict=False):
            y = part(x, y, into=True)  # y is this block's own sum
        if self.slope is not None:
            y = F.leaky_relu_(y, self.slope)
        return y


def _seq(seq: nn.Sequential, dtype: torch.dtype, raw_in: bool = False) -> nn.Sequential:
    """Fuse the ``(conv, PReLU)`` pairs of a Sequential (padded channels; the first input
    raw when ``raw_in``)."""
    mods = list(seq)
    out: list[nn.Module] = []
    i = 0
    first = True
    while i < len(mods):
        m = mods[i]
        if not isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            raise ValueError(f"fuse_for_cpu: unexpected {type(m).__name__} in a Sequential")
        nxt = mods[i + 1] if i + 1 < len(mods) else None
        act = nxt if _slope(nxt) is not None else None
        out.append(_fc(m, act, dtype, raw_in=raw_in and first))
        first = False
        i += 2 if act is not None else 1
    return nn.Sequential(*out)


class FusedCAB(nn.Module):
    """:class:`~psdnet_qgis.model.blocks.CAB` with a fused body and a one-pass gate."""

    def __init__(self, cab: B.CAB, dtype: torch.dtype) -> None:
        super().__init__()
        self.body = _seq(cab.body, dtype)
        self.mlp = _seq(cab.mlp, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        avg = y.sum((2, 3), keepdim=True) * (1.0 / (y.shape[-2] * y.shape[-1]))
        mx = F.adaptive_max_pool2d(y, 1)
        att = torch.sigmoid(self.mlp(torch.cat([avg, mx], dim=0)).view(2, *avg.shape).sum(0))
        # x + y * att as a depthwise 1x1 convolution (weights att) with an add post-op.
        b, c = att.shape[:2]
        if b == 1:
            return _MK._convolution_pointwise.binary(y, x, att.reshape(c, 1, 1, 1), None, [0, 0], [1, 1],
                                                     [1, 1], c, "add", None, None, [], None)
        return x + y * att


class FusedSAB(nn.Module):
    """:class:`~psdnet_qgis.model.blocks.SAB`: channel mean as a 1x1 conv, gate as addcmul."""

    def __init__(self, sab: B.SAB, width: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.conv = _fc(sab.conv, None, dtype, raw_in=True)
        self.conv.post = "sigmoid"
        ones = torch.zeros(1, pad_channels(width), 1, 1)
        ones[:, :width] = 1.0  # the padding channels do not count
        self.register_buffer("ones", ones.to(dtype).contiguous(memory_format=torch.channels_last))
        self.width = int(width)
        self.inv = 1.0 / width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = _MK._convolution_pointwise(x, self.ones, None, [0, 0], [1, 1], [1, 1], 1, "none", [], "")
        mx = B.channel_max(x[:, :self.width], keepdim=False)  # not the zero padding channels
        # [mean, max] stacked on the last axis: a (B, 2, H, W) tensor in channels-last memory.
        stats = torch.stack([s[:, 0] * self.inv, mx], dim=-1).permute(0, 3, 1, 2)
        return torch.addcmul(x, x, self.conv(stats))


class FusedResBlock(nn.Module):
    """:class:`~psdnet_qgis.model.blocks.ResBlock`: conv+PReLU fused, residual as a post-op."""

    def __init__(self, rb: B.ResBlock, dtype: torch.dtype) -> None:
        super().__init__()
        self.c1 = _fc(rb.body[0], rb.body[1], dtype)
        self.c2 = _fc(rb.body[2], None, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c2(self.c1(x), x)


class FusedStem(nn.Module):
    """:class:`~psdnet_qgis.model.blocks.Stem` without the concatenation."""

    def __init__(self, stem: B.Stem, width: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.image = _seq(stem.image, dtype, raw_in=True)
        self.pan = _seq(stem.pan, dtype, raw_in=True)
        self.fuse = FusedCatConv(stem.fuse[0], stem.fuse[1], [width, width], dtype)
        self.cab = FusedCAB(stem.cab, dtype)
        self.sab = FusedSAB(stem.sab, width, dtype)

    def forward(self, img: torch.Tensor, pan: torch.Tensor) -> torch.Tensor:
        return self.sab(self.cab(self.fuse(self.image(img), self.pan(pan))))


class FusedDBPNBlock(nn.Module):
    """:class:`~psdnet_qgis.model.blocks.DBPNBlock` with fused projections, no concatenations."""

    def __init__(self, blk: B.DBPNBlock, width: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.down1 = _proj(blk.down1, dtype)
        self.up1 = _proj(blk.up1, dtype)
        self.cat_h = FusedCatConv(blk.cat_h[0], blk.cat_h[1], [width, width], dtype)
        self.down2 = _proj(blk.down2, dtype)
        self.cat_l = FusedCatConv(blk.cat_l[0], blk.cat_l[1], [width, width], dtype)
        self.up2 = _proj(blk.up2, dtype)
        self.out_h = FusedCatConv(blk.out_h[0], blk.out_h[1], [width, width], dtype)
        self.out_l = FusedCatConv(blk.out_l[0], blk.out_l[1], [width, width], dtype)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        l1 = self.down1(h)
        h1 = self.up1(l1)
        l2 = self.down2(self.cat_h(h, h1))
        h2 = self.up2(self.cat_l(l1, l2))
        return self.out_h(h1, h2), self.out_l(l1, l2)


def _proj(p: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Down/UpProjection sharing the original forward, its Sequentials fused."""
    q = copy.copy(p)
    q._modules = {name: _seq(m, dtype) for name, m in p.named_children()}
    return q


class _FusedPSDNet(P.PSDNet):
    """A PSDNet whose blocks were replaced by :func:`fuse_for_cpu` (padded features)."""

    def forward(self, ms: torch.Tensor, pan: torch.Tensor, gt: torch.Tensor | None = None,
                base: torch.Tensor | None = None) -> P.PSDNetOutput:
        out = super().forward(ms, pan, gt, base)
        w = self.width  # drop the zero padding channels of the returned features
        return out._replace(f2=out.f2[:, :w], f3=out.f3[:, :w])


def fuse_for_cpu(model: P.PSDNet, dtype: torch.dtype = torch.float32) -> P.PSDNet:
    """Inference copy of ``model`` with fused oneDNN blocks and weights in ``dtype``.

    The returned module keeps :class:`PSDNet`'s ``forward`` (tiling of the sub-patches,
    stitching, padding) and computes ``lms`` and the outputs in float32; the body runs in
    ``dtype`` on zero-padded channels. ``model`` itself is not modified.

    Raises:
        RuntimeError: this torch build lacks the oneDNN fused ops (:func:`available`).
    """
    if not available():
        raise RuntimeError("fuse_for_cpu: this torch build has no oneDNN fused convolutions")
    w = model.width
    m = copy.copy(model)
    m.__class__ = _FusedPSDNet
    m._modules = dict(model._modules)
    m._parameters = {}
    m._buffers = {}
    m._modules["stem1"] = FusedStem(model.stem1, w, dtype)
    m._modules["stem2"] = FusedStem(model.stem2, w, dtype)
    m._modules["stem3"] = FusedStem(model.stem3, w, dtype)
    m._modules["dbpn"] = nn.ModuleList([FusedDBPNBlock(b, w, dtype) for b in model.dbpn])
    # conv1 of cat([hr1, hr2, hr3]): the three padded inputs side by side
    wp = pad_channels(w)
    idx = [k * wp + j for k in range(3) for j in range(w)]
    for name in ("fuse1_hr", "fuse1_lr"):
        seq = model._modules[name]
        m._modules[name] = nn.Sequential(FusedConv(seq[0], seq[1], dtype, in_idx=idx, in_p=3 * wp,
                                                   out_p=wp))
    for name in ("head1", "head2", "head3"):
        h = model._modules[name]
        hh = copy.copy(h)
        hh._modules = {"conv": _fc(h.conv, h.act, dtype), "act": nn.Identity(),
                       "last": _fc(h.last, None, dtype, raw_out=True)}
        m._modules[name] = hh
    for name in ("tb2_hr", "tb2_lr", "tb3_enc", "tb3_dec"):
        t = model._modules[name]
        tt = copy.copy(t)
        tt._modules = {"body": _seq(t.body, dtype)}
        m._modules[name] = tt
    for name in ("enc1", "enc2", "enc3", "dec2", "dec1"):
        m._modules[name] = nn.Sequential(*[FusedResBlock(rb, dtype) for rb in model._modules[name]])
    for name in ("skip2", "skip1"):
        m._modules[name] = FusedResBlock(model._modules[name], dtype)
    for name in ("down1", "down2", "up2", "up1"):
        m._modules[name] = _fc(model._modules[name], None, dtype)
    ofbs = []
    for o in model.ofbs:
        oo = copy.copy(o)
        oo._modules = {"cab": FusedCAB(o.cab, dtype), "sab": FusedSAB(o.sab, w, dtype),
                       "conv": _fc(o.conv, o.act, dtype), "act": nn.Identity()}
        ofbs.append(oo)
    m._modules["ofbs"] = nn.Sequential(*ofbs)
    for p in m.parameters():  # none expected: everything above is a buffer
        p.requires_grad_(False)
    return m.eval()
