"""No-reference losses shared by full-resolution training and scene adaptation.

The model layer holds them because the engine's adaptation step (``model.adapt``) needs them
and the model layer may not import the training layer.

* :class:`Degrade` -- torch twin of ``core.mtf.degrade`` (MTF low-pass, decimation by r).
* :func:`fullres_losses` -- the full-resolution fine-tuning terms of ``make train``:
  spectral L1 of the degraded output against the MS, and ``|rho_high - rho_low|``.
* :func:`spectral_loss`, :func:`spatial_loss`, :func:`spatial_threshold` -- the terms of
  scene adaptation (after Z-PNN, Ciotola et al. 2022): L1 between the output, low-passed with
  the sensor MTF and decimated, and the MS; and ``1 - local correlation`` of each output band
  with the PAN, counted only below the correlation that the MS itself has with the
  low-passed PAN (where the MS does not follow the PAN, the output need not either).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from psdnet_qgis.core.mtf import decimation_filter


class Degrade(nn.Module):
    """Differentiable ``core.mtf.degrade``: per-band MTF low-pass, decimation by ``r``
    sampled at the centre of each r x r PAN block (same taps and phase as the numpy one).

    Args:
        gains: MTF gain at Nyquist, one per band.
        ratio: PAN/MS ratio.
    """

    h: torch.Tensor  # (C, taps) float32 buffer

    def __init__(self, gains: Sequence[float], ratio: int) -> None:
        super().__init__()
        self.ratio = int(ratio)
        filters = [decimation_filter(float(g), self.ratio) for g in gains]
        self.first = filters[0][1]  # offset of the first tap (same for every gain)
        h = np.stack([f[0] for f in filters])
        self.taps = h.shape[1]
        self.register_buffer("h", torch.from_numpy(h.astype(np.float32)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H // r, W // r)."""
        b, c, hh, ww = x.shape
        r = self.ratio
        n_h, n_w = hh // r, ww // r
        top = -self.first
        bottom = max(0, (n_h - 1) * r + self.first + self.taps - hh)
        right = max(0, (n_w - 1) * r + self.first + self.taps - ww)
        xp = F.pad(x.float(), (top, right, top, bottom), mode="replicate")
        k = self.h.to(xp.dtype)
        xp = F.conv2d(xp, k.view(c, 1, self.taps, 1), stride=(r, 1), groups=c)
        xp = F.conv2d(xp, k.view(c, 1, 1, self.taps), stride=(1, r), groups=c)
        return xp[:, :, :n_h, :n_w]


def _corr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pearson correlation over (H, W) of (B, C, H, W) with (B, 1, H, W) -> (B, C)."""
    xc = x - x.mean(dim=(2, 3), keepdim=True)
    yc = y - y.mean(dim=(2, 3), keepdim=True)
    cov = (xc * yc).mean(dim=(2, 3))
    return cov / torch.sqrt(xc.pow(2).mean(dim=(2, 3)) * yc.pow(2).mean(dim=(2, 3)) + 1e-8)


def fullres_losses(fused: torch.Tensor, ms: torch.Tensor, pan: torch.Tensor,
                   degrade_ms: Degrade, degrade_pan: Degrade,
                   margin: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Spectral and spatial no-reference losses of a full-resolution batch.

    Args:
        fused: (B, C, H, W) network output (normalised).
        ms: (B, C, h, w) input MS (normalised), H = h r.
        pan: (B, 1, H, W) input PAN (normalised).
        degrade_ms, degrade_pan: :class:`Degrade` with the MS / PAN gains.
        margin: MS pixels left out on each side.

    Returns:
        (spectral L1, spatial |rho_high - rho_low|) scalars.
    """
    r = degrade_ms.ratio
    m, mp = margin, margin * r
    inner = (slice(None), slice(None), slice(m, -m or None), slice(m, -m or None))
    inner_p = (slice(None), slice(None), slice(mp, -mp or None), slice(mp, -mp or None))
    spec = F.l1_loss(degrade_ms(fused)[inner], ms.float()[inner])
    with torch.no_grad():
        rho_low = _corr(ms.float()[inner], degrade_pan(pan)[inner])
    rho_high = _corr(fused.float()[inner_p], pan.float()[inner_p])
    spat = (rho_high - rho_low).abs().mean()
    return spec, spat


def spectral_loss(fused: torch.Tensor, ms: torch.Tensor, degrade_ms: Degrade, margin: int = 0) -> torch.Tensor:
    """L1 between the degraded output and the MS (normalised units).

    Args:
        fused: (B, C, H, W) output; ms: (B, C, h, w), H = h r.
        degrade_ms: :class:`Degrade` with the MS gains.
        margin: MS pixels left out on each side (where the filter meets the border).
    """
    m = margin
    inner = (slice(None), slice(None), slice(m, -m or None), slice(m, -m or None))
    return F.l1_loss(degrade_ms(fused)[inner], ms.float()[inner])


def local_correlation(x: torch.Tensor, y: torch.Tensor, window: int) -> torch.Tensor:
    """Pearson correlation in every ``window`` x ``window`` box (valid positions).

    Args:
        x: (B, C, H, W); y: (B, 1, H, W).

    Returns:
        (B, C, H - window + 1, W - window + 1).
    """
    x, y = x.float(), y.float()
    mx, my = F.avg_pool2d(x, window, 1), F.avg_pool2d(y, window, 1)
    vx = F.avg_pool2d(x * x, window, 1) - mx * mx
    vy = F.avg_pool2d(y * y, window, 1) - my * my
    cov = F.avg_pool2d(x * y, window, 1) - mx * my
    # flat boxes (vx or vy ~ 0) carry no structure: their correlation is taken as 0
    return cov / torch.sqrt(vx.clamp_min(0) * vy.clamp_min(0) + 1e-10)


def spatial_threshold(ms: torch.Tensor, pan: torch.Tensor, degrade_pan: Degrade, window: int) -> torch.Tensor:
    """Per-pixel ceiling of the spatial loss: local correlation of the bicubic MS with the
    low-passed PAN (bicubic of the degraded PAN), on the PAN grid.

    Args:
        ms: (B, C, h, w); pan: (B, 1, H, W); window: box side in PAN px.

    Returns:
        (B, C, H - window + 1, W - window + 1), in [0, 1].
    """
    r = degrade_pan.ratio
    with torch.no_grad():
        lms = F.interpolate(ms.float(), scale_factor=r, mode="bicubic", align_corners=False)
        lpan = F.interpolate(degrade_pan(pan), scale_factor=r, mode="bicubic", align_corners=False)
        return local_correlation(lms, lpan, window).clamp(0.0, 1.0)


def spatial_loss(fused: torch.Tensor, pan: torch.Tensor, rho_max: torch.Tensor, window: int) -> torch.Tensor:
    """Mean of ``max(0, rho_max - rho)``, rho the local correlation of each output band with
    the PAN: zero where the output follows the PAN at least as closely as the MS does.

    Args:
        fused: (B, C, H, W); pan: (B, 1, H, W).
        rho_max: (B, C, H - window + 1, W - window + 1) ceiling (:func:`spatial_threshold`),
            or a scalar tensor.
        window: box side in PAN px.
    """
    rho = local_correlation(fused, pan, window)
    return (rho_max - rho).clamp_min(0.0).mean()
