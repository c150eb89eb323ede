"""Arithmetic precision and thread count of a PSDNet run (torch).

The engine asks here which precision "auto" means on the chosen device and how many
threads torch uses, so the device questions live next to
:func:`psdnet_qgis.model.predictor.resolve_device` and never in the engine.
"""

from __future__ import annotations

import os
from typing import Any


def auto_precision(device: Any) -> str:
    """"bf16" on CPUs with native bf16 (:func:`psdnet_qgis.model.cpu.native_bf16`) or on CUDA with bf16, else "fp32".

    On the CPU, "bf16" runs the fused bf16 copy of the network (``model/fastcpu.py``: weights
    converted once, oneDNN convolutions with fused PReLU/add, padded channels), faster than
    bf16 autocast and fp32 where the CPU has native bf16; its output differs from fp32 by the
    bf16 rounding only, well under 1 DN on 11-bit data (measurements: resources/MODEL_CARD.md).
    ``lms`` (bicubic) and the outputs stay fp32, so a zero-residual model is still exact.
    Pass ``precision="fp32"`` for reference runs.

    Args:
        device: a ``torch.device`` (or its name).
    """
    import torch

    from psdnet_qgis.model import cpu

    if getattr(device, "type", str(device)) == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    # bf16 only where the CPU computes it natively; elsewhere oneDNN emulates it or cannot run it
    return "bf16" if cpu.native_bf16() else "fp32"


def torch_threads() -> int:
    """Threads torch computes with (``OMP_NUM_THREADS`` or the core count when torch is absent)."""
    try:
        import torch

        return int(torch.get_num_threads())
    except Exception:  # noqa: BLE001 - reporting only
        return int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))
