"""Train the bundled PSDNet models (reduced-resolution Wald pairs, knowledge distillation).

Command line::

    python -m psdnet_qgis.model.train --model vhr4 --data ../shared/data --out runs/vhr4 \
        --minutes 60 [--epochs N] [--resume]
    python -m psdnet_qgis.model.train --model vhr4 --evaluate resources/models/psdnet_vhr4.pt

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

On CPU, bf16 autocast + channels-last is used when available (measured here: 35 k vs
17 k PAN px/s per training step for fp32 NCHW, 21 k for fp32 channels-last).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import platform
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from psdnet_qgis.core.metrics import reduced_resolution_metrics
from psdnet_qgis.errors import PSDNetInputError
from psdnet_qgis.model.data import PatchSampler, WaldPair, crop_pair, largest_valid_window, make_wald_pair
from psdnet_qgis.model.psdnet import PSDNet, PSDNetOutput, count_parameters, distillation_loss

LOG = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ModelDef:
    """What a bundled model is: bands, ratio and the text that goes into its metadata."""

    bands: int
    ratio: int
    band_names: tuple[str, ...]
    rgb: tuple[int, ...]
    sensor: str
    licence: str
    description: str


MODELS: dict[str, ModelDef] = {
    "vhr4": ModelDef(
        4, 4, ("blue", "green", "red", "nir"), (2, 1, 0),
        "4-band VHR, ratio 4 (trained on WorldView-2/3 and one unknown 0.5 m sensor)",
        "CC BY-SA 4.0 (weights derived from SpaceNet imagery, CC BY-SA 4.0; also trained on "
        "one 0.5 m scene redistributed in an MIT-licensed repository whose imagery source is "
        "not stated)",
        "PSDNet for Blue, Green, Red, NIR MS with a PAN 4x finer (WorldView, GeoEye, "
        "Pleiades class sensors)."),
    "landsat3": ModelDef(
        3, 2, ("blue", "green", "red"), (2, 1, 0),
        "Landsat 8/9 OLI (B2, B3, B4 + B8 PAN), ratio 2",
        "Public domain imagery (USGS Landsat); weights released with the plugin's licence",
        "PSDNet for Landsat 8/9 Blue, Green, Red (30 m) with the 15 m PAN band."),
}


@dataclass
class TrainConfig:
    """Training settings (all stored in checkpoints and in the exported metadata)."""

    model: str = "vhr4"
    out: str = "runs/vhr4"
    minutes: Optional[float] = None
    epochs: int = 200
    teacher_epochs: int = 9
    teacher_frac: float = 0.15
    steps_per_epoch: int = 50
    batch: int = 8
    patch: int = 64
    balance: float = 0.5
    width: int = 28
    lr: float = 5e-4
    lr_floor: float = 0.05
    lam: Optional[float] = None
    distill_ratio: float = 0.2
    sam_weight: float = 0.0
    ema: float = 0.0
    # Two-phase student: from this student epoch (1-based) on, the SAM loss and the EMA are
    # on (the EMA starts from the weights of that moment); before it, neither is, and the
    # teacher has no SAM loss. 0 = both from the start as set.
    refine_from: int = 0
    seed: int = 0
    threads: Optional[int] = None
    precision: str = "auto"
    device: str = "auto"
    export: Optional[str] = None
    resume: bool = False
    reserve_s: float = 60.0
    norm: str = "zscore4"
    stage1: str = "multipatch"
    teacher_from: Optional[str] = None
    # Full-resolution fine-tuning (beyond the paper; model/fullres.py), after the student
    # or from --init weights: each step adds a batch of real full-resolution patches with
    # the no-reference losses to the usual Wald batch.
    fullres_epochs: int = 0
    fullres_patch: int = 128
    fullres_batch: int = 2
    fullres_spectral: float = 1.0
    fullres_spatial: float = 0.2
    fullres_lr: float = 1e-4
    init: Optional[str] = None
    notes: str = ""


# ----------------------------------------------------------------------------- data
def load_pairs(model: str, data_dir: str | os.PathLike | None,
               norm: str = "zscore4") -> tuple[list[WaldPair], list[WaldPair]]:
    """Read the model's training and validation scenes and make Wald pairs.

    ``norm`` is the ``core.radiometry`` method the pairs are normalised with.

    Returns:
        (train_pairs, val_pairs); validation pairs are cropped to their largest fully
        valid window.
    """
    # engine.scenes (GDAL/rasterio) only when real scenes are needed.
    from psdnet_qgis.engine.scenes import load_scene, scenes_for

    out: dict[str, list[WaldPair]] = {}
    for role in ("train", "val"):
        pairs = []
        for spec in scenes_for(model, role):
            sc = load_scene(spec, data_dir)
            ms_g, pan_g = scene_gains(spec.sensor, len(spec.bands))
            p = make_wald_pair(sc.ms, sc.pan, spec.ratio, ms_g, pan_g, sc.ms_valid,
                               sc.pan_valid, spec.name, norm_method=norm)
            if role == "val":
                p = crop_pair(p, largest_valid_window(p.valid, p.ratio))
            pairs.append(p)
        out[role] = pairs
    return out["train"], out["val"]


def scene_gains(sensor: str, n_bands: int) -> tuple[tuple[float, ...], float]:
    """MTF gains for a scene's selected bands (B, G, R[, NIR] of the sensor)."""
    from psdnet_qgis.core.mtf import gnyq_for

    g = gnyq_for(sensor, 4) if n_bands == 3 else gnyq_for(sensor, n_bands)
    return tuple(g.ms[:n_bands]), float(g.pan)


