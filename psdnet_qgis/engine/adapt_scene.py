"""``psdnet:adapt`` / ``python -m psdnet_qgis adapt``: adapt a model to a scene and save it.

The adapted weights (``.pt`` + ``.json`` sidecar, ``model.weights.save_model``) are meant for
other scenes of the same sensor or campaign, through ``MODEL_FILE`` / ``--model``. The
adaptation is the one of ``pansharpen(..., adapt_seconds=S)`` (``engine.adaptation``), on
the same inputs, statistics and crops (``engine.fusion.scene_model``, the start of every run),
so running the saved weights on the same scene reproduces the adapted run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from psdnet_qgis.core.options import AdaptChoice, AdaptOptions
from psdnet_qgis.engine.adaptation import adapt_step
from psdnet_qgis.engine.feedback import Feedback, as_feedback
from psdnet_qgis.engine.fusion import CalibratedJudge, scene_model
from psdnet_qgis.engine.gdalerr import gdal_errors
from psdnet_qgis.engine.raster import open_inputs
from psdnet_qgis.errors import PSDNetInputError

#: metadata of the base model that still describes the adapted one
_KEPT = ("band_names", "rgb", "normalisation", "version", "licence", "training_scenes", "validation_scenes",
         "stage1")


def _check_out(out: str, inputs: tuple[str, str]) -> Path:
    p = Path(out).expanduser().resolve()
    if p.suffix != ".pt":
        raise PSDNetInputError(f"Adapted weights '{out}': give a file name ending in .pt (the .json goes beside it).")
    if str(p) in {str(Path(i).resolve()) for i in inputs}:
        raise PSDNetInputError(f"Adapted weights '{out}' would overwrite an input; choose another file name.")
    if not p.parent.is_dir() or not os.access(p.parent, os.W_OK):
        raise PSDNetInputError(f"Adapted weights '{out}': folder '{p.parent}' does not exist or is not writable.")
    return p


def adapt_scene(pan: str, ms: str, out: str, *, model: Any = "auto", seconds: float = 120.0,
                sensor: str | None = "auto", pan_band: int = 1, feedback: Any = None,
                adapt_options: AdaptChoice = None) -> dict[str, Any]:
    """Adapt ``model`` to the PAN + MS scene within ``seconds`` and write ``out`` (.pt + .json).

    Args:
        pan, ms: the scene (as for ``engine.run.pansharpen``).
        out: weights path ending in ``.pt``.
        model: "auto", a bundled name, a weights path or a PSDNet module.
        seconds: adaptation budget.
        sensor: "auto", "unknown" or a sensor name (MTF gains of the losses).
        pan_band: 1-based PAN band.
        feedback: engine feedback (progress, cancel, log).
        adapt_options: a ``core.options.AdaptOptions`` (part, losses, lr, spatial_weight,
            max_steps; None = its defaults) or a plain dict of those fields, as for ``pansharpen``.

    Returns:
        The metadata written to the ``.json`` (``sha256``, ``base_model``, ``adapted_on``,
        ``sensor``, ``adaptation``: losses, part, budget, steps, metrics before/after).

    Raises:
        PSDNetInputError: bad input, or the guard found the adapted copy no better than the
            model on the held-out crops (then nothing is written: use the model itself).
        PSDNetCanceled: cancelled; nothing is written.
    """
    fb: Feedback = as_feedback(feedback)
    if not seconds or seconds <= 0:
        raise PSDNetInputError(f"Adaptation budget {seconds!r} s: give a positive number of seconds.")
    options = AdaptOptions.of(adapt_options)
    target = _check_out(out, (pan, ms))
    with gdal_errors():
        inputs = open_inputs(pan, ms, pan_band)
        try:
            scene = scene_model(inputs, "psdnet", model, sensor, fb)
            if scene.band_plan is not None:  # the network would need the bands reordered
                order = " ".join(f"-b {b + 1}" for b in scene.band_plan.network)
                raise PSDNetInputError(
                    f"MS input '{ms}' has its bands in another order than model '{scene.name}' "
                    f"({', '.join(scene.info.band_names if scene.info else [])}), by its band descriptions: "
                    f"adaptation needs them in the model's order; write the MS reordered (gdal_translate {order} ...) "
                    "and adapt on that file.")
            # the saved weights will run calibrated (the default): the check judges them so
            judge = CalibratedJudge(inputs, scene, "cpu", None, "fp32", fb)
            adapted, report = adapt_step(inputs, scene.net, scene.normalizer, seconds, fb, sensor=scene.sensor,
                                         options=options, judge=judge)
        finally:
            inputs.close()
    info, name, sensor_name = scene.info, scene.name, scene.sensor
    if not report.kept:
        raise PSDNetInputError(
            f"Adaptation of '{name}' on '{ms}': {report.reason} ({report.steps} steps, "
            f"held-out HQNR {report.metrics_before['HQNR']:.4f} -> {report.metrics_after['HQNR']:.4f}); "
            "no weights were written: use the model itself, or try a longer budget.")
    from psdnet_qgis.model.weights import save_model

    base = info.to_dict() if info is not None else {}  # a module given without metadata: none kept
    new_meta = {k: base[k] for k in _KEPT if base.get(k) is not None}
    new_meta.update(
        name=target.stem, base_model=name, base_sha256=info.sha256 if info is not None else None,
        adapted_on={"pan": str(Path(pan).resolve()), "ms": str(Path(ms).resolve())},
        sensor=sensor_name or "", adaptation=report.to_dict(),
        description=f"{name} adapted to {Path(ms).name} ({report.losses} losses, "
                    f"{report.part} weights, {report.budget_seconds:g} s budget)",
    )
    written = save_model(adapted, target, new_meta)
    fb.info(f"Adapted weights written: {target} (sha256 {written['sha256'][:12]}...).")
    return written
