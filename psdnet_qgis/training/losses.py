"""Training losses: the three-stage L1, distillation, spectral angle, full-resolution terms.

* :func:`stages_l1` -- ``sum_s L1(out_s, gt)`` over the three PSDNet stages: the teacher's
  loss, the reconstruction part of the student's, and the Wald term of fine-tuning.
* :func:`feature_distillation` -- ``MSE(f2_s, f2_t) + MSE(f3_s, f3_t)``, the feature term
  that ``lambda`` weighs (``training.loop.calibrate_lambda``); ``training.fast`` compares a
  slimmed student with the teacher channels it kept. The one implementation of both terms.
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

  :class:`Degrade` and :func:`fullres_losses` live in ``model.losses`` (scene adaptation in
  the engine uses them too, and the model layer may not import training).
  Both are computed on the interior of the patch only (``margin`` MS pixels dropped on
  each side), where the 42-tap degradation filter does not reach the replicated border.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from psdnet_qgis.model.losses import Degrade, fullres_losses
from psdnet_qgis.model.psdnet import PSDNetOutput

__all__ = ["stages_l1", "feature_distillation", "spectral_angle_loss", "Degrade", "fullres_losses"]


def stages_l1(out: PSDNetOutput, gt: torch.Tensor) -> torch.Tensor:
    """``L1(out1, gt) + L1(out2, gt) + L1(out3, gt)``: the loss of every stage against ``gt``.

    Args:
        out: network outputs (B, C, H, W) of the three stages.
        gt: reference (B, C, H, W).
    """
    return F.l1_loss(out.out1, gt) + F.l1_loss(out.out2, gt) + F.l1_loss(out.out3, gt)


def feature_distillation(student: PSDNetOutput, teacher: PSDNetOutput,
                         kept: torch.Tensor | None = None) -> torch.Tensor:
    """``MSE(f2_s, f2_t) + MSE(f3_s, f3_t)``: student features against the frozen teacher's.

    Args:
        student: the student's outputs (features ``f2``, ``f3``).
        teacher: the teacher's outputs on the same batch (detached here).
        kept: for a slimmed student (``training.fast``), the indices of the teacher channels
            its features correspond to (``model.slim.keep_indices``); None = all.
    """
    f2, f3 = teacher.f2.detach(), teacher.f3.detach()
    if kept is not None:
        f2, f3 = f2[:, kept], f3[:, kept]
    return F.mse_loss(student.f2, f2) + F.mse_loss(student.f3, f3)


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