# ----------------------------------------------------------------------------- helpers
def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _amp_dtype(precision: str, device: torch.device) -> Optional[torch.dtype]:
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    try:
        ok = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # noqa: BLE001 - older builds: no bf16 probe, stay in fp32
        ok = False
    return torch.bfloat16 if ok else None


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _refining(cfg: TrainConfig, phase: str, epoch: int) -> bool:
    """Whether the SAM loss and the EMA are on in this (1-based) epoch (``--refine-from``)."""
    if cfg.refine_from <= 0:
        return True
    return phase == "student" and epoch >= cfg.refine_from


def _lr_at(cfg: TrainConfig, epoch: int, max_epochs: int, elapsed: float,
           budget: Optional[float]) -> float:
    prog = epoch / max(max_epochs, 1)
    if budget:
        prog = max(prog, elapsed / budget)
    prog = min(max(prog, 0.0), 1.0)
    f = cfg.lr_floor + (1 - cfg.lr_floor) * 0.5 * (1 + math.cos(math.pi * prog))
    return cfg.lr * f


def _to(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    return x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)


def _forward(model: PSDNet, ms: torch.Tensor, pan: torch.Tensor, gt: Optional[torch.Tensor],
             amp: Optional[torch.dtype], device: torch.device) -> PSDNetOutput:
    with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
        o = model(ms, pan, gt)
    return PSDNetOutput(*(t.float() for t in o))


@torch.inference_mode()
def predict_pair(model: PSDNet, pair: WaldPair, device: torch.device,
                 amp: Optional[torch.dtype] = None) -> np.ndarray:
    """Fuse a whole (validation) pair in one forward pass.

    Returns:
        (C, H, W) normalised float32 prediction ``out3``.
    """
    model.eval()
    ms = _to(torch.from_numpy(pair.ms)[None], device)
    pan = _to(torch.from_numpy(pair.pan)[None], device)
    gt = _to(torch.from_numpy(pair.gt)[None], device) if model.teacher else None
    out = _forward(model, ms, pan, gt, amp, device).out3
    return out[0].float().cpu().numpy()


def _dn_scale(ref: np.ndarray) -> float:
    # Q2n casts to integers: reflectances (Pamplona is rescaled to 0-1) need a DN scale.
    return 10000.0 if float(np.nanmax(np.abs(ref))) <= 2.0 else 1.0


def pair_metrics(fused_norm: np.ndarray, pair: WaldPair) -> dict[str, float]:
    """Reduced-resolution metrics of a normalised prediction, on the radiometric scale."""
    n = pair.normalizer
    ref = n.denorm_ms(pair.gt).astype(np.float64)
    fused = n.denorm_ms(fused_norm).astype(np.float64)
    return reduced_resolution_metrics(fused, ref, pair.ratio, dn_scale=_dn_scale(ref))


def bicubic_norm(pair: WaldPair) -> np.ndarray:
    """Bicubic upsampling of the pair's input MS (normalised), (C, H, W)."""
    t = torch.from_numpy(pair.ms)[None]
    return F.interpolate(t, scale_factor=pair.ratio, mode="bicubic", align_corners=False)[0].numpy()


def evaluate(model: PSDNet, pairs: Sequence[WaldPair], device: torch.device,
             amp: Optional[torch.dtype] = None, classical: bool = False) -> dict[str, Any]:
    """Validation metrics of ``model`` (and bicubic, optionally GSA / MTF-GLP-HPM).

    Returns:
        ``{"scenes": {name: {"psdnet": m, "bicubic": m, ...}}, "score": float}`` where
        ``score`` is the mean over scenes of (SAM/SAM_bic + ERGAS/ERGAS_bic) / 2 (lower is
        better; 1 = bicubic).
    """
    res: dict[str, Any] = {"scenes": {}}
    scores = []
    for p in pairs:
        d = {"psdnet": pair_metrics(predict_pair(model, p, device, amp), p),
             "bicubic": pair_metrics(bicubic_norm(p), p)}
        if classical:
            from psdnet_qgis.core import classical as cl

            from psdnet_qgis.engine.scenes import SCENES

            sensor = SCENES[p.name].sensor if p.name in SCENES else None
            n = p.normalizer
            ms_dn, pan_dn = n.denorm_ms(p.ms), n.denorm_pan(p.pan)
            for name, fn in (("gsa", cl.gsa), ("mtf_glp_hpm", cl.mtf_glp_hpm)):
                d[name] = pair_metrics(n.norm_ms(fn(ms_dn, pan_dn, p.ratio, sensor)), p)
        res["scenes"][p.name] = d
        scores.append(0.5 * (d["psdnet"]["SAM"] / d["bicubic"]["SAM"]
                             + d["psdnet"]["ERGAS"] / d["bicubic"]["ERGAS"]))
    res["score"] = float(np.mean(scores)) if scores else float("nan")
    return res


def _save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- training
def train(cfg: TrainConfig, train_pairs: Sequence[WaldPair], val_pairs: Sequence[WaldPair],
          progress: bool = True, full_pairs: Optional[Sequence[WaldPair]] = None,
          val_full: Optional[list[dict[str, Any]]] = None) -> dict[str, Any]:
    """Train teacher then student; checkpoint every epoch; export the best student.

    Args:
        cfg: settings.
        train_pairs: Wald pairs to sample patches from.
        val_pairs: Wald pairs validated whole after every student epoch.
        progress: show tqdm progress bars.
        full_pairs, val_full: full-resolution training pairs and validation inputs
            (``load_fullres_pairs``, ``fullres_val_inputs``), needed when
            ``cfg.fullres_epochs`` > 0.

    Returns:
        Summary dict (best validation, steps, samples/s, paths).
    """
    from tqdm import tqdm

    if cfg.model not in MODELS:
        raise PSDNetInputError(f"--model: {cfg.model!r} is unknown; use one of {sorted(MODELS)}")
    mdef = MODELS[cfg.model]
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    device = _device(cfg.device)
    amp = _amp_dtype(cfg.precision, device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "last.pt"
    log_path = out / "log.jsonl"
    _seed_all(cfg.seed)

    bands = train_pairs[0].gt.shape[0]
    ratio = train_pairs[0].ratio
    sampler = PatchSampler(train_pairs, cfg.patch, seed=cfg.seed, balance=cfg.balance)
    # The teacher is always the paper's multipatch network (also in the stage-1 ablation,
    # so that ablation changes the student only).
    teacher = PSDNet(bands, ratio, cfg.width, teacher=True).to(device, memory_format=torch.channels_last)
    student = PSDNet(bands, ratio, cfg.width, stage1=cfg.stage1).to(device, memory_format=torch.channels_last)
    opt_t = torch.optim.Adam(teacher.parameters(), lr=cfg.lr)
    opt_s = torch.optim.Adam(student.parameters(), lr=cfg.lr)

    budget = cfg.minutes * 60.0 if cfg.minutes else None
    budgets = {
        "teacher": budget * cfg.teacher_frac if budget else None,
        "student": budget * (1 - cfg.teacher_frac) - cfg.reserve_s if budget else None,
    }
    st: dict[str, Any] = {
        "phase": "teacher", "epoch": {"teacher": 0, "student": 0}, "steps": {"teacher": 0, "student": 0},
        "elapsed": {"teacher": 0.0, "student": 0.0}, "lam": cfg.lam, "best": None,
        "best_epoch": None, "history": [],
    }
    ck = None
    if cfg.resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        teacher.load_state_dict(ck["teacher"])
        student.load_state_dict(ck["student"])
        opt_t.load_state_dict(ck["opt_teacher"])
        opt_s.load_state_dict(ck["opt_student"])
        sampler.load_state_dict(ck["sampler"])
        torch.set_rng_state(ck["torch_rng"])
        st = ck["state"]
        LOG.info("resumed from %s: phase %s, epochs %s", ckpt_path, st["phase"], st["epoch"])
    elif cfg.resume:
        LOG.info("--resume: no checkpoint at %s, starting fresh", ckpt_path)
    if ck is None and cfg.teacher_from:
        # Ablations share one teacher: take it from another run's checkpoint, skip phase 1.
        tk = torch.load(cfg.teacher_from, map_location="cpu", weights_only=False)
        if tk["state"]["phase"] != "student":
            raise PSDNetInputError(f"--teacher-from {cfg.teacher_from}: that run has not finished its teacher")
        teacher.load_state_dict(tk["teacher"])
        st["phase"] = "student"
        for k in ("epoch", "steps", "elapsed"):
            st[k]["teacher"] = tk["state"][k]["teacher"]
        LOG.info("teacher from %s (%d epochs)", cfg.teacher_from, st["epoch"]["teacher"])

    # Exponential moving average of the student weights (validated and exported instead of
    # the raw weights when --ema > 0): it damps the epoch-to-epoch swings that the small
    # batches of a short CPU run cause.
    ema: Optional[PSDNet] = None
    if cfg.ema > 0:
        ema = copy.deepcopy(student)
        if ck is not None and ck.get("ema") is not None:
            ema.load_state_dict(ck["ema"])
        for p_ in ema.parameters():
            p_.requires_grad_(False)

    def save_ckpt() -> None:
        _save_atomic({
            "ema": ema.state_dict() if ema is not None else None,
            "teacher": teacher.state_dict(), "student": student.state_dict(),
            "opt_teacher": opt_t.state_dict(), "opt_student": opt_s.state_dict(),
            "sampler": sampler.state_dict(), "torch_rng": torch.get_rng_state(),
            "state": st, "config": asdict(cfg),
        }, ckpt_path)

    def log_line(d: dict[str, Any]) -> None:
        st["history"].append(d)
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(d) + "\n")

    LOG.info("%s: %d bands, ratio %d, width %d, %d params; device %s, autocast %s; "
             "train scenes %s, val %s", cfg.model, bands, ratio, cfg.width,
             count_parameters(student), device, amp, [p.name for p in train_pairs],
             [p.name for p in val_pairs])

    # ------------------------------------------------------------------ phases
    if cfg.init:
        # Start from exported weights: no teacher / student phases (fine-tuning only).
        from psdnet_qgis.model.weights import load_model

        init_model, _ = load_model(cfg.init)
        student.load_state_dict(init_model.state_dict())
        LOG.info("--init %s: skipping the teacher and student phases", cfg.init)
    for phase in ("teacher", "student"):
        if cfg.init:
            break
        if phase == "teacher" and st["phase"] == "student":
            continue
        st["phase"] = phase
        model, opt = (teacher, opt_t) if phase == "teacher" else (student, opt_s)
        max_epochs = cfg.teacher_epochs if phase == "teacher" else cfg.epochs
        pbudget = budgets[phase]
        if phase == "student":
            teacher.eval()
            for p_ in teacher.parameters():
                p_.requires_grad_(False)
            if st["lam"] is None:
                st["lam"] = _calibrate_lambda(student, teacher, sampler, cfg, device, amp)
        last_epoch_s: Optional[float] = None
        while st["epoch"][phase] < max_epochs:
            if pbudget is not None and last_epoch_s is not None and \
                    st["elapsed"][phase] + 1.05 * last_epoch_s > pbudget:
                break
            ep = st["epoch"][phase]
            lr = _lr_at(cfg, ep, max_epochs, st["elapsed"][phase], pbudget)
            refining = _refining(cfg, phase, ep + 1)
            sam_weight = cfg.sam_weight if refining else 0.0
            ema_on = ema is not None and phase == "student" and refining
            if ema_on and cfg.refine_from > 0 and ep + 1 == cfg.refine_from:
                ema.load_state_dict(student.state_dict())  # the EMA starts here
            for g in opt.param_groups:
                g["lr"] = lr
            model.train()
            t0 = time.time()
            sums = {"loss": 0.0, "l1": 0.0, "distill": 0.0}
            bar = tqdm(range(cfg.steps_per_epoch), desc=f"{phase} {ep + 1}", leave=False,
                       disable=not progress, dynamic_ncols=True)
            for _ in bar:
                ms, pan, gt = (_to(t, device) for t in sampler.sample(cfg.batch))
                if phase == "teacher":
                    o = _forward(teacher, ms, pan, gt, amp, device)
                    loss = distillation_loss(o, None, gt, 0.0)
                    l1, dist = loss, torch.zeros(())
                else:
                    with torch.no_grad():
                        ot = _forward(teacher, ms, pan, gt, amp, device)
                    o = _forward(student, ms, pan, None, amp, device)
                    l1 = distillation_loss(o, None, gt, 0.0)
                    dist = F.mse_loss(o.f2, ot.f2) + F.mse_loss(o.f3, ot.f3)
                    loss = l1 + st["lam"] * dist
                if sam_weight > 0:
                    sam_l = spectral_angle_loss(o.out3, gt, *(t.to(device) for t in sampler.last_stats))
                    loss = loss + sam_weight * sam_l
                    sums["sam"] = sums.get("sam", 0.0) + float(sam_l.detach())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if ema_on:
                    with torch.no_grad():
                        for pe, ps in zip(ema.parameters(), student.parameters()):
                            pe.lerp_(ps, 1.0 - cfg.ema)
                st["steps"][phase] += 1
                sums["loss"] += float(loss.detach())
                sums["l1"] += float(l1.detach())
                sums["distill"] += float(dist.detach()) * (st["lam"] or 0.0)
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}", lr=f"{lr:.1e}")
            bar.close()
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
                tv = time.time()
                # Same autocast as training (speed); `--evaluate` reports fp32 numbers.
                evm = ema if ema_on else student
                ev = evaluate(evm, val_pairs, device, amp=amp)
                rec["val"] = ev
                rec["val_s"] = time.time() - tv
                st["elapsed"][phase] += rec["val_s"]
                last_epoch_s += rec["val_s"]
                if st["best"] is None or ev["score"] < st["best"]["score"]:
                    st["best"] = ev
                    st["best_epoch"] = st["epoch"][phase]
                    _save_atomic({"student": evm.state_dict(), "epoch": st["epoch"][phase],
                                  "ema": ema_on, "val": ev, "config": asdict(cfg)},
                                 out / "best_student.pt")
            log_line(rec)
            msg = (f"{phase} epoch {rec['epoch']} loss {rec['loss']:.4f} (l1 {rec['l1']:.4f}, "
                   f"distill {rec['distill_weighted']:.4f}) lr {lr:.2e} "
                   f"{rec['samples_per_s']:.1f} samples/s")
            if "val" in rec:
                for name, d in rec["val"]["scenes"].items():
                    msg += (f" | {name} SAM {d['psdnet']['SAM']:.3f} (bic {d['bicubic']['SAM']:.3f})"
                            f" ERGAS {d['psdnet']['ERGAS']:.3f} (bic {d['bicubic']['ERGAS']:.3f})"
                            f" Q2n {d['psdnet']['Q2n']:.3f}")
            LOG.info(msg)
            save_ckpt()
        if phase == "teacher":
            st["phase"] = "student"
            save_ckpt()

    # ------------------------------------------------------------------ export
    summary: dict[str, Any] = {
        "best_epoch": st["best_epoch"], "best": st["best"], "steps": st["steps"],
        "elapsed_s": st["elapsed"], "lambda": st["lam"], "checkpoint": str(ckpt_path),
    }
    best_path = out / "best_student.pt"
    if best_path.exists() and not cfg.init:
        student.load_state_dict(torch.load(best_path, map_location="cpu", weights_only=False)["student"])
    if cfg.fullres_epochs > 0:
        if not full_pairs:
            raise PSDNetInputError("fullres_epochs > 0 needs full_pairs (load_fullres_pairs)")
        wald = PatchSampler(train_pairs, cfg.patch, seed=cfg.seed + 1, balance=cfg.balance)
        full = PatchSampler(full_pairs, cfg.fullres_patch, seed=cfg.seed + 2, balance=cfg.balance)
        student, summary["fullres"] = finetune_fullres(
            cfg, student, wald, full, val_pairs, val_full or [], device, amp, out, progress)
    if cfg.export:
        meta = export_meta(cfg, mdef, st, train_pairs, val_pairs, amp, device)
        from psdnet_qgis.model.weights import save_model

        student_cpu = copy.deepcopy(student).to("cpu", memory_format=torch.contiguous_format)
        written = save_model(student_cpu, cfg.export, meta)
        summary["exported"] = {"path": cfg.export, "sha256": written["sha256"]}
        LOG.info("exported %s (sha256 %s)", cfg.export, written["sha256"][:12])
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


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


def _calibrate_lambda(student: PSDNet, teacher: PSDNet, sampler: PatchSampler,
                      cfg: TrainConfig, device: torch.device, amp: Optional[torch.dtype]) -> float:
    """lambda such that lambda * feature MSE = distill_ratio * L1 sum on a few batches.

    Uses a copy of the sampler's generator so training batches are not consumed.
    """
    probe = copy.copy(sampler)
    probe.rng = np.random.default_rng(cfg.seed + 12345)
    l1s, fms = [], []
    with torch.no_grad():
        for _ in range(3):
            ms, pan, gt = (_to(t, device) for t in probe.sample(cfg.batch))
            ot = _forward(teacher, ms, pan, gt, amp, device)
            os_ = _forward(student, ms, pan, None, amp, device)
            l1s.append(float(distillation_loss(os_, None, gt, 0.0)))
            fms.append(float(F.mse_loss(os_.f2, ot.f2) + F.mse_loss(os_.f3, ot.f3)))
    l1, fm = float(np.mean(l1s)), float(np.mean(fms))
    lam = cfg.distill_ratio * l1 / max(fm, 1e-12)
    LOG.info("distillation: measured L1 sum %.4g, feature MSE sum %.4g -> lambda %.4g "
             "(term = %.2f x L1 at the start)", l1, fm, lam, cfg.distill_ratio)
    return lam


def export_meta(cfg: TrainConfig, mdef: ModelDef, st: dict[str, Any],
                train_pairs: Sequence[WaldPair], val_pairs: Sequence[WaldPair],
                amp: Optional[torch.dtype], device: torch.device) -> dict[str, Any]:
    """Metadata of an exported model (JSON sidecar)."""
    scene_info: dict[str, Any] = {}
    try:
        from psdnet_qgis.engine.scenes import SCENES

        for p in list(train_pairs) + list(val_pairs):
            if p.name in SCENES:
                s = SCENES[p.name]
                scene_info[p.name] = {"sensor": s.sensor, "licence": s.licence, "source": s.source,
                                      "bands": list(s.bands)}
    except ImportError:  # pragma: no cover - engine always present in the repo
        pass
    return {
        "name": f"psdnet_{cfg.model}",
        "band_names": list(mdef.band_names),
        "rgb": list(mdef.rgb),
        "sensor": mdef.sensor,
        "normalisation": cfg.norm,
        "version": "1.0",
        "training_scenes": [p.name for p in train_pairs],
        "validation_scenes": [p.name for p in val_pairs],
        "licence": mdef.licence,
        "description": mdef.description,
        "scenes": scene_info,
        "training": {
            "protocol": "Wald reduced resolution, MTF-matched degradation (core.mtf.degrade), "
                        f"per-scene {cfg.norm} statistics of the degraded inputs",
            "config": {k: v for k, v in asdict(cfg).items()
                       if k not in ("out", "export", "resume", "notes")},
            "config_note": "settings of the last invocation; see notes for changes during the run",
            "notes": cfg.notes,
            "steps": st["steps"], "epochs": st["epoch"], "elapsed_s": st["elapsed"],
            "lambda": st["lam"], "best_epoch": st["best_epoch"],
            "fullres_epochs": cfg.fullres_epochs,
            "autocast": str(amp), "device": str(device),
            "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
                        if device.type == "cpu" else torch.cuda.get_device_name(0),
            "torch": torch.__version__,
        },
        "validation": st["best"],
    }


def log_summary(run_dir: str | os.PathLike, every: int = 5) -> str:
    """Markdown table of a run's ``log.jsonl`` (every ``every``-th student epoch + the best).

    Args:
        run_dir: a training run folder.
        every: keep one student epoch in ``every`` (the first, last and best are kept).
    """
    lines = [json.loads(x) for x in Path(run_dir, "log.jsonl").read_text().splitlines() if x.strip()]
    teacher = [d for d in lines if d["phase"] == "teacher"]
    student = [d for d in lines if d["phase"] == "student"]
    out = []
    if teacher:
        t = teacher[-1]
        out.append(f"Teacher: {t['epoch']} epochs, {t['steps']} steps, {t['elapsed_s'] / 60:.1f} min, "
                   f"final L1 sum {t['loss']:.4f}, {np.mean([d['samples_per_s'] for d in teacher]):.2f} "
                   "samples/s.\n")
    if not student:
        return "".join(out)
    best = min(student, key=lambda d: d["val"]["score"] if "val" in d else 1e9)
    scene = next(iter(student[0]["val"]["scenes"]))
    out.append(f"Student (validation on {scene}, bf16 forward during training):\n\n")
    out.append("| epoch | steps | min | lr | L1 sum | lambda*feat | SAM | ERGAS | Q2n | SAM bic | ERGAS bic |\n")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|\n")
    keep = {0, len(student) - 1, student.index(best)} | set(range(every - 1, len(student), every))
    for i, d in enumerate(student):
        if i not in keep:
            continue
        v = d["val"]["scenes"][scene]
        mark = " **best**" if d is best else ""
        out.append(f"| {d['epoch']}{mark} | {d['steps']} | {d['elapsed_s'] / 60:.1f} | {d['lr']:.1e} | "
                   f"{d['l1']:.4f} | {d['distill_weighted']:.4f} | {v['psdnet']['SAM']:.3f} | "
                   f"{v['psdnet']['ERGAS']:.3f} | {v['psdnet']['Q2n']:.3f} | {v['bicubic']['SAM']:.3f} | "
                   f"{v['bicubic']['ERGAS']:.3f} |\n")
    out.append(f"\nMean student throughput {np.mean([d['samples_per_s'] for d in student]):.2f} "
               f"samples/s ({student[-1].get('steps', 0)} steps).\n")
    return "".join(out)


