"""Validation of a model: reduced-resolution metrics on Wald pairs, the radiometric-scale
check, and no-reference (full-resolution) metrics on the real validation inputs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from psdnet_qgis.core.metrics import reduced_resolution_metrics
from psdnet_qgis.model.psdnet import PSDNet
from psdnet_qgis.training.data import WaldPair, fullres_val_inputs
from psdnet_qgis.training.runtime import forward, to_device
from psdnet_qgis.training.scenes import SCENES


@torch.inference_mode()
def predict_pair(model: PSDNet, pair: WaldPair, device: torch.device,
                 amp: torch.dtype | None = None) -> np.ndarray:
    """Fuse a whole (validation) pair in one forward pass.

    Returns:
        (C, H, W) normalised float32 prediction ``out3``.
    """
    model.eval()
    ms = to_device(torch.from_numpy(pair.ms)[None], device)
    pan = to_device(torch.from_numpy(pair.pan)[None], device)
    gt = to_device(torch.from_numpy(pair.gt)[None], device) if model.teacher else None
    out = forward(model, ms, pan, gt, amp, device).out3
    return out[0].float().cpu().numpy()


def dn_scale(ref: np.ndarray) -> float:
    """DN scale for Q2n of a reference on the radiometric scale (10000 for reflectances)."""
    # Q2n casts to integers: reflectances (Pamplona is rescaled to 0-1) need a DN scale.
    return 10000.0 if float(np.nanmax(np.abs(ref))) <= 2.0 else 1.0


def pair_metrics(fused_norm: np.ndarray, pair: WaldPair) -> dict[str, float]:
    """Reduced-resolution metrics of a normalised prediction, on the radiometric scale."""
    n = pair.normalizer
    ref = n.denorm_ms(pair.gt).astype(np.float64)
    fused = n.denorm_ms(fused_norm).astype(np.float64)
    return reduced_resolution_metrics(fused, ref, pair.ratio, dn_scale=dn_scale(ref))


def bicubic_norm(pair: WaldPair) -> np.ndarray:
    """Bicubic upsampling of the pair's input MS (normalised), (C, H, W)."""
    t = torch.from_numpy(pair.ms)[None]
    return F.interpolate(t, scale_factor=pair.ratio, mode="bicubic", align_corners=False)[0].numpy()


def evaluate(model: PSDNet, pairs: Sequence[WaldPair], device: torch.device,
             amp: torch.dtype | None = None, classical: bool = False) -> dict[str, Any]:
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


def scale_check(model: PSDNet, pairs: Sequence[WaldPair], device: torch.device) -> dict[str, Any]:
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
                                                  dn_scale=dn_scale((ref - b) / a))
        out[p.name] = res
    return out


def full_resolution_eval(model: PSDNet, model_name: str, data_dir: str | os.PathLike | None,
                         device: torch.device, norm: str = "zscore4", classical: bool = True,
                         inputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """No-reference (full-resolution) metrics on the validation scene(s): D_lambda, D_s,
    QNR, HQNR of PSDNet and, with ``classical``, bicubic, GSA and MTF-GLP-HPM."""
    from psdnet_qgis.core import classical as cl
    from psdnet_qgis.core.metrics import full_resolution_metrics

    res: dict[str, Any] = {}
    if inputs is None:
        inputs = fullres_val_inputs(model_name, data_dir, norm)
    for v in inputs:
        spec, ms, pan, pair = v["spec"], v["ms"], v["pan"], v["pair"]
        r, n = spec.ratio, pair.normalizer
        dn = dn_scale(ms)
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
