"""Export of a trained student: the weights file and the metadata of its JSON sidecar."""

from __future__ import annotations

import copy
import os
import platform
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import torch

from psdnet_qgis.model.psdnet import PSDNet
from psdnet_qgis.model.weights import save_model
from psdnet_qgis.training.config import ModelDef, TrainConfig
from psdnet_qgis.training.data import WaldPair
from psdnet_qgis.training.scenes import SCENES


def export_student(student: PSDNet, path: str, meta: dict[str, Any]) -> str:
    """Write ``student`` (a CPU, contiguous copy) with ``meta``; returns the file's SHA-256."""
    student_cpu = copy.deepcopy(student).to("cpu", memory_format=torch.contiguous_format)
    return save_model(student_cpu, path, meta)["sha256"]


def export_meta(cfg: TrainConfig, mdef: ModelDef, st: dict[str, Any],
                train_pairs: Sequence[WaldPair], val_pairs: Sequence[WaldPair],
                amp: torch.dtype | None, device: torch.device) -> dict[str, Any]:
    """Metadata of an exported model (JSON sidecar)."""
    scene_info: dict[str, Any] = {}
    for p in list(train_pairs) + list(val_pairs):
        if p.name in SCENES:
            s = SCENES[p.name]
            scene_info[p.name] = {"sensor": s.sensor, "licence": s.licence, "source": s.source,
                                  "bands": list(s.bands)}
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
