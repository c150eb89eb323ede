"""The engine's adaptation step: representative crops of the scene, then ``model.adapt``.

``pansharpen(..., adapt_seconds=S)`` runs it between choosing the model and writing the
output, so every entry point (dialog, modeler, console, ``qgis_process``, CLI,
``psdnet:adapt``) adapts through this one path.

Crops are square windows of the MS working grid (with their PAN), laid on an even grid
over the raster so that they spread over the scene; windows with any nodata are dropped;
the remaining ones are ranked by content (PAN gradient energy: the detail the network must
inject) and the best are kept. Every fourth crop down the ranking is held out for the
guard, so the held-out crops cover the same range of content as the training ones.

When adaptation cannot run on the scene or the platform (an MS smaller than one crop, no crop
free of nodata, crops too small for the chosen losses, torch missing: :class:`AdaptationUnavailable`)
``pansharpen`` warns and fuses without it (:func:`adapt_or_skip`, report ``{"skipped": True, ...}``);
``psdnet:adapt``, whose only purpose is the adapted weights, reports it as an input error.

What the step did is an :class:`AdaptReport`; its ``to_dict()`` is the ``adaptation`` of the run
report and of the adapted weights' JSON.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from psdnet_qgis.core.mtf import gnyq_for
from psdnet_qgis.core.options import AdaptOptions
from psdnet_qgis.core.radiometry import Normalizer
from psdnet_qgis.core.wald import degrade_pair
from psdnet_qgis.engine.feedback import Feedback
from psdnet_qgis.engine.raster import RasterInputs
from psdnet_qgis.errors import PSDNetInputError

CROP_MS = 64  # MS px: 256 PAN px at ratio 4, the patch size of lambda-PNN
N_CROPS = 8
HOLD_EVERY = 4
MIN_CROP_MS = 16  # the guard's Q blocks shrink to the crop below core.metrics' 32 px


class AdaptationUnavailable(PSDNetInputError):
    """Adaptation cannot run on this scene or platform (the message names the input and why)."""


@dataclass(frozen=True)
class AdaptReport:
    """What the adaptation step did: ``model.adapt.AdaptResult``'s fields, the crops and gains of
    the scene and the whole-scene check; or, ``skipped``, only why it could not run.

    Attributes:
        kept: the adapted copy is the model of the run.
        reason: why it was kept or not (or why adaptation was skipped).
        steps: training steps (0 when skipped).
        budget_seconds: the budget asked for.
        skipped: adaptation could not run here (:func:`skipped`); the other fields keep their defaults.
        part, losses, train_crops, held_crops, seconds, max_step_seconds, loss_before, loss_after,
            metrics_before, metrics_after, prepare_seconds: as ``model.adapt.AdaptResult``.
        crop_ms: crop side in MS px.
        sensor: sensor name of the MTF gains (None: defaults).
        gains_ms, gain_pan: the MTF gains of the losses.
        note: "" or why the guard measured on a training crop (:func:`select_crops`).
        scene_metrics_before, scene_metrics_after, scene_reason: the whole-scene check
            (:func:`scene_check`) of an adapted copy the held-out crops accepted; None when it did
            not run.
    """

    kept: bool
    reason: str
    steps: int
    budget_seconds: float
    skipped: bool = False
    part: str = ""
    losses: str = ""
    train_crops: int = 0
    held_crops: int = 0
    seconds: float = 0.0
    max_step_seconds: float = 0.0
    loss_before: float = 0.0
    loss_after: float = 0.0
    metrics_before: Mapping[str, float] = field(default_factory=dict)
    metrics_after: Mapping[str, float] = field(default_factory=dict)
    prepare_seconds: float = 0.0
    crop_ms: int = 0
    sensor: str | None = None
    gains_ms: tuple[float, ...] = ()
    gain_pan: float = 0.0
    note: str = ""
    scene_metrics_before: Mapping[str, float] | None = None
    scene_metrics_after: Mapping[str, float] | None = None
    scene_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The plain dict of the run report's and the adapted weights' ``adaptation`` (JSON): the
        ``AdaptResult`` fields, then the crops and gains, then the whole-scene check when it ran;
        a skipped adaptation gives ``{"kept", "skipped", "reason", "steps", "budget_seconds"}``."""
        if self.skipped:
            return {"kept": self.kept, "skipped": True, "reason": self.reason, "steps": self.steps,
                    "budget_seconds": self.budget_seconds}
        out: dict[str, Any] = {
            "kept": self.kept, "reason": self.reason, "part": self.part, "losses": self.losses,
            "steps": self.steps, "train_crops": self.train_crops, "held_crops": self.held_crops,
            "seconds": self.seconds, "max_step_seconds": self.max_step_seconds,
            "loss_before": self.loss_before, "loss_after": self.loss_after,
            "metrics_before": dict(self.metrics_before), "metrics_after": dict(self.metrics_after),
            "budget_seconds": self.budget_seconds, "prepare_seconds": self.prepare_seconds,
            "crop_ms": self.crop_ms, "sensor": self.sensor, "gains_ms": list(self.gains_ms),
            "gain_pan": self.gain_pan, "note": self.note,
        }
        if self.scene_reason is not None:
            out.update(scene_metrics_before=dict(self.scene_metrics_before or {}),
                       scene_metrics_after=dict(self.scene_metrics_after or {}), scene_reason=self.scene_reason)
        return out


def _windows(inputs: RasterInputs, side: int) -> list[tuple[int, int]]:
    """Origins (MS px) of non-overlapping ``side`` windows spread evenly over the grid."""
    ny, nx = inputs.ms_height // side, inputs.ms_width // side
    rows = np.linspace(0, inputs.ms_height - side, max(ny, 1)).round().astype(int)
    cols = np.linspace(0, inputs.ms_width - side, max(nx, 1)).round().astype(int)
    return [(int(r), int(c)) for r in rows for c in cols]


def _detail(pan: np.ndarray) -> float:
    """Content score of a PAN crop: mean squared gradient."""
    p = pan[0].astype(np.float64)
    return float(np.mean(np.diff(p, axis=0) ** 2) + np.mean(np.diff(p, axis=1) ** 2))


def select_crops(inputs: RasterInputs, normalizer: Normalizer, side: int = CROP_MS, n: int = N_CROPS
                 ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], int, str]:
    """Training and held-out crops of the scene, normalised.

    Args:
        inputs: the opened inputs.
        normalizer: the run's global statistics.
        side: crop side in MS px (shrunk to fit the raster, halved until >= 2 windows fit).
        n: crops to keep (training + held out).

    Returns:
        ``((ms, pan) train, (ms, pan) held, side, note)``; ``ms`` (N, C, s, s), ``pan``
        (N, 1, s r, s r); ``note`` says when the held-out crop had to be a training crop.

    Raises:
        AdaptationUnavailable: the scene is smaller than one crop or has no crop free of nodata.
    """
    r = inputs.ratio
    side = min(side, inputs.ms_height, inputs.ms_width)
    while len(_windows(inputs, side)) < 2 and side // 2 >= MIN_CROP_MS:
        side //= 2
    if side < MIN_CROP_MS:
        raise AdaptationUnavailable(
            f"MS input '{inputs.ms_path}' is {inputs.ms_width} x {inputs.ms_height} px: adaptation "
            f"needs at least {MIN_CROP_MS} x {MIN_CROP_MS} MS px; adapt on a larger scene.")
    scored = []
    for row, col in _windows(inputs, side):
        ms, mv = inputs.read_ms(row, col, side, side)
        pan, pv = inputs.read_pan(row * r, col * r, side * r, side * r)
        if mv.all() and pv.all():
            scored.append((_detail(pan), normalizer.norm_ms(ms), normalizer.norm_pan(pan)))
    if not scored:
        raise AdaptationUnavailable(
            f"Inputs '{inputs.pan_path}' / '{inputs.ms_path}': no {side} x {side} MS px window free of "
            "nodata for adaptation; clip the inputs to the valid area to adapt.")
    scored.sort(key=lambda s: -s[0])
    scored = scored[:n]
    held_i = set(range(HOLD_EVERY - 1, len(scored), HOLD_EVERY)) or {len(scored) - 1}
    note = ""
    if len(scored) == 1:
        held_i, note = set(), "one crop fits the scene: the guard is measured on the training crop"
    train = [s for i, s in enumerate(scored) if i not in held_i]
    held = [s for i, s in enumerate(scored) if i in held_i] or train

    def stack(items: list) -> tuple[np.ndarray, np.ndarray]:
        return (np.stack([s[1] for s in items]).astype(np.float32),
                np.stack([s[2] for s in items]).astype(np.float32))

    return stack(train), stack(held), side, note


def adapt_step(inputs: RasterInputs, net: Any, normalizer: Normalizer, seconds: float, fb: Feedback,
               *, sensor: str | None = None, clock: Callable[[], float] = time.perf_counter,
               options: AdaptOptions | None = None, judge: Judge | None = None) -> tuple[Any, AdaptReport]:
    """Adapt ``net`` to the scene within ``seconds`` (crop reading included).

    Args:
        inputs, normalizer: the run's inputs and statistics.
        net: the PSDNet chosen for the run (not modified).
        seconds: budget.
        fb: the run's feedback (progress 0..100 of this step, cancel, log).
        sensor: sensor name for the MTF gains (None: ``core.mtf`` defaults).
        options: part, losses, lr, ... (None: the defaults), checked when made.
        judge: a calibrated run's judge of the whole-scene check (:func:`scene_check`); None: the
            networks are judged alone.

    Returns:
        ``(model to run, its AdaptReport)``.

    Raises:
        AdaptationUnavailable: it cannot run here (scene too small, no crop free of nodata,
            crops too small for the "wald" losses, torch missing).
        PSDNetInputError: an unusable budget.
    """
    try:
        from psdnet_qgis.model.adapt import MIN_MS, AdaptConfig, adapt_model
    except ImportError as exc:  # torch missing or broken
        raise AdaptationUnavailable(
            f"Adaptation needs torch, which cannot be imported ({exc}); install it (README) to adapt.") from None

    cfg = AdaptConfig.from_options(seconds, options or AdaptOptions())
    cfg.check()  # before any pixel is read
    part, losses = cfg.part, cfg.losses
    t0 = clock()
    train, held, side, note = select_crops(inputs, normalizer)
    if losses == "wald" and side // inputs.ratio < MIN_MS:
        raise AdaptationUnavailable(
            f"MS input '{inputs.ms_path}': adaptation losses 'wald' need crops of at least "
            f"{MIN_MS * inputs.ratio} MS px and {side} px fit; use losses 'fullres' or 'both'.")
    gains = gnyq_for(sensor, inputs.bands)
    fb.info(f"Adapting the model to this scene: {train[0].shape[0]} training + {held[0].shape[0]} "
            f"held-out crops of {side} x {side} MS px, {part} weights, {losses} losses, budget {seconds:g} s"
            + (f" ({note})" if note else "") + ".")
    model, result = adapt_model(net, train, held, normalizer, inputs.ratio, gains.ms, gains.pan, cfg,
                                sensor=sensor, is_canceled=fb.is_canceled,
                                progress=lambda f: fb.progress(100.0 * f), clock=clock, started=t0)
    fb.info(result.summary())
    # AdaptResult's fields are AdaptReport's first ones (tests/engine/test_adaptation.py holds it)
    report = AdaptReport(**result.to_dict(), crop_ms=side, sensor=sensor, gains_ms=tuple(gains.ms),
                         gain_pan=gains.pan, note=note)
    if model is not net:  # the held-out crops said yes: ask the whole scene
        keep, reason, before, after = scene_check(inputs, net, model, normalizer, sensor, judge)
        report = dataclasses.replace(report, scene_metrics_before=before, scene_metrics_after=after,
                                     scene_reason=reason)
        if not keep:
            model = net
            report = dataclasses.replace(report, kept=False, reason=reason)
        fb.info(f"Whole-scene check of the adapted model: {reason}: "
                f"{'kept the adapted model' if keep else 'kept the ORIGINAL model'}.")
    return model, report


#: The whole-scene check of an adapted model: up to this many windows spread over the scene...
CHECK_WINDOWS = 12
#: ...of this side (MS px), full resolution and degraded by the ratio (Wald).
CHECK_MS = 64


def check_windows(inputs: RasterInputs) -> list[tuple[int, int, int]]:
    """(row, col, side) of nodata-free windows spread evenly over the whole MS grid (MS px)."""
    r = inputs.ratio
    side = min(CHECK_MS, inputs.ms_height, inputs.ms_width) // r * r
    if side < MIN_CROP_MS:
        return []
    grid = _windows(inputs, side)
    pick = np.unique(np.linspace(0, len(grid) - 1, min(CHECK_WINDOWS, len(grid))).round().astype(int))
    return [(grid[i][0], grid[i][1], side) for i in pick]


#: ``judge(net)`` of a calibrated run (``engine.calibration.check_calibration`` through
#: ``engine.fusion``): the network's calibrated predictor and its out-of-sample reduced-resolution
#: scores, or None when the scene cannot be calibrated.
Judge = Callable[[Any], "tuple[Any, dict[str, float]] | None"]


