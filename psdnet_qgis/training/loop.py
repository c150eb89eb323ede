"""The training loops: teacher then student with knowledge distillation, and the optional
full-resolution fine-tuning.

Schedule: a teacher (same architecture; its stage-2 image input is the ground-truth
halves) is trained first for a short share of the budget, frozen, then the student is
trained with ``L = sum_s L1(out_s, gt) + lambda (MSE(f2_s, f2_t) + MSE(f3_s, f3_t))``.
``lambda`` is calibrated once, when the student starts, from measured magnitudes: it is set
so that the feature term equals ``--distill-ratio`` (default 0.2) times the L1 sum on the
first batches (the reference code's 1e-6 made the term about 1e-7 of the loss, i.e. off);
both terms are logged every epoch.

Adam (lr 5e-4) with a cosine decay to 5 % over each phase (by epochs, or by elapsed time
when ``--minutes`` is given, whichever is further along), seeded, checkpoint every epoch
(``<out>/last.pt``; ``--resume`` continues from it, including the time already spent),
validation every epoch on the model's validation scene at reduced resolution (SAM, ERGAS,
Q2n against bicubic), the best student by validation is kept (``<out>/best_student.pt``)
and exported with ``weights.save_model`` to ``resources/models/psdnet_<model>.pt`` + json.

Both loops share the cosine schedule (:func:`cosine_lr`), the weight EMA
(:func:`make_ema`, :func:`ema_update`) and the JSON-lines log (:func:`append_log`).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from psdnet_qgis.errors import PSDNetInputError
from psdnet_qgis.model.psdnet import PSDNet, PSDNetOutput, count_parameters
from psdnet_qgis.training.config import MODELS, TrainConfig
from psdnet_qgis.training.data import PatchSampler, WaldPair, scene_gains
from psdnet_qgis.training.evaluate import evaluate, full_resolution_eval
from psdnet_qgis.training.export import export_meta, export_student
from psdnet_qgis.training.losses import (
    Degrade,
    feature_distillation,
    fullres_losses,
    spectral_angle_loss,
    stages_l1,
)
from psdnet_qgis.training.runtime import (
    autocast_dtype,
    forward,
    resolve_device,
    save_atomic,
    seed_all,
    to_device,
)
from psdnet_qgis.training.scenes import SCENES

LOG = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- shared
def cosine_lr(base: float, floor: float, progress: float) -> float:
    """Cosine decay from ``base`` at progress 0 to ``base * floor`` at progress 1."""
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def lr_at(cfg: TrainConfig, epoch: int, max_epochs: int, elapsed: float,
          budget: float | None) -> float:
    """Learning rate of a teacher / student epoch (0-based ``epoch``).

    Progress is the share of ``max_epochs`` done or, with a time ``budget`` (s), the share of
    it ``elapsed``, whichever is further along.
    """
    prog = epoch / max(max_epochs, 1)
    if budget:
        prog = max(prog, elapsed / budget)
    return cosine_lr(cfg.lr, cfg.lr_floor, min(max(prog, 0.0), 1.0))


def make_ema(model: PSDNet) -> PSDNet:
    """A frozen copy of ``model`` whose weights :func:`ema_update` moves towards the model's.

    The exponential moving average is validated and exported instead of the raw weights
    (``--ema``): it damps the epoch-to-epoch swings that the small batches of a short CPU
    run cause.
    """
    ema = copy.deepcopy(model)
    for p in ema.parameters():
        p.requires_grad_(False)
    return ema


@torch.no_grad()
def ema_update(ema: PSDNet, model: PSDNet, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * model``, parameter by parameter."""
    for pe, ps in zip(ema.parameters(), model.parameters(), strict=True):
        pe.lerp_(ps, 1.0 - decay)


