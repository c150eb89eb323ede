"""Distilled fast models: a slimmed copy of a bundled model trained against it.

``psdnet_<base>_fast`` starts from :func:`psdnet_qgis.model.slim.slim` of the bundled
``psdnet_<base>`` (the teacher, frozen, fp32) at ``cfg.width`` and is trained on the base
model's scenes with

``L1 over the three stages against the reference``
``+ L1(out3_student, out3_teacher)`` (output distillation)
``+ lam * (MSE(f2_s, f2_t[kept]) + MSE(f3_s, f3_t[kept]))`` (PSDNet's feature
distillation on the teacher channels the slim copy kept, so no projection layer is needed).

Each epoch is checkpointed (``<out>/last.pt``: weights, optimiser, sampler, RNG), so
``--resume`` continues a run across sessions; the best validation epoch is exported.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from psdnet_qgis.errors import PSDNetInputError
from psdnet_qgis.model.psdnet import PSDNet
from psdnet_qgis.model.slim import keep_indices, slim
from psdnet_qgis.model.weights import load_model
from psdnet_qgis.training.config import MODELS, REPO_ROOT, TrainConfig
from psdnet_qgis.training.data import PatchSampler, WaldPair
from psdnet_qgis.training.evaluate import evaluate
from psdnet_qgis.training.export import export_meta, export_student
from psdnet_qgis.training.loop import append_log, cosine_lr
from psdnet_qgis.training.losses import feature_distillation, stages_l1
from psdnet_qgis.training.runtime import resolve_device, save_atomic, seed_all, to_device

LOG = logging.getLogger("psdnet_qgis.training")
#: Suffix of the distilled fast models' names.
FAST_SUFFIX = "_fast"


def base_model(model: str) -> str:
    """``landsat3_fast`` -> ``landsat3`` (the teacher's training-config name)."""
    return model[:-len(FAST_SUFFIX)] if model.endswith(FAST_SUFFIX) else model


def _teacher(cfg: TrainConfig) -> PSDNet:
    path = cfg.teacher_from or str(REPO_ROOT / "resources" / "models" / f"psdnet_{base_model(cfg.model)}.pt")
    model, _ = load_model(path)
    return model.float().eval()


def train_fast(cfg: TrainConfig, train_pairs: Sequence[WaldPair], val_pairs: Sequence[WaldPair],
               progress: bool = False) -> dict[str, Any]:
    """Distil the slimmed bundled model into ``psdnet_<cfg.model>`` (see the module docstring).

    ``cfg.epochs`` epochs of ``cfg.steps_per_epoch`` steps; ``cfg.lam`` weights the feature
    distillation (default 1.0); fp32 throughout (the teacher's features are the target).

    Returns:
        Summary (best epoch, its validation, steps, elapsed seconds, export).
    """
    if not cfg.model.endswith(FAST_SUFFIX):
        raise PSDNetInputError(f"--model {cfg.model}: the fast recipe needs a *_fast model name.")
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    seed_all(cfg.seed)
    teacher = _teacher(cfg)
    if cfg.width >= teacher.width:
        raise PSDNetInputError(f"--width {cfg.width}: a fast model needs a width below the teacher's "
                               f"{teacher.width}.")
    kept = keep_indices(teacher, cfg.width)["G1"].to(device)
    student = slim(teacher, cfg.width).train()
    teacher.to(device, memory_format=torch.channels_last)
    student.to(device, memory_format=torch.channels_last)
    for p in teacher.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(student.parameters(), lr=cfg.lr)
    sampler = PatchSampler(train_pairs, cfg.patch, seed=cfg.seed, balance=cfg.balance, variety=cfg.variety())
    lam = 1.0 if cfg.lam is None else float(cfg.lam)
    st: dict[str, Any] = {"phase": "fast", "epoch": {"teacher": 0, "student": 0},
                          "steps": {"teacher": 0, "student": 0},
                          "elapsed": {"teacher": 0.0, "student": 0.0},
                          "lam": lam, "best": None, "best_epoch": None}
    ckpt = out / "last.pt"
    if cfg.resume and ckpt.exists():
        ck = torch.load(ckpt, map_location="cpu", weights_only=False)
        student.load_state_dict(ck["student"])
        opt.load_state_dict(ck["opt"])
        sampler.load_state_dict(ck["sampler"])
        torch.set_rng_state(ck["torch_rng"])
        st = ck["state"]
        LOG.info("resumed %s at epoch %d", ckpt, st["epoch"]["student"])
    else:
        ev = evaluate(student.eval(), val_pairs, device)
        append_log(out / "log.jsonl", {"phase": "fast", "epoch": 0, "val": ev})
        LOG.info("slim %d before recovery: score %.4f", cfg.width, ev["score"])
    while st["epoch"]["student"] < cfg.epochs:
        t0 = time.time()
        lr = cosine_lr(cfg.lr, cfg.lr_floor, st["epoch"]["student"] / max(1, cfg.epochs))
        for g in opt.param_groups:
            g["lr"] = lr
        student.train()
        sums = {"loss": 0.0, "l1": 0.0, "out": 0.0, "feat": 0.0}
        for _ in range(cfg.steps_per_epoch):
            ms, pan, gt = (to_device(t, device) for t in sampler.sample(cfg.batch))
            with torch.no_grad():
                ot = teacher(ms, pan)
            o = student(ms, pan)
            l1 = stages_l1(o, gt)
            lo = F.l1_loss(o.out3, ot.out3)
            lf = feature_distillation(o, ot, kept)
            loss = l1 + lo + lam * lf
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            st["steps"]["student"] += 1
            for k, v in (("loss", loss), ("l1", l1), ("out", lo), ("feat", lf)):
                sums[k] += float(v.detach())
        st["epoch"]["student"] += 1
        ev = evaluate(student.eval(), val_pairs, device)
        st["elapsed"]["student"] += time.time() - t0
        rec = {"phase": "fast", "epoch": st["epoch"]["student"], "lr": lr,
               **{k: v / cfg.steps_per_epoch for k, v in sums.items()}, "val": ev}
        append_log(out / "log.jsonl", rec)
        LOG.info("fast epoch %d loss %.4f score %.4f", rec["epoch"], rec["loss"], ev["score"])
        if st["best"] is None or ev["score"] < st["best"]["score"]:
            st["best"], st["best_epoch"] = ev, st["epoch"]["student"]
            save_atomic({"student": student.state_dict(), "epoch": st["best_epoch"], "val": ev},
                        out / "best_student.pt")
        save_atomic({"student": student.state_dict(), "opt": opt.state_dict(),
                     "sampler": sampler.state_dict(), "torch_rng": torch.get_rng_state(),
                     "state": st, "config": asdict(cfg)}, ckpt)
    summary: dict[str, Any] = {"best_epoch": st["best_epoch"], "best": st["best"],
                               "steps": st["steps"], "elapsed_s": st["elapsed"]}
    best = out / "best_student.pt"
    if best.exists():
        student.load_state_dict(torch.load(best, map_location="cpu", weights_only=False)["student"])
    if cfg.export:
        meta = export_meta(cfg, MODELS[cfg.model], st, train_pairs, val_pairs, None, device)
        meta["teacher"] = f"psdnet_{base_model(cfg.model)}"
        sha = export_student(student.eval(), cfg.export, meta)
        summary["exported"] = {"path": cfg.export, "sha256": sha}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary
