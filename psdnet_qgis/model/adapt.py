"""Scene adaptation: fine-tune a copy of a PSDNet on crops of the scene it is about to fuse.

No reference exists for the user's scene, so the copy learns from the inputs themselves
(after Scarpa et al. 2018 and Ciotola et al. 2022/2023; our own code):

* ``"fullres"``: full-resolution no-reference losses (``model.losses``): spectral L1 of the
  MTF-degraded output against the MS, plus the thresholded local-correlation spatial loss;
* ``"wald"``: reduced-resolution self-supervised pairs: MS and PAN degraded by the ratio
  with the sensor MTF, the network asked to give back the MS;
* ``"both"``: the sum.

What is adapted (``part``): ``"head"`` (the stage-3 output head only: the features under it
are computed once per crop and cached, so a step costs two convolutions and the budget buys
hundreds of steps on a CPU) or ``"all"`` (every weight: a full forward and backward pass
per step).

A guard compares the original and the adapted copy on crops held out from training with
the no-reference HQNR of ``core.metrics`` (Khan's D_lambda and D_s) and keeps the copy only
when it is better there. The adapted parameters are rounded to fp16, the precision
``model.weights.save_model`` stores, so saved adapted weights reproduce the adapted run.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F

from psdnet_qgis.core import metrics, mtf
from psdnet_qgis.core.options import ADAPT_LOSSES, ADAPT_PARTS, AdaptOptions
from psdnet_qgis.core.radiometry import Normalizer
from psdnet_qgis.errors import PSDNetCanceled, PSDNetInputError
from psdnet_qgis.model.losses import Degrade, spatial_loss, spatial_threshold, spectral_loss
from psdnet_qgis.model.predictor import _cpu_threads
from psdnet_qgis.model.psdnet import PSDNet

log = logging.getLogger(__name__)

PARTS = ADAPT_PARTS
LOSSES = ADAPT_LOSSES
WINDOW = 9  # PAN px of the local correlation box (odd, a couple of MS pixels at ratio 4)
MIN_MS = 8  # the network's smallest MS side (PSDNet.MIN_SIDE)


@dataclass(frozen=True)
class AdaptConfig:
    """How to adapt: the budget and the checked :class:`~psdnet_qgis.core.options.AdaptOptions`
    (:meth:`from_options`; the same fields and defaults besides ``seconds``).

    Attributes:
        seconds: time budget of the training steps (crop reading included by the caller).
        part: "head" or "all" (see the module docstring).
        losses: "fullres", "wald" or "both".
        lr: Adam learning rate.
        spatial_weight: weight of the spatial term against the spectral one.
        max_steps: stop after this many steps even with budget left (None: budget only).
    """

    seconds: float
    part: str = ADAPT_PARTS[0]
    losses: str = ADAPT_LOSSES[0]
    lr: float = 1e-3
    spatial_weight: float = 1.0
    max_steps: int | None = None

    @classmethod
    def from_options(cls, seconds: float, options: AdaptOptions) -> AdaptConfig:
        """The config of ``options`` with a budget of ``seconds``: the one conversion of the
        engine's adaptation options."""
        return cls(seconds=float(seconds), **asdict(options))

    def check(self) -> None:
        """PSDNetInputError for an unusable setting."""
        if not self.seconds > 0:
            raise PSDNetInputError(f"Adaptation budget {self.seconds!r} s: give a positive number of seconds.")
        if self.part not in PARTS:
            raise PSDNetInputError(f"Adaptation part {self.part!r}: use one of {', '.join(PARTS)}.")
        if self.losses not in LOSSES:
            raise PSDNetInputError(f"Adaptation losses {self.losses!r}: use one of {', '.join(LOSSES)}.")


@dataclass
class AdaptResult:
    """What an adaptation did (the run report's ``adaptation`` field, ``to_dict()``)."""

    kept: bool
    reason: str
    part: str
    losses: str
    steps: int
    train_crops: int
    held_crops: int
    seconds: float
    max_step_seconds: float
    loss_before: float
    loss_after: float
    metrics_before: dict[str, float] = field(default_factory=dict)
    metrics_after: dict[str, float] = field(default_factory=dict)
    budget_seconds: float = 0.0
    prepare_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON)."""
        return asdict(self)

    def summary(self) -> str:
        """One log line."""
        mb, ma = self.metrics_before.get("HQNR"), self.metrics_after.get("HQNR")
        verdict = "kept the adapted model" if self.kept else "kept the ORIGINAL model"
        return (f"Adaptation ({self.part}, {self.losses}): {self.steps} steps on {self.train_crops} crops "
                f"in {self.seconds:.1f} s; loss {self.loss_before:.5f} -> {self.loss_after:.5f}; "
                f"held-out HQNR ({self.held_crops} crops) {_fmt(mb)} -> {_fmt(ma)}: {verdict} ({self.reason}).")


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


class Batch:
    """The tensors of a set of equal-size crops (normalised): ``ms`` (N, C, h, w), ``pan`` (N, 1, H, W)."""

    def __init__(self, ms: np.ndarray, pan: np.ndarray) -> None:
        self.ms = torch.from_numpy(np.ascontiguousarray(ms, dtype=np.float32))
        self.pan = torch.from_numpy(np.ascontiguousarray(pan, dtype=np.float32))


def _degraded_pair(batch: Batch, dm: Degrade, dp: Degrade) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Wald input (ms_low, pan_low) of a batch, None when the degraded MS is below the network's minimum."""
    h, w = batch.ms.shape[-2:]
    r = dm.ratio
    if h // r < MIN_MS or w // r < MIN_MS:
        return None
    with torch.no_grad():
        return dm(batch.ms), dp(batch.pan)


def adapt_model(model: torch.nn.Module, train: tuple[np.ndarray, np.ndarray],
                held: tuple[np.ndarray, np.ndarray], normalizer: Normalizer, ratio: int,
                gains_ms: Sequence[float], gain_pan: float, config: AdaptConfig, *,
                sensor: str | None = None, is_canceled: Callable[[], bool] = lambda: False,
                progress: Callable[[float], Any] = lambda p: None,
                clock: Callable[[], float] = time.perf_counter,
                started: float | None = None) -> tuple[torch.nn.Module, AdaptResult]:
    """Fine-tune a copy of ``model`` on ``train`` crops; keep it only if ``held`` crops improve.

    Args:
        model: a PSDNet (not modified).
        train, held: ``(ms (N, C, h, w), pan (N, 1, h r, w r))`` normalised crops.
        normalizer: the run's statistics (metrics are computed on the radiometric scale).
        ratio: PAN/MS ratio.
        gains_ms, gain_pan: MTF gains at Nyquist (per MS band; PAN).
        config: :class:`AdaptConfig`.
        sensor: sensor name for ``core.metrics`` (None: its default gains).
        is_canceled: polled before every step; True raises :class:`PSDNetCanceled`.
        progress: fraction 0..1 of the budget spent.
        clock: seconds (tests may replace it).
        started: clock value when the budget started (default: now).

    Returns:
        ``(model to use, AdaptResult)``: the adapted copy, or ``model`` itself when the guard
        rejected the copy.
    """
    config.check()
    t0 = clock() if started is None else started
    dev = next(model.parameters()).device
    if dev.type == "cpu":
        torch.set_num_threads(_cpu_threads())  # the predictor's count (PSDNET_THREADS), set before the first step
    tb, hb = Batch(*train), Batch(*held)
    job = _prepare(model, tb, ratio, gains_ms, gain_pan, config, dev)
    with torch.no_grad():
        loss_before = float(job.loss())
    prep = clock() - t0
    steps, max_step = _run_steps(job, config, t0, clock, is_canceled, progress)
    with torch.no_grad():
        for p in job.params:
            p.copy_(p.half().float())  # saved adapted weights reproduce this run exactly
        loss_after = float(job.loss())
    seconds = clock() - t0
    job.net.requires_grad_(False)

    kept, reason, before, after = _guard(model, job.net, hb, normalizer, ratio, gains_ms, sensor)
    result = AdaptResult(kept=kept, reason=reason, part=config.part, losses=config.losses, steps=steps,
                         train_crops=int(tb.ms.shape[0]), held_crops=int(hb.ms.shape[0]),
                         seconds=round(seconds, 3), max_step_seconds=round(max_step, 4),
                         loss_before=loss_before, loss_after=loss_after, metrics_before=before,
                         metrics_after=after, budget_seconds=float(config.seconds),
                         prepare_seconds=round(prep, 3))
    log.info(result.summary())
    return (job.net if kept else model), result


@dataclass
class _Job:
    """A trainable copy of the model, its optimiser and its loss on the training crops."""

    net: torch.nn.Module
    params: list[torch.nn.Parameter]
    opt: torch.optim.Optimizer
    loss: Callable[[], torch.Tensor]


def _prepare(model: torch.nn.Module, tb: Batch, ratio: int, gains_ms: Sequence[float], gain_pan: float,
             config: AdaptConfig, dev: torch.device) -> _Job:
    """The copy to train (``config.part`` trainable), the loss of ``config.losses``, Adam."""
    dm, dp = Degrade(gains_ms, ratio), Degrade([gain_pan], ratio)
    use_full = config.losses in ("fullres", "both")
    wald = _degraded_pair(tb, dm, dp) if config.losses in ("wald", "both") else None
    if config.losses == "wald" and wald is None:
        raise PSDNetInputError(
            f"Adaptation losses 'wald' need crops of at least {MIN_MS * ratio} MS px; the scene is "
            "too small: use losses 'fullres'.")
    net, params = _trainable_copy(model, config.part, dev)
    margin = max(1, WINDOW // ratio)
    rho_max = spatial_threshold(tb.ms, tb.pan, dp, WINDOW) if use_full else None
    cache = _cache(net, tb, wald) if config.part == "head" else None

    def loss_of() -> torch.Tensor:
        total = torch.zeros(())
        if use_full:
            fused = _forward(net, tb.ms, tb.pan, None if cache is None else cache[0])
            assert rho_max is not None  # computed when use_full
            total = total + spectral_loss(fused, tb.ms, dm, margin) \
                + config.spatial_weight * spatial_loss(fused, tb.pan, rho_max, WINDOW)
        if wald is not None:
            out = _forward(net, wald[0], wald[1], None if cache is None else cache[1])
            total = total + F.l1_loss(out, tb.ms)
        return total

    return _Job(net, params, torch.optim.Adam(params, lr=config.lr), loss_of)


def _trainable_copy(model: torch.nn.Module, part: str, dev: torch.device
                    ) -> tuple[PSDNet, list[torch.nn.Parameter]]:
    """A float32 copy of ``model`` (a PSDNet) on ``dev``, fp16-rounded, with only ``part``'s
    parameters trainable."""
    net = cast(PSDNet, copy.deepcopy(model).float().to(dev).eval())
    with torch.no_grad():
        for p in net.parameters():
            p.requires_grad_(False)
            p.copy_(p.half().float())  # what save_model stores (a no-op for loaded weights)
    params = list(net.head3.parameters()) if part == "head" else list(net.parameters())
    for p in params:
        p.requires_grad_(True)
    return net, params


def _run_steps(job: _Job, config: AdaptConfig, t0: float, clock: Callable[[], float],
               is_canceled: Callable[[], bool], progress: Callable[[float], Any]) -> tuple[int, float]:
    """Adam steps until the budget or ``config.max_steps``: ``(steps, longest step in seconds)``.

    A step starts only when the longest one so far would still end within the budget; the
    first step always runs.
    """
    steps, max_step = 0, 0.0
    while True:
        if is_canceled():
            raise PSDNetCanceled("Cancelled by the user during adaptation; no output was written.")
        now = clock()
        over = steps > 0 and now - t0 + max_step > config.seconds  # the next step would end past it
        if over or (config.max_steps is not None and steps >= config.max_steps):
            break
        job.opt.zero_grad(set_to_none=True)
        loss = job.loss()
        loss.backward()
        job.opt.step()
        steps += 1
        max_step = max(max_step, clock() - now)
        progress(min(1.0, (clock() - t0) / config.seconds))
    return steps, max_step


def _guard(model: torch.nn.Module, net: torch.nn.Module, hb: Batch, normalizer: Normalizer, ratio: int,
           gains_ms: Sequence[float], sensor: str | None
           ) -> tuple[bool, str, dict[str, float], dict[str, float]]:
    """``(keep the adapted net, reason, metrics of model, metrics of net)`` on the held-out crops."""
    before = held_metrics(model, hb, normalizer, ratio, gains_ms, sensor)
    after = held_metrics(net, hb, normalizer, ratio, gains_ms, sensor)
    kept, reason = guard_decision(before, after)
    return kept, reason, before, after


def guard_decision(before: dict[str, float], after: dict[str, float]) -> tuple[bool, str]:
    """Keep the adapted copy when the held-out HQNR improves and its Wald consistency (SAM and
    ERGAS of the fused crop degraded to the MS scale, against the MS) does not get worse.

    HQNR alone let through a copy with a much worse reference SAM (docs/BENCHMARKS.md, "Scene
    adaptation"); the consistency terms are what the spectral loss fits, so a copy that
    worsens them on held-out crops has not learnt the scene.
    """
    if not after["HQNR"] > before["HQNR"]:
        return False, "held-out HQNR did not improve"
    worse = [k.split("_")[0] for k in ("SAM_consistency", "ERGAS_consistency") if after[k] > before[k]]
    if worse:
        return False, f"held-out HQNR improved but the {' and '.join(worse)} consistency got worse"
    return True, "held-out HQNR and consistency improved"


def _cache(net: PSDNet, tb: Batch, wald: tuple[torch.Tensor, torch.Tensor] | None
           ) -> tuple[tuple[torch.Tensor, torch.Tensor] | None, tuple[torch.Tensor, torch.Tensor] | None]:
    """(lms, f3) of the full-resolution crops and of their Wald inputs: the frozen part of
    the network, computed once."""
    with torch.no_grad():
        full = (_lms(tb.ms, net.ratio), net(tb.ms, tb.pan).f3)
        low = None if wald is None else (_lms(wald[0], net.ratio), net(*wald).f3)
    return full, low


def _lms(ms: torch.Tensor, ratio: int) -> torch.Tensor:
    """Bicubic MS on the PAN grid, as ``PSDNet.forward`` forms it."""
    return F.interpolate(ms, scale_factor=ratio, mode="bicubic", align_corners=False)


def _forward(net: PSDNet, ms: torch.Tensor, pan: torch.Tensor,
             cached: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    """Fused output: from the cached features (head only) or the whole network."""
    if cached is not None:
        lms, f3 = cached
        return lms + torch.tanh(net.head3(f3))
    return net(ms, pan).out3


def held_metrics(net: torch.nn.Module, hb: Batch, normalizer: Normalizer, ratio: int,
                 gains_ms: Sequence[float], sensor: str | None) -> dict[str, float]:
    """Mean D_lambda^K, D_s, HQNR of ``net`` over the held-out crops (radiometric scale).

    The formulas of ``core.metrics.d_lambda_khan`` / ``d_s``, with the Q block shrunk to the
    crop when a small scene gives crops under the usual 32 MS px.
    """
    with torch.no_grad():
        fused = net(hb.ms, hb.pan).out3.float().numpy()
    return fused_metrics(fused, hb.ms.numpy(), hb.pan.numpy(), normalizer, ratio, gains_ms, sensor)


def fused_metrics(fused: np.ndarray, ms: np.ndarray, pan: np.ndarray, normalizer: Normalizer, ratio: int,
                  gains_ms: Sequence[float], sensor: str | None) -> dict[str, float]:
    """:func:`held_metrics` of fused crops however they were made (a calibrated run's, say).

    Args:
        fused, ms, pan: (B, C, H, W), (B, C, H/r, W/r), (B, 1, H, W) in the run's normalisation.
        normalizer, ratio, gains_ms, sensor: as for :func:`held_metrics`.
    """
    block = min(metrics.BLOCK, *ms.shape[-2:])
    # Q2n casts to integers: reflectances (<= 2) get the factor engine.assess uses for them
    dn_scale = 10000.0 if float(np.abs(normalizer.denorm_ms(ms[0])).max()) <= 2.0 else 1.0
    dk, ds, sam_c, ergas_c = [], [], [], []
    for f, m, p in zip(fused, ms, pan, strict=True):
        f_dn = normalizer.denorm_ms(f).astype(np.float64)
        m_dn = normalizer.denorm_ms(m).astype(np.float64)
        p_dn = normalizer.denorm_pan(p).astype(np.float64)
        low = mtf.degrade(f_dn, list(gains_ms), ratio)
        dk.append(1.0 - metrics.q2n(low, m_dn, block=block, shift=block, dn_scale=dn_scale))
        ds.append(metrics.d_s(f_dn, m_dn, p_dn, ratio, sensor, block=block))
        sam_c.append(metrics.sam(low, m_dn))
        ergas_c.append(metrics.ergas(low, m_dn, ratio))
    d_k, d_s = float(np.mean(dk)), float(np.mean(ds))
    return {"D_lambda_K": d_k, "D_s": d_s, "HQNR": metrics.qnr_from_distortions(d_k, d_s),
            "SAM_consistency": float(np.mean(sam_c)), "ERGAS_consistency": float(np.mean(ergas_c))}


def wald_metrics(net: torch.nn.Module, pairs: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
                 normalizer: Normalizer, ratio: int) -> dict[str, float]:
    """Reduced-resolution ERGAS and SAM of ``net`` over Wald pairs, pooled over the pairs.

    Args:
        net: a PSDNet.
        pairs: ``(ms_low, pan_low, ref, valid)`` on the radiometric scale: the degraded MS
            (C, h/r, w/r), PAN (1, h, w), the real MS (C, h, w) and its counted pixels (h, w).
        normalizer: the run's statistics.
        ratio: r.
    """
    fused, refs = [], []
    with torch.no_grad():
        for ms_low, pan_low, ref, valid in pairs:
            ms_t = torch.from_numpy(normalizer.norm_ms(ms_low)[None])
            pan_t = torch.from_numpy(normalizer.norm_pan(pan_low)[None])
            out = normalizer.denorm_ms(net(ms_t, pan_t).out3.float().numpy()[0])
            fused.append(out[:, valid])
            refs.append(ref[:, valid])
    f = np.concatenate(fused, axis=1).astype(np.float64)[:, None]
    r = np.concatenate(refs, axis=1).astype(np.float64)[:, None]
    return {"ERGAS_reduced": metrics.ergas(f, r, ratio), "SAM_reduced": metrics.sam(f, r)}


#: Scene-check metrics and whether larger is better.
SCENE_CHECK = {"HQNR": True, "D_lambda_K": False, "D_s": False, "SAM_consistency": False,
               "ERGAS_consistency": False, "ERGAS_reduced": False, "SAM_reduced": False}


def scene_decision(before: dict[str, float], after: dict[str, float]) -> tuple[bool, str]:
    """Keep the adapted copy only when no scene-check metric (:data:`SCENE_CHECK`) got worse."""
    worse = [k for k, up in SCENE_CHECK.items()
             if k in before and k in after and ((after[k] < before[k]) if up else (after[k] > before[k]))]
    if worse:
        return False, f"on windows spread over the whole scene {', '.join(worse)} got worse"
    return True, "no metric got worse on windows spread over the whole scene"