def append_log(path: Path, rec: dict[str, Any]) -> None:
    """Append one epoch record to a run's ``log.jsonl``."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(rec) + "\n")


def _steps(n: int, desc: str, progress: bool) -> Any:
    from tqdm import tqdm

    return tqdm(range(n), desc=desc, leave=False, disable=not progress, dynamic_ncols=True)


def _sam_term(o: PSDNetOutput, gt: torch.Tensor, sampler: PatchSampler,
              device: torch.device) -> torch.Tensor:
    """Spectral-angle loss of the last batch ``sampler`` drew (its scenes' statistics)."""
    return spectral_angle_loss(o.out3, gt, *(t.to(device) for t in sampler.last_stats))


def _val_text(val: dict[str, Any], val_full: dict[str, Any] | None = None) -> str:
    """The per-scene part of an epoch's log line."""
    msg = ""
    for name, d in val["scenes"].items():
        msg += (f" | {name} SAM {d['psdnet']['SAM']:.3f} (bic {d['bicubic']['SAM']:.3f})"
                f" ERGAS {d['psdnet']['ERGAS']:.3f} (bic {d['bicubic']['ERGAS']:.3f})"
                f" Q2n {d['psdnet']['Q2n']:.3f}")
        if val_full and name in val_full:
            msg += f" HQNR {val_full[name]['psdnet']['HQNR']:.4f}"
    return msg


def _refining(cfg: TrainConfig, phase: str, epoch: int) -> bool:
    """Whether the SAM loss and the EMA are on in this (1-based) epoch (``--refine-from``)."""
    if cfg.refine_from <= 0:
        return True
    return phase == "student" and epoch >= cfg.refine_from


# ----------------------------------------------------------------------------- teacher / student
@dataclass
class _Run:
    """What the teacher and student phases of one run share."""

    cfg: TrainConfig
    device: torch.device
    amp: torch.dtype | None
    out: Path
    sampler: PatchSampler
    teacher: PSDNet
    student: PSDNet
    opt: dict[str, torch.optim.Optimizer]
    budgets: dict[str, float | None]
    state: dict[str, Any]
    ema: PSDNet | None = None

    @property
    def ckpt_path(self) -> Path:
        return self.out / "last.pt"

    def save(self) -> None:
        """Checkpoint everything ``--resume`` needs (``<out>/last.pt``)."""
        save_atomic({
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "teacher": self.teacher.state_dict(), "student": self.student.state_dict(),
            "opt_teacher": self.opt["teacher"].state_dict(),
            "opt_student": self.opt["student"].state_dict(),
            "sampler": self.sampler.state_dict(), "torch_rng": torch.get_rng_state(),
            "state": self.state, "config": asdict(self.cfg),
        }, self.ckpt_path)

    def log(self, rec: dict[str, Any]) -> None:
        self.state["history"].append(rec)
        append_log(self.out / "log.jsonl", rec)


def _new_run(cfg: TrainConfig, train_pairs: Sequence[WaldPair]) -> _Run:
    """Seeded sampler, networks and optimisers of a fresh run."""
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    device = resolve_device(cfg.device)
    amp = autocast_dtype(cfg.precision, device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    seed_all(cfg.seed)
    bands = train_pairs[0].gt.shape[0]
    ratio = train_pairs[0].ratio
    sampler = PatchSampler(train_pairs, cfg.patch, seed=cfg.seed, balance=cfg.balance, variety=cfg.variety())
    # The teacher is always the paper's multipatch network (also in the stage-1 ablation,
    # so that ablation changes the student only).
    cl = torch.channels_last
    arch = {"inputs": cfg.inputs, "base": cfg.base}
    teacher = PSDNet(bands, ratio, cfg.width, teacher=True, **arch).to(device, memory_format=cl)
    student = PSDNet(bands, ratio, cfg.width, stage1=cfg.stage1, **arch).to(device, memory_format=cl)
    opt = {"teacher": torch.optim.Adam(teacher.parameters(), lr=cfg.lr),
           "student": torch.optim.Adam(student.parameters(), lr=cfg.lr)}
    budget = cfg.minutes * 60.0 if cfg.minutes else None
    budgets = {
        "teacher": budget * cfg.teacher_frac if budget else None,
        "student": budget * (1 - cfg.teacher_frac) - cfg.reserve_s if budget else None,
    }
    state: dict[str, Any] = {
        "phase": "teacher", "epoch": {"teacher": 0, "student": 0},
        "steps": {"teacher": 0, "student": 0}, "elapsed": {"teacher": 0.0, "student": 0.0},
        "lam": cfg.lam, "best": None, "best_epoch": None, "history": [],
    }
    return _Run(cfg, device, amp, out, sampler, teacher, student, opt, budgets, state)


def _restore(run: _Run) -> dict[str, Any] | None:
    """``--resume`` from ``last.pt`` or take the teacher of ``--teacher-from``.

    Returns:
        The resumed checkpoint (None when starting fresh).
    """
    cfg = run.cfg
    ck = None
    if cfg.resume and run.ckpt_path.exists():
        ck = torch.load(run.ckpt_path, map_location="cpu", weights_only=False)
        run.teacher.load_state_dict(ck["teacher"])
        run.student.load_state_dict(ck["student"])
        run.opt["teacher"].load_state_dict(ck["opt_teacher"])
        run.opt["student"].load_state_dict(ck["opt_student"])
        run.sampler.load_state_dict(ck["sampler"])
        torch.set_rng_state(ck["torch_rng"])
        run.state = ck["state"]
        LOG.info("resumed from %s: phase %s, epochs %s", run.ckpt_path, run.state["phase"],
                 run.state["epoch"])
    elif cfg.resume:
        LOG.info("--resume: no checkpoint at %s, starting fresh", run.ckpt_path)
    if ck is None and cfg.teacher_from:
        # Ablations share one teacher: take it from another run's checkpoint, skip phase 1.
        tk = torch.load(cfg.teacher_from, map_location="cpu", weights_only=False)
        if tk["state"]["phase"] != "student":
            raise PSDNetInputError(f"--teacher-from {cfg.teacher_from}: that run has not finished its teacher")
        run.teacher.load_state_dict(tk["teacher"])
        run.state["phase"] = "student"
        for k in ("epoch", "steps", "elapsed"):
            run.state[k]["teacher"] = tk["state"][k]["teacher"]
        LOG.info("teacher from %s (%d epochs)", cfg.teacher_from, run.state["epoch"]["teacher"])
    return ck


def calibrate_lambda(student: PSDNet, teacher: PSDNet, sampler: PatchSampler,
                     cfg: TrainConfig, device: torch.device, amp: torch.dtype | None) -> float:
    """lambda such that lambda * feature MSE = distill_ratio * L1 sum on a few batches.

    Uses a copy of the sampler's generator so training batches are not consumed.
    """
    probe = copy.copy(sampler)
    probe.rng = np.random.default_rng(cfg.seed + 12345)
    l1s, fms = [], []
    with torch.no_grad():
        for _ in range(3):
            ms, pan, gt = (to_device(t, device) for t in probe.sample(cfg.batch))
            base = None if probe.last_base is None else to_device(probe.last_base, device)
            ot = forward(teacher, ms, pan, gt, amp, device, base)
            os_ = forward(student, ms, pan, None, amp, device, base)
            l1s.append(float(stages_l1(os_, gt)))
            fms.append(float(feature_distillation(os_, ot)))
    l1, fm = float(np.mean(l1s)), float(np.mean(fms))
    lam = cfg.distill_ratio * l1 / max(fm, 1e-12)
    LOG.info("distillation: measured L1 sum %.4g, feature MSE sum %.4g -> lambda %.4g "
             "(term = %.2f x L1 at the start)", l1, fm, lam, cfg.distill_ratio)
    return lam


def _train_epoch(run: _Run, phase: str, lr: float, sam_weight: float, ema_on: bool,
                 progress: bool) -> dict[str, float]:
    """``cfg.steps_per_epoch`` optimiser steps of ``phase``; returns the summed loss terms."""
    cfg, st, dev, amp = run.cfg, run.state, run.device, run.amp
    model, opt = (run.teacher if phase == "teacher" else run.student), run.opt[phase]
    sums = {"loss": 0.0, "l1": 0.0, "distill": 0.0}
    bar = _steps(cfg.steps_per_epoch, f"{phase} {st['epoch'][phase] + 1}", progress)
    for _ in bar:
        ms, pan, gt = (to_device(t, dev) for t in run.sampler.sample(cfg.batch))
        base = None if run.sampler.last_base is None else to_device(run.sampler.last_base, dev)
        if phase == "teacher":
            o = forward(model, ms, pan, gt, amp, dev, base)
            loss = stages_l1(o, gt)
            l1, dist = loss, torch.zeros(())
        else:
            with torch.no_grad():
                ot = forward(run.teacher, ms, pan, gt, amp, dev, base)
            o = forward(model, ms, pan, None, amp, dev, base)
            l1 = stages_l1(o, gt)
            dist = feature_distillation(o, ot)
            loss = l1 + st["lam"] * dist
        if sam_weight > 0:
            sam_l = _sam_term(o, gt, run.sampler, dev)
            loss = loss + sam_weight * sam_l
            sums["sam"] = sums.get("sam", 0.0) + float(sam_l.detach())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if ema_on:
            ema_update(run.ema, run.student, cfg.ema)
        st["steps"][phase] += 1
        sums["loss"] += float(loss.detach())
        sums["l1"] += float(l1.detach())
        sums["distill"] += float(dist.detach()) * (st["lam"] or 0.0)
        bar.set_postfix(loss=f"{float(loss.detach()):.4f}", lr=f"{lr:.1e}")
    bar.close()
    return sums


def _validate(run: _Run, rec: dict[str, Any], ema_on: bool, val_pairs: Sequence[WaldPair]) -> float:
    """Validate the student (its EMA when on) into ``rec``, keep the best; returns seconds."""
    st = run.state
    tv = time.time()
    # Same autocast as training (speed); `--evaluate` reports fp32 numbers.
    evm = run.ema if ema_on else run.student
    ev = evaluate(evm, val_pairs, run.device, amp=run.amp)
    rec["val"] = ev
    rec["val_s"] = time.time() - tv
    st["elapsed"]["student"] += rec["val_s"]
    if st["best"] is None or ev["score"] < st["best"]["score"]:
        st["best"] = ev
        st["best_epoch"] = st["epoch"]["student"]
        save_atomic({"student": evm.state_dict(), "epoch": st["epoch"]["student"],
                     "ema": ema_on, "val": ev, "config": asdict(run.cfg)},
                    run.out / "best_student.pt")
    return rec["val_s"]


def _run_phase(run: _Run, phase: str, val_pairs: Sequence[WaldPair], progress: bool) -> None:
    """All epochs of the teacher or the student phase, checkpointing after each."""
    cfg, st = run.cfg, run.state
    max_epochs = cfg.teacher_epochs if phase == "teacher" else cfg.epochs
    pbudget = run.budgets[phase]
    model, opt = (run.teacher if phase == "teacher" else run.student), run.opt[phase]
    if phase == "student":
        run.teacher.eval()
        for p_ in run.teacher.parameters():
            p_.requires_grad_(False)
        if st["lam"] is None:
            st["lam"] = calibrate_lambda(run.student, run.teacher, run.sampler, cfg, run.device, run.amp)
    last_epoch_s: float | None = None
    while st["epoch"][phase] < max_epochs:
        if pbudget is not None and last_epoch_s is not None and \
                st["elapsed"][phase] + 1.05 * last_epoch_s > pbudget:
            break
        ep = st["epoch"][phase]
        lr = lr_at(cfg, ep, max_epochs, st["elapsed"][phase], pbudget)
        refining = _refining(cfg, phase, ep + 1)
        sam_weight = cfg.sam_weight if refining else 0.0
        ema_on = run.ema is not None and phase == "student" and refining
        if ema_on and cfg.refine_from > 0 and ep + 1 == cfg.refine_from:
            run.ema.load_state_dict(run.student.state_dict())  # the EMA starts here
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        t0 = time.time()
        sums = _train_epoch(run, phase, lr, sam_weight, ema_on, progress)
        dt = time.time() - t0
        last_epoch_s = dt
        st["elapsed"][phase] += dt
        st["epoch"][phase] += 1
        n = cfg.steps_per_epoch
        rec: dict[str, Any] = {
            "phase": phase, "epoch": st["epoch"][phase], "steps": st["steps"][phase],
            "lr": lr, "loss": sums["loss"] / n, "l1": sums["l1"] / n,
            "distill_weighted": sums["distill"] / n, "epoch_s": dt,
            "sam_loss": sums.get("sam", 0.0) / n, "sam_weight": sam_weight, "ema": ema_on,
            "samples_per_s": n * cfg.batch / dt, "elapsed_s": st["elapsed"][phase],
        }
        if phase == "student" and val_pairs:
            last_epoch_s += _validate(run, rec, ema_on, val_pairs)
        run.log(rec)
        LOG.info(f"{phase} epoch {rec['epoch']} loss {rec['loss']:.4f} (l1 {rec['l1']:.4f}, "
                 f"distill {rec['distill_weighted']:.4f}) lr {lr:.2e} "
                 f"{rec['samples_per_s']:.1f} samples/s" + _val_text(rec.get("val", {"scenes": {}})))
        run.save()
    if phase == "teacher":
        st["phase"] = "student"
        run.save()


def train(cfg: TrainConfig, train_pairs: Sequence[WaldPair], val_pairs: Sequence[WaldPair],
          progress: bool = True, full_pairs: Sequence[WaldPair] | None = None,
          val_full: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Train teacher then student; checkpoint every epoch; export the best student.

    Args:
        cfg: settings.
        train_pairs: Wald pairs to sample patches from.
        val_pairs: Wald pairs validated whole after every student epoch.
        progress: show tqdm progress bars.
        full_pairs, val_full: full-resolution training pairs and validation inputs
            (``training.data.load_fullres_pairs``, ``fullres_val_inputs``), needed when
            ``cfg.fullres_epochs`` > 0.

    Returns:
        Summary dict (best validation, steps, samples/s, paths).
    """
    if cfg.model not in MODELS:
        raise PSDNetInputError(f"--model: {cfg.model!r} is unknown; use one of {sorted(MODELS)}")
    run = _new_run(cfg, train_pairs)
    ck = _restore(run)
    if cfg.ema > 0:
        run.ema = make_ema(run.student)
        if ck is not None and ck.get("ema") is not None:
            run.ema.load_state_dict(ck["ema"])
    LOG.info("%s: %d bands, ratio %d, width %d, %d params; device %s, autocast %s; "
             "train scenes %s, val %s", cfg.model, train_pairs[0].gt.shape[0], train_pairs[0].ratio, cfg.width,
             count_parameters(run.student), run.device, run.amp, [p.name for p in train_pairs],
             [p.name for p in val_pairs])
    if cfg.init:
        # Start from exported weights: no teacher / student phases (fine-tuning only).
        from psdnet_qgis.model.weights import load_model

        init_model, _ = load_model(cfg.init)
        run.student.load_state_dict(init_model.state_dict())
        LOG.info("--init %s: skipping the teacher and student phases", cfg.init)
    else:
        for phase in ("teacher", "student"):
            if phase == "teacher" and run.state["phase"] == "student":
                continue
            run.state["phase"] = phase
            _run_phase(run, phase, val_pairs, progress)
    return _finish(run, train_pairs, val_pairs, full_pairs, val_full, progress)


def _finish(run: _Run, train_pairs: Sequence[WaldPair], val_pairs: Sequence[WaldPair],
            full_pairs: Sequence[WaldPair] | None, val_full: list[dict[str, Any]] | None,
            progress: bool) -> dict[str, Any]:
    """Best student, optional full-resolution fine-tuning, export, ``summary.json``."""
    cfg, st, student = run.cfg, run.state, run.student
    summary: dict[str, Any] = {
        "best_epoch": st["best_epoch"], "best": st["best"], "steps": st["steps"],
        "elapsed_s": st["elapsed"], "lambda": st["lam"], "checkpoint": str(run.ckpt_path),
    }
    best_path = run.out / "best_student.pt"
    if best_path.exists() and not cfg.init:
        student.load_state_dict(torch.load(best_path, map_location="cpu", weights_only=False)["student"])
    elif not val_pairs and run.ema is not None and _refining(cfg, "student", st["epoch"]["student"]):
        # no validation chose an epoch: the last one is exported, as its EMA when that was on
        student.load_state_dict(run.ema.state_dict())
        summary["exported_weights"] = "ema"
    if cfg.fullres_epochs > 0:
        if not full_pairs:
            raise PSDNetInputError("fullres_epochs > 0 needs full_pairs (load_fullres_pairs)")
        wald = PatchSampler(train_pairs, cfg.patch, seed=cfg.seed + 1, balance=cfg.balance)
        full = PatchSampler(full_pairs, cfg.fullres_patch, seed=cfg.seed + 2, balance=cfg.balance)
        student, summary["fullres"] = finetune_fullres(
            cfg, student, wald, full, val_pairs, val_full or [], run.device, run.amp, run.out, progress)
    if cfg.export:
        meta = export_meta(cfg, MODELS[cfg.model], st, train_pairs, val_pairs, run.amp, run.device)
        sha = export_student(student, cfg.export, meta)
        summary["exported"] = {"path": cfg.export, "sha256": sha}
        LOG.info("exported %s (sha256 %s)", cfg.export, sha[:12])
    (run.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


# ----------------------------------------------------------------------------- full resolution
def _scene_degradations(pairs: Iterable[WaldPair],
                        device: torch.device) -> dict[str, tuple[Degrade, Degrade]]:
    """One (MS, PAN) degradation per training scene, with its sensor's MTF gains."""
    degr: dict[str, tuple[Degrade, Degrade]] = {}
    for p in pairs:
        sensor = SCENES[p.name].sensor if p.name in SCENES else None
        g_ms, g_pan = scene_gains(sensor, p.ms.shape[0])
        degr[p.name] = (Degrade(g_ms, p.ratio).to(device), Degrade([g_pan], p.ratio).to(device))
    return degr


def _fullres_val(cfg: TrainConfig, model: PSDNet, val_pairs: Sequence[WaldPair],
                 val_full: list[dict[str, Any]], device: torch.device,
                 amp: torch.dtype | None) -> dict[str, Any]:
    """Reduced-resolution and no-reference validation of a fine-tuning epoch."""
    return {"val": evaluate(model, val_pairs, device, amp=amp),
            "val_full": full_resolution_eval(model, cfg.model, None, device, classical=False,
                                             inputs=val_full)}


def _fullres_step(cfg: TrainConfig, model: PSDNet, wald: PatchSampler, full: PatchSampler,
                  degr: dict[str, tuple[Degrade, Degrade]], margin: int, device: torch.device,
                  amp: torch.dtype | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss of one fine-tuning step: a Wald batch (L1, + SAM) and a full-resolution batch.

    Returns:
        (total loss, {"l1", "spectral", "spatial"} terms).
    """
    ms, pan, gt = (to_device(t, device) for t in wald.sample(cfg.batch))
    o = forward(model, ms, pan, None, amp, device)
    l1 = stages_l1(o, gt)
    loss = l1
    if cfg.sam_weight > 0:
        loss = loss + cfg.sam_weight * _sam_term(o, gt, wald, device)
    fms, fpan, _ = (to_device(t, device) for t in full.sample(cfg.fullres_batch))
    names = full.last_names
    fo = forward(model, fms, fpan, None, amp, device).out3
    spec = fo.new_zeros(())
    spat = fo.new_zeros(())
    for i, name in enumerate(names):
        dm, dp = degr[name]
        s1, s2 = fullres_losses(fo[i:i + 1], fms[i:i + 1], fpan[i:i + 1], dm, dp, margin)
        spec = spec + s1 / len(names)
        spat = spat + s2 / len(names)
    loss = loss + cfg.fullres_spectral * spec + cfg.fullres_spatial * spat
    return loss, {"l1": l1, "spectral": spec, "spatial": spat}


def finetune_fullres(cfg: TrainConfig, model: PSDNet, wald: PatchSampler, full: PatchSampler,
                     val_pairs: Sequence[WaldPair], val_full: list[dict[str, Any]],
                     device: torch.device, amp: torch.dtype | None, out: Path,
                     progress: bool = True) -> tuple[PSDNet, dict[str, Any]]:
    """Full-resolution fine-tuning: ``L = Wald L1 (+ SAM) + a * spectral + b * spatial``.

    ``model`` holds the starting weights. Checkpoints to ``<out>/fullres_last.pt`` every
    epoch (resumed with ``--resume``); logs to ``<out>/log.jsonl`` (phase "fullres").
    Runs a fixed ``cfg.fullres_epochs`` (no selection on the validation scene).

    Returns:
        (the fine-tuned model -- its EMA when ``cfg.ema`` > 0 --, summary dict).
    """
    opt = torch.optim.Adam(model.parameters(), lr=cfg.fullres_lr)
    ema = make_ema(model) if cfg.ema > 0 else None
    degr = _scene_degradations(full.pairs, device)
    ck_path = out / "fullres_last.pt"
    epoch, hist = 0, []
    if cfg.resume and ck_path.exists():
        ck = torch.load(ck_path, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        if ema is not None:
            ema.load_state_dict(ck["ema"])
        wald.load_state_dict(ck["wald"])
        full.load_state_dict(ck["full"])
        torch.set_rng_state(ck["torch_rng"])
        epoch, hist = ck["epoch"], ck["history"]
        LOG.info("fullres: resumed at epoch %d", epoch)
    margin = max(2, 24 // wald.ratio)  # MS px: the 42-tap filter reaches ~21 PAN px
    evm = ema if ema is not None else model
    if epoch == 0:
        rec0 = {"phase": "fullres", "epoch": 0, **_fullres_val(cfg, evm, val_pairs, val_full, device, amp)}
        hist.append(rec0)
        append_log(out / "log.jsonl", rec0)
    while epoch < cfg.fullres_epochs:
        lr = cosine_lr(cfg.fullres_lr, cfg.lr_floor, epoch / max(cfg.fullres_epochs, 1))
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        t0 = time.time()
        sums = {"l1": 0.0, "spectral": 0.0, "spatial": 0.0}
        bar = _steps(cfg.steps_per_epoch, f"fullres {epoch + 1}", progress)
        for _ in bar:
            loss, terms = _fullres_step(cfg, model, wald, full, degr, margin, device, amp)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                ema_update(ema, model, cfg.ema)
            for k in sums:
                sums[k] += float(terms[k].detach())
            bar.set_postfix(l1=f"{float(terms['l1'].detach()):.4f}",
                            spec=f"{float(terms['spectral'].detach()):.4f}",
                            spat=f"{float(terms['spatial'].detach()):.3f}")
        bar.close()
        epoch += 1
        n = cfg.steps_per_epoch
        rec = {"phase": "fullres", "epoch": epoch, "lr": lr, "epoch_s": time.time() - t0,
               **{k: v / n for k, v in sums.items()},
               **_fullres_val(cfg, evm, val_pairs, val_full, device, amp)}
        hist.append(rec)
        append_log(out / "log.jsonl", rec)
        LOG.info(f"fullres epoch {epoch} l1 {rec['l1']:.4f} spectral {rec['spectral']:.4f} "
                 f"spatial {rec['spatial']:.4f}" + _val_text(rec["val"], rec["val_full"]))
        save_atomic({"model": model.state_dict(), "opt": opt.state_dict(),
                     "ema": ema.state_dict() if ema is not None else None,
                     "wald": wald.state_dict(), "full": full.state_dict(),
                     "torch_rng": torch.get_rng_state(), "epoch": epoch, "history": hist}, ck_path)
    return evm, {"epochs": epoch, "start": hist[0], "end": hist[-1]}
