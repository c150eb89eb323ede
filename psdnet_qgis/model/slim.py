"""Post-hoc slimming of a trained :class:`~psdnet_qgis.model.psdnet.PSDNet` to a smaller width.

:func:`slim` returns a new ``PSDNet(bands, ratio, width=w')`` whose every weight is a slice
of the trained network's: each feature channel of the slim network *is* one channel of the
full one, so it starts close to the full network and needs only a short recovery training
(``training/fast.py``).

Which channels must be kept together follows from ``model/psdnet.py`` and its blocks in
``model/blocks.py``: every map of the base width ``w`` is tied to the others by residual
additions (CAB / SAB / ResBlock ``x + f(x)``, the DBPN error feedback ``h0 - h``, the
stage-2/3 sums ``stem + TransBlock``),
by the half-Hann stitching of overlapping pieces and by the feature distillation of
``f2`` / ``f3``. Dropping channel ``j`` in one of them and not in the others would add
unrelated channels, so the base width is one channel group ``G1`` with one index set. The
same holds for the UNet's second and third levels (``2w``: ``down1``, ``enc2``, ``skip2``,
``dec2``, ``up2`` out / ``up1`` in; ``3w``: ``down2``, ``enc3``, ``tb2_lr`` out, ``up2`` in),
groups ``G2`` and ``G3``. A 1x1 or 3x3 convolution of a concatenation (stem ``fuse``, the
DBPN ``cat_*`` / ``out_*``, ``fuse1_*``) reads two or three ``G1`` maps side by side, so
its input index set is ``G1`` repeated at offsets ``0, w, 2w``. The squeeze of each channel
attention (``w // 4`` channels) is private to its CAB and gets its own index set. Image
channels (``bands``), the PAN channel and the SAB's two statistics are never cut.

Importance criterion (BN-free, data-free): the L2 norm of the weights touching a channel,
normalised per layer. For every convolution that *writes* a group channel ``j`` the norm
of its filter ``W[j]``, and for every convolution that *reads* it the norm of its slice
``W[:, j]``, each divided by that layer's mean over its channels so that the 8x8 DBPN
kernels (64 taps) do not outweigh the 1x1 convs; the sums over all layers rank the
channels of the group. PSDNet has no batch norm, so BN-scale criteria do not apply; a
channel that every layer writes and reads with small weights contributes little to any
sum, which is what the filter-norm criterion of pruning work measures. The criterion
needs no data and is deterministic; the recovery training (distillation from the full
network) repairs what the cut changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import torch
from torch import nn

from psdnet_qgis.errors import PSDNetInputError
from psdnet_qgis.model.psdnet import PSDNet

#: Convolutions whose input is a concatenation of base-width (G1) maps.
_CAT_2 = re.compile(r"^(stem\d\.fuse\.0|dbpn\.\d+\.(cat_h|cat_l|out_h|out_l)\.0)\.weight$")
_CAT_3 = re.compile(r"^fuse1_(hr|lr)\.0\.weight$")
_MLP = re.compile(r"^(.*\.cab)\.mlp\.(0|2)\.(weight|bias)$")


def _group(name: str, size: int, width: int, cat: bool) -> list[tuple[str, int]] | None:
    """The channel group(s) a dimension of ``size`` channels belongs to.

    Returns a list of ``(group, offset)`` pieces (concatenations have several), or None
    for a dimension that is never cut (bands, PAN, SAB statistics).
    """
    w = width
    m = _MLP.match(name)
    if m and size == max(1, w // 4):
        return [(f"mlp:{m.group(1)}", 0)]
    if size == w:
        return [("G1", 0)]
    if size == 2 * w:
        return [("G1", 0), ("G1", w)] if cat else [("G2", 0)]
    if size == 3 * w:
        return [("G1", 0), ("G1", w), ("G1", 2 * w)] if cat else [("G3", 0)]
    return None


def _dims(model: PSDNet) -> Iterator[tuple[str, torch.Tensor, int, int]]:
    """``(name, tensor, out_dim, in_dim)`` of every conv weight/bias (in_dim -1 for biases).

    Transposed convolutions store ``(in, out, kh, kw)``.
    """
    for mod_name, mod in model.named_modules():
        if not isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d)):
            continue
        out_d, in_d = (1, 0) if isinstance(mod, nn.ConvTranspose2d) else (0, 1)
        yield f"{mod_name}.weight", mod.weight, out_d, in_d
        if mod.bias is not None:
            yield f"{mod_name}.bias", mod.bias, 0, -1


def _pieces(name: str, t: torch.Tensor, dim: int, in_d: int, width: int) -> list[tuple[str, int]] | None:
    """The groups of dimension ``dim`` of ``t``; only the input side of a concatenating
    convolution is a concatenation."""
    cat = dim == in_d and bool(_CAT_2.match(name) or _CAT_3.match(name))
    return _group(name, t.shape[dim], width, cat)


def channel_importance(model: PSDNet) -> dict[str, torch.Tensor]:
    """Per-group channel importance of ``model`` (see the module docstring).

    Returns:
        ``{group: (n,) float64}``: ``G1`` (``w``), ``G2`` (``2 w``), ``G3`` (``3 w``) and
        one ``mlp:<cab>`` entry per channel attention.
    """
    w = model.width
    score: dict[str, torch.Tensor] = {}
    for name, t, out_d, in_d in _dims(model):
        if t.dim() < 2:
            continue
        x = t.detach().double()
        for dim in (out_d, in_d):
            pieces = _pieces(name, x, dim, in_d, w)
            if pieces is None:
                continue
            other = [d for d in range(x.dim()) if d != dim]
            norms = x.pow(2).sum(dim=other).sqrt()
            norms = norms / norms.mean().clamp_min(1e-12)
            for group, off in pieces:
                n = {"G1": w, "G2": 2 * w, "G3": 3 * w}.get(group, max(1, w // 4))
                part = norms[off:off + n]
                score[group] = score.get(group, torch.zeros(n, dtype=torch.float64)) + part
    return score


def keep_indices(model: PSDNet, width: int) -> dict[str, torch.Tensor]:
    """The channels of each group that a width-``width`` copy keeps (sorted, most important)."""
    new = {"G1": width, "G2": 2 * width, "G3": 3 * width}
    keep = {}
    for group, s in channel_importance(model).items():
        n = new.get(group, max(1, width // 4))
        keep[group] = torch.sort(torch.argsort(s, descending=True, stable=True)[:n]).values
    return keep


def _index(pieces: list[tuple[str, int]], keep: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([keep[g] + off for g, off in pieces])


def slim(model: PSDNet, width: int) -> PSDNet:
    """A width-``width`` PSDNet made of the most important channels of ``model``.

    Args:
        model: a trained (student) PSDNet; not modified.
        width: new base width, ``4 <= width <= model.width`` (multiples of 8 suit oneDNN).

    Returns:
        ``PSDNet(bands, ratio, width, stage1=model.stage1, inputs=model.inputs,
                 base=model.base)`` in eval mode, float32. Its
        heads are slices of the full heads, so a zero-residual model stays zero-residual.

    Raises:
        PSDNetInputError: ``width`` out of range, or a teacher model.
    """
    if model.teacher:
        raise PSDNetInputError("slim: got a teacher PSDNet; slim the student (teacher=False).")
    if not 4 <= int(width) <= model.width:
        raise PSDNetInputError(f"slim width: got {width}, use 4 to {model.width} (the model's width).")
    width = int(width)
    keep = keep_indices(model, width)
    out = PSDNet(model.bands, model.ratio, width=width, stage1=model.stage1, inputs=model.inputs,
                 base=model.base)
    src = dict(model.named_parameters())
    new_params = dict(out.named_parameters())
    dims = {name: (out_d, in_d) for name, _, out_d, in_d in _dims(model)}
    with torch.no_grad():
        for name, p in new_params.items():
            x = src[name].detach().float()
            if name in dims:
                for dim in dims[name]:
                    if dim < 0 or dim >= x.dim():
                        continue
                    pieces = _pieces(name, x, dim, dims[name][1], model.width)
                    if pieces is not None:
                        x = x.index_select(dim, _index(pieces, keep))
            # PReLU slopes (one parameter each) are copied as they are
            if tuple(x.shape) != tuple(p.shape):
                raise RuntimeError(f"slim: {name} sliced to {tuple(x.shape)}, expected {tuple(p.shape)}")
            p.copy_(x)
    return out.eval()