def scene_check(inputs: RasterInputs, original: Any, adapted: Any, normalizer: Normalizer, sensor: str | None,
                judge: Judge | None = None) -> tuple[bool, str, dict[str, float], dict[str, float]]:
    """Compare the adapted and the original network on windows spread over the whole scene.

    Full resolution: D_lambda^K, D_s, HQNR and the Wald consistency (``model.adapt.held_metrics``);
    reduced resolution: ERGAS and SAM of the scene degraded by the ratio against the real MS
    (``model.adapt.wald_metrics``). The adapted copy is kept only when none gets worse
    (``model.adapt.scene_decision``): the held-out crops of the adaptation come from the same
    few detailed windows as its training crops and do not represent the scene. A scene too small
    for the reduced-resolution part (windows under 8 r MS px) keeps the original model.

    With ``judge`` (a calibrated run) what is compared is what the run writes: each network
    calibrated on the scene, the full-resolution metrics of its calibrated output on the same
    windows and the reduced-resolution ERGAS / SAM of its calibration, scored out of sample.
    Judged alone, a copy can pass and still lower the calibrated result (Pléiades 1B: HQNR 0.9726 ->
    0.9665, docs/TRAINING_LOG.md). When the scene cannot be calibrated, the networks are judged alone.

    Returns:
        ``(keep, reason, metrics of the original, metrics of the adapted copy)``.
    """
    from psdnet_qgis.model.adapt import Batch, fused_metrics, held_metrics, scene_decision, wald_metrics

    r = inputs.ratio
    gains = gnyq_for(sensor, inputs.bands)
    full_ms, full_pan, pairs = [], [], []
    for row, col, side in check_windows(inputs):
        ms, mv = inputs.read_ms(row, col, side, side)
        pan, pv = inputs.read_pan(row * r, col * r, side * r, side * r)
        if not (mv.all() and pv.all()):
            continue
        full_ms.append(normalizer.norm_ms(ms))
        full_pan.append(normalizer.norm_pan(pan))
        if side // r >= 8:  # the network's smallest MS side
            pair = degrade_pair(ms, pan, r, gains.ms, gains.pan, mv, pv)
            if pair.valid.any():
                pairs.append((pair.ms_lr, pair.pan_lr, ms, pair.valid))
    if not full_ms:
        return False, "no nodata-free window to check the adapted model on", {}, {}
    if not pairs:
        # HQNR and the consistency alone let a copy through that raised the reduced-resolution
        # ERGAS by 2.4 % (Rotterdam 2 at reduced resolution, docs/BENCHMARKS.md): unjudged is not kept
        return (False, f"the scene is too small to check the adapted model at reduced resolution "
                       f"(windows of {min(CHECK_MS, inputs.ms_height, inputs.ms_width)} MS px; the check "
                       f"needs {8 * r})", {}, {})
    ms_b, pan_b = np.stack(full_ms).astype(np.float32), np.stack(full_pan).astype(np.float32)
    judged = [judge(net) for net in (original, adapted)] if judge is not None else []
    calibrated = [j for j in judged if j is not None]
    out: list[dict[str, float]] = []
    if len(calibrated) == 2:
        for predictor, reduced in calibrated:
            m = fused_metrics(predictor.predict(ms_b, pan_b), ms_b, pan_b, normalizer, r, gains.ms, sensor)
            m.update(reduced)
            out.append(m)
        keep, reason = scene_decision(*out)
        return keep, f"calibrated as the run, {reason}", out[0], out[1]
    batch = Batch(ms_b, pan_b)
    for net in (original, adapted):
        m = held_metrics(net, batch, normalizer, r, gains.ms, sensor)
        m.update(wald_metrics(net, pairs, normalizer, r))
        out.append(m)
    keep, reason = scene_decision(*out)
    return keep, reason, out[0], out[1]


def adapt_or_skip(inputs: RasterInputs, net: Any, normalizer: Normalizer, seconds: float, fb: Feedback,
                  *, sensor: str | None = None, options: AdaptOptions | None = None, judge: Judge | None = None
                  ) -> tuple[Any, AdaptReport]:
    """:func:`adapt_step`, or, when adaptation cannot run here, a warning and ``net`` unchanged.

    Args:
        inputs, net, normalizer, seconds, fb, sensor, options, judge: as for :func:`adapt_step`
            (``fb`` spans this step).

    Returns:
        ``(model to run, its AdaptReport)``; the report of a skipped adaptation is :func:`skipped`.
    """
    try:
        return adapt_step(inputs, net, normalizer, seconds, fb, sensor=sensor, options=options, judge=judge)
    except AdaptationUnavailable as exc:
        report = skipped(seconds, str(exc), fb)
        return net, report


def skipped(seconds: float, why: str, fb: Feedback) -> AdaptReport:
    """Warn that adaptation is skipped (``why``) and return the report of the run's ``adaptation``.

    Args:
        seconds: the budget that was asked for.
        why: the reason, one sentence naming the input.
        fb: the feedback of the adaptation step (its bar is filled: the tiles follow).
    """
    fb.warning(f"Adaptation skipped: {why} The run fuses without it.")
    fb.progress(100.0)
    return AdaptReport(kept=False, reason=why, steps=0, budget_seconds=float(seconds), skipped=True)