# ----------------------------------------------------------------------------- CLI
def _scale_check(model: PSDNet, pairs: Sequence[WaldPair], device: torch.device) -> dict[str, Any]:
    """Validation metrics when a scene's radiometry is changed by x1000 and by +offset."""
    from psdnet_qgis.core.radiometry import Normalizer

    out: dict[str, Any] = {}
    for p in pairs:
        n = p.normalizer
        res: dict[str, Any] = {}
        # Transform the pair's radiometric inputs and reference by a x + b and renormalise
        # with statistics computed from the transformed inputs (as the engine would); the
        # untransformed case goes through the same path, so any difference is the scale's.
        for tag, a, b in (("original", 1.0, 0.0), ("x1000", 1000.0, 0.0), ("offset+500", 1.0, 500.0)):
            ms_dn, pan_dn, gt_dn = n.denorm_ms(p.ms), n.denorm_pan(p.pan), n.denorm_ms(p.gt)
            n2 = Normalizer.from_arrays(ms_dn * a + b, pan_dn * a + b, method=n.method)
            q = WaldPair(p.name, n2.norm_ms(ms_dn * a + b), n2.norm_pan(pan_dn * a + b),
                         n2.norm_ms(gt_dn * a + b), p.valid, n2, p.ratio)
            fused = n2.denorm_ms(predict_pair(model, q, device))
            ref = gt_dn * a + b
            # Undo the transform before measuring, so the numbers are comparable with
            # "original" (the fused result must be exactly a * fused_orig + b).
            res[tag] = reduced_resolution_metrics((fused - b) / a, (ref - b) / a, p.ratio,
                                                  dn_scale=_dn_scale((ref - b) / a))
        out[p.name] = res
    return out


def fullres_val_inputs(model_name: str, data_dir: str | os.PathLike | None,
                       norm: str = "zscore4") -> list[dict[str, Any]]:
    """The validation scene(s) at full resolution: the largest fully valid window of the
    real inputs, normalised with statistics of those inputs (as the engine does)."""
    from psdnet_qgis.core.radiometry import Normalizer
    from psdnet_qgis.engine.scenes import load_scene, scenes_for

    out = []
    for spec in scenes_for(model_name, "val"):
        sc = load_scene(spec, data_dir)
        r = spec.ratio
        h, w = sc.ms.shape[1:]
        v = sc.ms_valid & sc.pan_valid.reshape(h, r, w, r).all(axis=(1, 3))
        y, x, hh, ww = largest_valid_window(v, 1)
        ms = sc.ms[:, y:y + hh, x:x + ww]
        pan = sc.pan[:, y * r:(y + hh) * r, x * r:(x + ww) * r]
        n = Normalizer.from_arrays(ms, pan, method=norm)
        pair = WaldPair(spec.name, n.norm_ms(ms), n.norm_pan(pan), np.zeros((ms.shape[0],) + pan.shape[1:],
                        np.float32), np.ones(pan.shape[1:], bool), n, r)
        out.append({"spec": spec, "ms": ms, "pan": pan, "pair": pair, "window": [y, x, hh, ww]})
    return out


def full_resolution_eval(model: PSDNet, model_name: str, data_dir: str | os.PathLike | None,
                         device: torch.device, norm: str = "zscore4", classical: bool = True,
                         inputs: Optional[list[dict[str, Any]]] = None) -> dict[str, Any]:
    """No-reference (full-resolution) metrics on the validation scene(s): D_lambda, D_s,
    QNR, HQNR of PSDNet and, with ``classical``, bicubic, GSA and MTF-GLP-HPM."""
    from psdnet_qgis.core import classical as cl
    from psdnet_qgis.core.metrics import full_resolution_metrics

    res: dict[str, Any] = {}
    for v in inputs if inputs is not None else fullres_val_inputs(model_name, data_dir, norm):
        spec, ms, pan, pair = v["spec"], v["ms"], v["pan"], v["pair"]
        r, n = spec.ratio, pair.normalizer
        dn = _dn_scale(ms)
        fused = {"psdnet": n.denorm_ms(predict_pair(model, pair, device))}
        if classical:
            fused["bicubic"] = n.denorm_ms(bicubic_norm(pair))
            fused["gsa"] = cl.gsa(ms, pan, r)
            fused["mtf_glp_hpm"] = cl.mtf_glp_hpm(ms, pan, r, spec.sensor)
        res[spec.name] = {"window_ms_px": v["window"]}
        for k, f in fused.items():
            res[spec.name][k] = full_resolution_metrics(f.astype(np.float64), ms.astype(np.float64),
                                                        pan.astype(np.float64), r, spec.sensor, dn)
    return res


def load_fullres_pairs(model_name: str, data_dir: str | os.PathLike | None,
                       norm: str = "zscore4") -> list[WaldPair]:
    """The training scenes at full resolution for the no-reference fine-tuning stage.

    Each is a :class:`WaldPair` whose ``ms``/``pan`` are the real inputs normalised with
    their own statistics (as the engine does) and whose ``gt`` is a zero placeholder
    (there is no reference); ``valid`` marks PAN pixels where both inputs are valid.
    """
    from psdnet_qgis.core.radiometry import Normalizer
    from psdnet_qgis.engine.scenes import load_scene, scenes_for

    pairs = []
    for spec in scenes_for(model_name, "train"):
        sc = load_scene(spec, data_dir)
        r = spec.ratio
        c, h, w = sc.ms.shape
        valid = np.repeat(np.repeat(sc.ms_valid, r, 0), r, 1) & sc.pan_valid.reshape(h * r, w * r)
        n = Normalizer.from_arrays(sc.ms, sc.pan, sc.ms_valid, sc.pan_valid, method=norm)
        gt = np.broadcast_to(np.zeros((c, 1, 1), np.float32), (c, h * r, w * r))
        pairs.append(WaldPair(spec.name, n.norm_ms(sc.ms), n.norm_pan(sc.pan), gt, valid, n, r))
    return pairs


