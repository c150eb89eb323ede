"""Torch plumbing shared by the training loops and the evaluation (device, autocast, I/O).

The device is chosen by ``model.predictor.resolve_device`` (the same names and errors as
inference). The precision is training's own: :func:`autocast_dtype` picks the dtype of
``torch.autocast`` mixed precision (fp32 master weights and optimiser, bf16 forward and
backward where the hardware runs it), which is not what the engine's ``precision`` means
(there "bf16" runs a fused, inference-only bf16 copy of the network, ``model/fastcpu.py``).
On the bundled models' CPU bf16 autocast + channels-last trains about twice as fast as fp32
(docs/TRAINING_LOG.md, "Precision").
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from psdnet_qgis.model.predictor import resolve_device
from psdnet_qgis.model.psdnet import PSDNet, PSDNetOutput

__all__ = ["autocast_dtype", "forward", "resolve_device", "save_atomic", "seed_all", "to_device"]


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The ``torch.autocast`` dtype of a training run, None for plain fp32.

    Args:
        precision: "fp32", "bf16" or "auto" (bf16 where CUDA or oneDNN supports it).
        device: the training device.
    """
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


def seed_all(seed: int) -> None:
    """Seed Python's, numpy's global and torch's generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A (B, C, H, W) batch on ``device`` in channels-last layout (the faster convolutions)."""
    return x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)


def forward(model: PSDNet, ms: torch.Tensor, pan: torch.Tensor, gt: torch.Tensor | None,
            amp: torch.dtype | None, device: torch.device, base: torch.Tensor | None = None) -> PSDNetOutput:
    """``model(ms, pan, gt[, base])`` under autocast ``amp`` (None: fp32); outputs back in fp32."""
    with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
        o = model(ms, pan, gt) if base is None else model(ms, pan, gt, base=base)
    return PSDNetOutput(*(t.float() for t in o))


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file then rename: an interrupted run never leaves half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
