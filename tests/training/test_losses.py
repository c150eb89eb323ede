"""The distillation terms of training (training/losses.py), written once for both recipes."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from psdnet_qgis.model.psdnet import PSDNetOutput
from psdnet_qgis.training.losses import feature_distillation, stages_l1


def _out(channels: int, seed: int) -> PSDNetOutput:
    g = torch.Generator().manual_seed(seed)
    img = [torch.rand(2, 3, 8, 8, generator=g) for _ in range(3)]
    return PSDNetOutput(*img, torch.rand(2, channels, 4, 4, generator=g), torch.rand(2, channels, 2, 2, generator=g))


def test_stages_l1_sums_the_three_stages() -> None:
    out, gt = _out(4, 0), torch.rand(2, 3, 8, 8)
    expected = F.l1_loss(out.out1, gt) + F.l1_loss(out.out2, gt) + F.l1_loss(out.out3, gt)
    assert torch.equal(stages_l1(out, gt), expected)


def test_feature_distillation_on_the_kept_teacher_channels() -> None:
    teacher, student = _out(6, 1), _out(3, 2)
    kept = torch.tensor([0, 2, 5])
    expected = F.mse_loss(student.f2, teacher.f2[:, kept]) + F.mse_loss(student.f3, teacher.f3[:, kept])
    assert torch.equal(feature_distillation(student, teacher, kept), expected)
    same = _out(6, 3)
    assert torch.equal(feature_distillation(same, teacher),
                       F.mse_loss(same.f2, teacher.f2) + F.mse_loss(same.f3, teacher.f3))


def test_the_teacher_gets_no_gradient() -> None:
    teacher, student = _out(3, 4), _out(3, 5)
    for t in (teacher.f2, teacher.f3, student.f2, student.f3):
        t.requires_grad_(True)
    feature_distillation(student, teacher).backward()
    assert teacher.f2.grad is None and teacher.f3.grad is None
    assert student.f2.grad is not None