def finetune_fullres(cfg: TrainConfig, model: PSDNet, wald: PatchSampler, full: PatchSampler,
                     val_pairs: Sequence[WaldPair], val_full: list[dict[str, Any]],
                     device: torch.device, amp: Optional[torch.dtype], out: Path,
                     progress: bool = True) -> tuple[PSDNet, dict[str, Any]]:
    """Full-resolution fine-tuning: ``L = Wald L1 (+ SAM) + a * spectral + b * spatial``.

    ``model`` holds the starting weights. Checkpoints to ``<out>/fullres_last.pt`` every
    epoch (resumed with ``--resume``); logs to ``<out>/log.jsonl`` (phase "fullres").
    Runs a fixed ``cfg.fullres_epochs`` (no selection on the validation scene).

    Returns:
        (the fine-tuned model -- its EMA when ``cfg.ema`` > 0 --, summary dict).
    """
    from tqdm import tqdm

    from psdnet_qgis.core.mtf import gnyq_for
    from psdnet_qgis.engine.scenes import SCENES
    from psdnet_qgis.model.fullres import Degrade, fullres_losses

    opt = torch.optim.Adam(model.parameters(), lr=cfg.fullres_lr)
    ema = copy.deepcopy(model) if cfg.ema > 0 else None
    if ema is not None:
        for p_ in ema.parameters():
            p_.requires_grad_(False)
    # One degradation per training scene (its sensor's MTF gains).
    degr: dict[str, tuple[Degrade, Degrade]] = {}
    for p in full.pairs:
        sensor = SCENES[p.name].sensor if p.name in SCENES else None
        g_ms, g_pan = scene_gains(sensor, p.ms.shape[0])
        degr[p.name] = (Degrade(g_ms, p.ratio).to(device), Degrade([g_pan], p.ratio).to(device))
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
        rec0 = {"phase": "fullres", "epoch": 0,
                "val": evaluate(evm, val_pairs, device, amp=amp),
                "val_full": full_resolution_eval(evm, cfg.model, None, device, classical=False,
                                                 inputs=val_full)}
        hist.append(rec0)
        with open(out / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(rec0) + "\n")
    while epoch < cfg.fullres_epochs:
        prog = epoch / max(cfg.fullres_epochs, 1)
        lr = cfg.fullres_lr * (cfg.lr_floor + (1 - cfg.lr_floor) * 0.5 * (1 + math.cos(math.pi * prog)))
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        t0 = time.time()
        sums = {"l1": 0.0, "spectral": 0.0, "spatial": 0.0}
        bar = tqdm(range(cfg.steps_per_epoch), desc=f"fullres {epoch + 1}", leave=False,
                   disable=not progress, dynamic_ncols=True)
        for _ in bar:
            ms, pan, gt = (_to(t, device) for t in wald.sample(cfg.batch))
            o = _forward(model, ms, pan, None, amp, device)
            l1 = distillation_loss(o, None, gt, 0.0)
            loss = l1
            if cfg.sam_weight > 0:
                loss = loss + cfg.sam_weight * spectral_angle_loss(
                    o.out3, gt, *(t.to(device) for t in wald.last_stats))
            fms, fpan, _ = (_to(t, device) for t in full.sample(cfg.fullres_batch))
            names = full.last_names
            fo = _forward(model, fms, fpan, None, amp, device).out3
            spec = fo.new_zeros(())
            spat = fo.new_zeros(())
            for i, name in enumerate(names):
                dm, dp = degr[name]
                s1, s2 = fullres_losses(fo[i:i + 1], fms[i:i + 1], fpan[i:i + 1], dm, dp, margin)
                spec = spec + s1 / len(names)
                spat = spat + s2 / len(names)
            loss = loss + cfg.fullres_spectral * spec + cfg.fullres_spatial * spat
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                with torch.no_grad():
                    for pe, ps in zip(ema.parameters(), model.parameters()):
                        pe.lerp_(ps, 1.0 - cfg.ema)
            sums["l1"] += float(l1.detach())
            sums["spectral"] += float(spec.detach())
            sums["spatial"] += float(spat.detach())
            bar.set_postfix(l1=f"{float(l1.detach()):.4f}", spec=f"{float(spec.detach()):.4f}",
                            spat=f"{float(spat.detach()):.3f}")
        bar.close()
        epoch += 1
        n = cfg.steps_per_epoch
        rec = {"phase": "fullres", "epoch": epoch, "lr": lr, "epoch_s": time.time() - t0,
               **{k: v / n for k, v in sums.items()}}
        rec["val"] = evaluate(evm, val_pairs, device, amp=amp)
        rec["val_full"] = full_resolution_eval(evm, cfg.model, None, device, classical=False,
                                               inputs=val_full)
        hist.append(rec)
        with open(out / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
        msg = f"fullres epoch {epoch} l1 {rec['l1']:.4f} spectral {rec['spectral']:.4f} spatial {rec['spatial']:.4f}"
        for name, d in rec["val"]["scenes"].items():
            msg += f" | {name} SAM {d['psdnet']['SAM']:.3f} ERGAS {d['psdnet']['ERGAS']:.3f}"
            if name in rec["val_full"]:
                msg += f" HQNR {rec['val_full'][name]['psdnet']['HQNR']:.4f}"
        LOG.info(msg)
        _save_atomic({"model": model.state_dict(), "opt": opt.state_dict(),
                      "ema": ema.state_dict() if ema is not None else None,
                      "wald": wald.state_dict(), "full": full.state_dict(),
                      "torch_rng": torch.get_rng_state(), "epoch": epoch, "history": hist}, ck_path)
    return evm, {"epochs": epoch, "start": hist[0], "end": hist[-1]}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point (see module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m psdnet_qgis.model.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=sorted(MODELS), required=True)
    ap.add_argument("--data", default=None, help="shared data folder (default ../shared/data)")
    ap.add_argument("--out", default=None, help="run folder (default runs/<model>)")
    ap.add_argument("--minutes", type=float, default=None, help="total time budget (teacher + student)")
    ap.add_argument("--epochs", type=int, default=200, help="max student epochs")
    ap.add_argument("--teacher-epochs", type=int, default=9)
    ap.add_argument("--teacher-frac", type=float, default=0.15, help="share of --minutes for the teacher")
    ap.add_argument("--steps-per-epoch", type=int, default=50)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=64, help="gt patch side in pixels (MS px at full res)")
    ap.add_argument("--balance", type=float, default=0.5,
                    help="scene sampling weight = valid area ** balance (0 = equal per scene)")
    ap.add_argument("--width", type=int, default=28)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--lam", type=float, default=None, help="distillation weight (default: calibrated)")
    ap.add_argument("--distill-ratio", type=float, default=0.2)
    ap.add_argument("--sam-weight", type=float, default=0.0,
                    help="weight of a spectral-angle loss on out3 (radiometric scale)")
    ap.add_argument("--ema", type=float, default=0.0,
                    help="EMA decay of the student weights validated/exported (0 = off, e.g. 0.99)")
    ap.add_argument("--refine-from", type=int, default=0, metavar="EPOCH",
                    help="two-phase student: SAM loss and EMA only from this student epoch on "
                         "(the EMA starts there; no SAM loss for the teacher); 0 = from the start")
    ap.add_argument("--norm", choices=("zscore4", "joint4"), default="zscore4",
                    help="input normalisation (core.radiometry): per-band or pooled MS statistics")
    ap.add_argument("--stage1", choices=("multipatch", "whole"), default="multipatch",
                    help="student stage 1 on four sub-patches (paper) or the whole patch (ablation)")
    ap.add_argument("--teacher-from", default=None, metavar="CKPT",
                    help="take the frozen teacher from another run's last.pt (ablations)")
    ap.add_argument("--fullres-epochs", type=int, default=0,
                    help="epochs of full-resolution no-reference fine-tuning after the student")
    ap.add_argument("--fullres-patch", type=int, default=128, help="full-resolution patch side (PAN px)")
    ap.add_argument("--fullres-batch", type=int, default=2)
    ap.add_argument("--fullres-spectral", type=float, default=1.0, help="weight of the spectral term")
    ap.add_argument("--fullres-spatial", type=float, default=0.2, help="weight of the spatial term")
    ap.add_argument("--fullres-lr", type=float, default=1e-4)
    ap.add_argument("--init", default=None, metavar="WEIGHTS",
                    help="start from exported weights and only run the fine-tuning stage")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--export", default=None,
                    help="weights path (default resources/models/psdnet_<model>.pt; 'none' to skip)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--notes", default="", help="free text stored in the exported metadata")
    ap.add_argument("--evaluate", default=None, metavar="WEIGHTS",
                    help="only evaluate these weights on the validation scene(s) and exit")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--summary", default=None, metavar="RUN_DIR",
                    help="print a markdown summary of a run's log.jsonl and exit")
    a = ap.parse_args(argv)
    if a.summary:
        print(log_summary(a.summary))
        return 0

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.evaluate:
        from psdnet_qgis.model.weights import load_model

        model, meta = load_model(a.evaluate)
        norm = str(meta.get("normalisation", "zscore4"))
        _, val_pairs = load_pairs(a.model, a.data, norm)
        dev = _device(a.device)
        model.to(dev, memory_format=torch.channels_last)
        res = evaluate(model, val_pairs, dev, classical=True)
        res["scale_check"] = _scale_check(model, val_pairs, dev)
        res["full_resolution"] = full_resolution_eval(model, a.model, a.data, dev, norm)
        print(json.dumps(res, indent=2))
        return 0
    train_pairs, val_pairs = load_pairs(a.model, a.data, a.norm)
    full_pairs = val_full = None
    if a.fullres_epochs > 0:
        full_pairs = load_fullres_pairs(a.model, a.data, a.norm)
        val_full = fullres_val_inputs(a.model, a.data, a.norm)
    export = a.export or str(REPO_ROOT / "resources" / "models" / f"psdnet_{a.model}.pt")
    # Every option named like a TrainConfig field sets it; out and export get their defaults.
    given = {f.name: getattr(a, f.name) for f in fields(TrainConfig) if hasattr(a, f.name)}
    given.update(out=a.out or f"runs/{a.model}", export=None if export.lower() == "none" else export)
    cfg = TrainConfig(**given)
    summary = train(cfg, train_pairs, val_pairs, progress=not a.no_progress,
                    full_pairs=full_pairs, val_full=val_full)
    print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
