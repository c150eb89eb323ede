"""Overlapping pieces of a tile: split into two, merge back with a half-Hann ramp.

Over an overlap of ``N`` rows the first piece has weight ``w(i) = 0.5 + 0.5 cos(pi i / N)``
and the second ``1 - w(i)``, so the two weights sum to one on every shared row.
:class:`~psdnet_qgis.model.psdnet.PSDNet` runs its stage-1 sub-patches and stage-2 halves
as such pieces, stacked on the batch axis.
"""

from __future__ import annotations

import math

import torch


def _ramp(n: int, ref: torch.Tensor) -> torch.Tensor:
    """Half-Hann ramp ``w(i) = 0.5 + 0.5 cos(pi i / n)``, ``(n,)`` on ref's device/dtype."""
    i = torch.arange(n, device=ref.device, dtype=torch.float64)
    return (0.5 + 0.5 * torch.cos(math.pi * i / n)).to(ref.dtype)


def stitch(a: torch.Tensor, b: torch.Tensor, dim: int, overlap: int) -> torch.Tensor:
    """Merge two overlapping pieces along ``dim`` with a half-Hann ramp.

    ``a`` covers the start, ``b`` the end of the merged axis; both have the same
    length ``P`` along ``dim`` and share ``overlap`` rows/columns, so the result
    has length ``2 P - overlap``.

    Args:
        a: first piece ``(B, C, ..)``.
        b: second piece, same shape as ``a``.
        dim: axis to merge (2 = rows, 3 = columns).
        overlap: number of shared rows/columns ``N`` (``0 < N <= P``).

    Returns:
        Merged tensor with ``2 P - overlap`` entries along ``dim``.
    """
    p = a.shape[dim]
    w = _ramp(overlap, a)
    shape = [1] * a.dim()
    shape[dim] = overlap
    w = w.view(shape)
    a_head = a.narrow(dim, 0, p - overlap)
    a_ov = a.narrow(dim, p - overlap, overlap)
    b_ov = b.narrow(dim, 0, overlap)
    b_tail = b.narrow(dim, overlap, p - overlap)
    # b + w (a - b) == w a + (1 - w) b, one multiply fewer.
    mid = b_ov + w * (a_ov - b_ov)
    return torch.cat([a_head, mid, b_tail], dim=dim)


def split_pieces(x: torch.Tensor, dim: int, overlap: int) -> torch.Tensor:
    """Split ``x`` into two overlapping pieces along ``dim``, stacked on the batch axis.

    Args:
        x: ``(B, C, H, W)``; its length ``L`` along ``dim`` must have the same
            parity as ``overlap``.
        dim: 2 (top/bottom) or 3 (left/right).
        overlap: shared rows/columns.

    Returns:
        ``(2 B, C, ..)``: first pieces (top/left) then second pieces.
    """
    n = x.shape[dim]
    p = (n + overlap) // 2
    return torch.cat([x.narrow(dim, 0, p), x.narrow(dim, n - p, p)], dim=0)


def merge_pieces(x: torch.Tensor, dim: int, overlap: int) -> torch.Tensor:
    """Inverse of :func:`split_pieces`: stitch the two batch halves of ``x`` along ``dim``."""
    b = x.shape[0] // 2
    return stitch(x[:b], x[b:], dim, overlap)
