"""Training losses: the three-stage L1, distillation, spectral angle, full-resolution terms.

* :func:`stages_l1` -- ``sum_s L1(out_s, gt)`` over the three PSDNet stages: the teacher's
  loss, the reconstruction part of the student's, and the Wald term of fine-tuning.
* :func:`feature_distillation` -- ``MSE(f2_s, f2_t) + MSE(f3_s, f3_t)``, the feature term
  that ``lambda`` weighs (``training.loop.calibrate_lambda``).
* :func:`spectral_angle_loss` -- SAM on the radiometric scale (``--sam-weight``).
* Full-resolution fine-tuning (beyond the paper; ``--fullres-epochs``). Wald pairs train the
  network at a quarter (or half) of the real scale and throw the real full-resolution PAN
  detail away; the fine-tuning stage adds, on real full-resolution patches (no reference
  exists), :func:`fullres_losses`:

  - spectral consistency: the fused image, low-passed with the sensor's MTF-matched filter
    and decimated exactly as Wald's protocol does (``core.mtf.degrade``, here its torch twin
    :class:`Degrade`), must give back the input MS (L1, normalised units) -- the
    differentiable twin of Khan's D_lambda;
  - spatial consistency: the correlation of each fused band with the PAN at full
    resolution must match the correlation of that MS band with the MTF-degraded PAN at MS
    resolution (per patch; |rho_high - rho_low|) -- the correlation part of D_s, which is
    invariant to the normalisation's per-band affine scaling.

  Both are computed on the interior of the patch only (``margin`` MS pixels dropped on
  each side), where the 42-tap degradation filter does not reach the replicated border.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from psdnet_qgis.core.mtf import decimation_filter
from psdnet_qgis.model.psdnet import PSDNetOutput, distillation_loss


def stages_l1(out: PSDNetOutput, gt: torch.Tensor) -> torch.Tensor:
    """``L1(out1, gt) + L1(out2, gt) + L1(out3, gt)``: the loss of every stage against ``gt``.

    Args:
        out: network outputs (B, C, H, W) of the three stages.
        gt: reference (B, C, H, W).
    """
    # distillation_loss without a teacher is exactly this sum (one implementation).
    return distillation_loss(out, None, gt, 0.0)


def feature_distillation(student: PSDNetOutput, teacher: PSDNetOutput) -> torch.Tensor:
    """``MSE(f2_s, f2_t) + MSE(f3_s, f3_t)``: student features against the frozen teacher's."""
    return F.mse_loss(student.f2, teacher.f2) + F.mse_loss(student.f3, teacher.f3)


def spectral_angle_loss(out: torch.Tensor, gt: torch.Tensor, mean: torch.Tensor,
                        std: torch.Tensor) -> torch.Tensor:
    """Mean spectral angle (chord length 2 sin(theta / 2), ~theta in radians) between
    ``out`` and ``gt`` (B, C, H, W) on the radiometric scale of each sample's scene
    (SAM is not invariant to the zscore4 offsets, so angles are taken after
    denormalising with the per-sample (B, C) ``mean`` / ``std``)."""
    m = mean[:, :, None, None]
    s = 4.0 * std[:, :, None, None]
    f = (out.float() - 0.5) * s + m
    g = (gt.float() - 0.5) * s + m
    cos = (f * g).sum(1) / (f.norm(dim=1) * g.norm(dim=1) + 1e-6)
    return torch.sqrt(2.0 * (1.0 - cos).clamp_min(0.0) + 1e-8).mean()


class Degrade(nn.Module):
    """Differentiable ``core.mtf.degrade``: per-band MTF low-pass, decimation by ``r``
    sampled at the centre of each r x r PAN block (same taps and phase as the numpy one).

    Args:
        gains: MTF gain at Nyquist, one per band.
        ratio: PAN/MS ratio.
    """

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
