"""Arithmetic precision and thread count of a PSDNet run (torch).

The engine asks here which precision "auto" means on the chosen device and how many
threads torch uses, so the device questions live next to
:func:`psdnet_qgis.model.predictor.resolve_device` and never in the engine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Measured:
    """CPU seconds per output MPx of one model in fp32 and bf16 on one CPU class (1 thread).

    Attributes:
        cpu_class: :func:`psdnet_qgis.model.cpu.cpu_class` of the machine.
        model: bundled model name.
        width: the network's feature width.
        fp32, bf16: CPU s / MPx of the engine's fp32 (channels-last) and bf16 paths (the fused
            copy, or bf16 autocast for the narrow networks ``model.fastcpu.worth_fusing`` leaves
            unfused).
        source: where the numbers come from (what was run, which caveats).
    """

    cpu_class: str
    model: str
    width: int
    fp32: float
    bf16: float
    source: str


#: Every fp32-against-bf16 measurement on a CPU with native bf16 (AVX2 CPUs have none: they
#: always run fp32). Add a line when a model is measured on a new CPU class.
MEASUREMENTS: tuple[Measured, ...] = (
    Measured("AVX-512 + bf16", "psdnet_landsat3", 28, 28.2, 14.7,
             "docs/BENCHMARKS.md 'PSDNet-Fast' table: predictor, one 96 MS px tile, 2-core Zen 4; fp32 with "
             "oneDNN and ATen restricted to AVX2 (an upper bound of AVX-512 fp32)"),
    Measured("AVX-512 + bf16", "psdnet_landsat3_fast", 8, 2.87, 2.04,
             "docs/RUNTIMES.md 'bf16 autocast for the width-8 models': engine, 4.2 MPx, 1 thread, 2-core "
             "Zen 5, uncalibrated, worse of two rounds; bf16 fused (channels padded 8 -> 16) was 2.9-3.0, so "
             "the width-8 models run bf16 autocast (before, on a Zen 4: fused 4.1 against fp32 3.5)"),
    Measured("AVX-512 + bf16", "psdnet_vhr4_fast", 8, 2.63, 1.97,
             "same measurement: fp32 2.63-2.74, bf16 autocast 1.96-1.97, bf16 fused 2.54-2.59 CPU s/MPx"),
    Measured("AVX-512 + AMX", "psdnet_vhr4", 28, 15.9, 5.3,
             "docs/RUNTIMES.md section 2: one 144 MS px tile, bf16 fused; fp32 about 3x that"),
)
#: Narrower networks than this default to fp32 on a CPU class where no model of their width was
#: measured: oneDNN's bf16 kernels block channels by 16/32, so a width-8 network pads most of
#: its work away (and fp32 is always right; bf16 only sometimes faster).
BF16_MIN_WIDTH = 16


def precision_choice(device: Any, model: str | None = None, width: int | None = None) -> tuple[str, str]:
    """What precision "auto" means for this model on this device, and why (one log line).

    CUDA: "bf16" where the GPU supports it. CPU: "fp32" without native bf16
    (:func:`psdnet_qgis.model.cpu.native_bf16`: elsewhere oneDNN emulates bf16 or cannot run
    it). With native bf16 the decision is data-driven, per model and CPU class: the faster
    precision of :data:`MEASUREMENTS` for this model on this CPU class; else that of a measured
    model of the same width on this class; else bf16 for networks at least
    :data:`BF16_MIN_WIDTH` wide, fp32 for narrower ones.

    Args:
        device: a ``torch.device`` (or its name).
        model: the bundled model's name (None: unknown, custom module).
        width: the network's feature width (None: unknown).
    """
    import torch

    from psdnet_qgis.model import cpu

    if getattr(device, "type", str(device)) == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return ("bf16" if ok else "fp32"), ("CUDA with bf16" if ok else "CUDA without bf16")
    if not cpu.native_bf16():
        return "fp32", f"{cpu.bf16_missing_reason()}: fp32"
    cls = cpu.cpu_class()
    for m in MEASUREMENTS:
        if m.cpu_class == cls and model is not None and m.model == model:
            best = "bf16" if m.bf16 < m.fp32 else "fp32"
            return best, (f"{best}: measured faster for {model} on {cls} "
                          f"({m.bf16:.1f} bf16 against {m.fp32:.1f} fp32 CPU s/MPx)")
    for m in MEASUREMENTS:
        if m.cpu_class == cls and width is not None and m.width == width:
            best = "bf16" if m.bf16 < m.fp32 else "fp32"
            return best, (f"{best}: measured faster for {m.model} (same width {width}) on {cls} "
                          f"({m.bf16:.1f} bf16 against {m.fp32:.1f} fp32 CPU s/MPx)")
    if width is not None and width < BF16_MIN_WIDTH:
        return "fp32", f"fp32: width {width} not measured on {cls}; narrow networks default to fp32"
    return "bf16", f"bf16: native bf16 on {cls} (not measured for this model)"


def auto_precision(device: Any, model: str | None = None, width: int | None = None) -> str:
    """"bf16" or "fp32": what precision "auto" means for this model on ``device``
    (:func:`precision_choice`, which also says why).

    On the CPU, "bf16" runs the fused bf16 copy of the network (``model/fastcpu.py``: weights
    converted once, oneDNN convolutions with fused PReLU/add, padded channels), faster than
    bf16 autocast and fp32 where the CPU has native bf16 for the full-width models; its output
    differs from fp32 by the bf16 rounding only, well under 1 DN on 11-bit data (measurements:
    docs/TRAINING_LOG.md, docs/RUNTIMES.md). ``lms`` (bicubic) and the outputs stay fp32, so a
    zero-residual model is still exact. Pass ``precision="fp32"`` for reference runs.

    Args:
        device: a ``torch.device`` (or its name).
        model: the bundled model's name (None: unknown).
        width: the network's feature width (None: unknown).
    """
    return precision_choice(device, model, width)[0]


def torch_threads() -> int:
    """Threads torch computes with (``OMP_NUM_THREADS`` or the core count when torch is absent)."""
    try:
        import torch

        return int(torch.get_num_threads())
    except Exception:  # noqa: BLE001 - reporting only
        return int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))
