"""Training smoke test on tiny generated arrays (no shared data): runs, checkpoints, resumes,
exports loadable weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from psdnet_qgis.training.config import TrainConfig
from psdnet_qgis.training.loop import lr_at, train


@pytest.mark.slow
def test_one_step_smoke_resume_and_export(tmp_path, wald_pairs, train_config):
    train_pairs, val_pairs = wald_pairs
    s1 = train(train_config(), train_pairs, val_pairs, progress=False)
    assert s1["steps"] == {"teacher": 1, "student": 1}
    assert s1["lambda"] > 0
    run = tmp_path / "run"
    assert (run / "last.pt").exists() and (run / "best_student.pt").exists()
    lines = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [x["phase"] for x in lines] == ["teacher", "student"]
    v = lines[-1]["val"]["scenes"]["v"]
    assert np.isfinite(v["psdnet"]["SAM"]) and np.isfinite(v["bicubic"]["ERGAS"])

    # Resume with a larger epoch count continues the same run (no teacher re-training).
    export = tmp_path / "m" / "psdnet_vhr4.pt"
    s2 = train(train_config(epochs=2, resume=True, export=str(export), sam_weight=0.5, ema=0.9),
               train_pairs, val_pairs, progress=False)
    assert s2["steps"] == {"teacher": 1, "student": 2}
    assert s2["lambda"] == s1["lambda"]
    lines = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [x["phase"] for x in lines] == ["teacher", "student", "student"]
    assert lines[-1]["sam_loss"] > 0

    from psdnet_qgis.model.weights import load_model

    model, meta = load_model(export)
    assert meta.bands == 4 and meta.ratio == 4 and meta.width == 4
    assert meta.training_scenes == ("a", "b") and meta.validation_scenes == ("v",)
    assert meta.normalisation == "zscore4" and "CC BY-SA" in meta.licence
    with torch.inference_mode():
        out = model(torch.rand(1, 4, 8, 8), torch.rand(1, 1, 32, 32)).out3
    assert out.shape == (1, 4, 32, 32)


def test_lr_decays_with_epochs_or_time():
    cfg = TrainConfig()
    assert lr_at(cfg, 0, 10, 0.0, None) == cfg.lr
    assert lr_at(cfg, 10, 10, 0.0, None) == cfg.lr * cfg.lr_floor
    assert lr_at(cfg, 0, 10, 50.0, 100.0) < cfg.lr * 0.6


def test_spectral_angle_loss_is_angle_on_radiometric_scale():
    from psdnet_qgis.training.losses import spectral_angle_loss

    mean = torch.tensor([[100.0, 200.0]])
    std = torch.tensor([[10.0, 20.0]])
    gt = torch.rand(1, 2, 4, 4)
    assert float(spectral_angle_loss(gt, gt, mean, std)) < 1e-3
    # Scaling the radiometric image (not the normalised one) keeps the angle: 0 loss.
    s = 4 * std[:, :, None, None]
    m = mean[:, :, None, None]
    dn = (gt - 0.5) * s + m
    scaled = (dn * 1.5 - m) / s + 0.5
    assert float(spectral_angle_loss(scaled, gt, mean, std)) < 1e-3
    other = gt.clone()
    other[:, 0] += 0.5
    assert float(spectral_angle_loss(other, gt, mean, std)) > 0.01


def test_ablation_switches_teacher_from_stage1_and_joint4(tmp_path, wald_pairs, train_config):
    train_pairs, val_pairs = wald_pairs
    train(train_config(epochs=0), train_pairs, val_pairs, progress=False)
    teacher = tmp_path / "run" / "last.pt"
    export = tmp_path / "m" / "psdnet_vhr4.pt"
    s = train(train_config(out=str(tmp_path / "whole"), stage1="whole", norm="joint4",
                   teacher_from=str(teacher), export=str(export)), train_pairs, val_pairs, progress=False)
    assert s["steps"] == {"teacher": 1, "student": 1}
    from psdnet_qgis.model.weights import load_model

    model, meta = load_model(export)
    assert model.stage1 == "whole" and meta.extra["stage1"] == "whole" and meta.normalisation == "joint4"


@pytest.mark.slow
def test_refine_from_turns_sam_loss_and_ema_on_mid_run(tmp_path, wald_pairs, train_config):
    """--refine-from 3: epochs 1-2 plain (raw weights validated), 3-4 SAM loss + EMA from epoch 3."""
    (pair_a, _), val_pairs = wald_pairs
    train(train_config(epochs=4, sam_weight=0.5, ema=0.9, refine_from=3), [pair_a], val_pairs,
          progress=False)
    lines = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [(x["phase"], x["sam_weight"], x["ema"]) for x in lines] == [
        ("teacher", 0.0, False), ("student", 0.0, False), ("student", 0.0, False),
        ("student", 0.5, True), ("student", 0.5, True)]
    assert lines[1]["sam_loss"] == 0 and lines[3]["sam_loss"] > 0


@pytest.mark.slow
def test_without_validation_the_last_epochs_ema_is_exported(tmp_path, wald_pairs, train_config):
    """--val-scenes none (leave-one-scene-out): no epoch is chosen; the EMA of the last one is exported."""
    from psdnet_qgis.model.weights import load_model
    from psdnet_qgis.training.scenes import scenes_for

    assert scenes_for("vhr4", "val", "none") == []
    export = tmp_path / "m.pt"
    s = train(train_config(epochs=2, teacher_epochs=0, lam=0.0, ema=0.9, sam_weight=0.5, lr=0.05,
                           export=str(export)), wald_pairs[0][:1], [], progress=False)
    assert s["best_epoch"] is None and s["exported_weights"] == "ema"
    assert not (tmp_path / "run" / "best_student.pt").exists()
    ck = torch.load(tmp_path / "run" / "last.pt", map_location="cpu", weights_only=False)
    model, meta = load_model(export)
    assert meta.validation_scenes == ()
    # the export stores half precision: the EMA's weights to that rounding, not the raw student's
    got = model.state_dict()
    assert all(torch.allclose(v.float(), ck["ema"][k].float(), rtol=1e-2, atol=1e-3) for k, v in got.items())
    assert any(not torch.allclose(got[k].float(), v.float(), rtol=1e-2, atol=1e-3) for k, v in ck["student"].items())
