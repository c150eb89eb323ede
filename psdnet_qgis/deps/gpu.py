"""NVIDIA GPU detection through ``nvidia-smi`` (no torch) and the torch wheel index it calls for."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field

from .python import no_window

#: PyTorch's wheel index; the CPU build is the default download (about 200 MB, no GPU needed).
PYTORCH_INDEX = "https://download.pytorch.org/whl"
CPU_INDEX = f"{PYTORCH_INDEX}/cpu"
#: (lowest driver CUDA version, index tag), newest first. A driver runs every toolkit of its
#: major version up to its own minor (CUDA minor-version compatibility), so cu126 covers every
#: 12.x driver from 12.6 and cu128 adds the newest GPUs (Blackwell).
CUDA_TAGS: tuple[tuple[tuple[int, int], str], ...] = (((12, 8), "cu128"), ((12, 6), "cu126"))


@dataclass(frozen=True)
class GpuInfo:
    """What ``nvidia-smi`` reported: GPU names and the driver's highest CUDA version."""

    names: tuple[str, ...] = ()
    cuda_version: tuple[int, int] | None = None
    problem: str = field(default="", compare=False)

    @property
    def present(self) -> bool:
        return bool(self.names)


def parse_gpu_list(text: str) -> tuple[str, ...]:
    """GPU names of ``nvidia-smi -L`` (``GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-...)``)."""
    return tuple(m.group(1).strip() for m in re.finditer(r"^GPU \d+: (.*?)(?: \(UUID: [^)]*\))?\s*$",
                                                         text or "", re.MULTILINE))


def parse_cuda_version(text: str) -> tuple[int, int] | None:
    """The driver's ``CUDA Version: 12.4`` from ``nvidia-smi``'s header; None if absent."""
    m = re.search(r"CUDA Version\s*:\s*(\d+)\.(\d+)", text or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def cuda_tag(cuda_version: tuple[int, int] | None) -> str | None:
    """The wheel index tag (``cu126``) a driver of ``cuda_version`` runs; None when too old/unknown."""
    if cuda_version is None:
        return None
    for lowest, tag in CUDA_TAGS:
        if tuple(cuda_version) >= lowest:
            return tag
    return None


def detect_gpu(timeout: float = 20.0) -> GpuInfo:
    """Ask ``nvidia-smi`` (on PATH) for the GPUs and the driver's CUDA version; never raises."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return GpuInfo(problem="nvidia-smi not found on PATH (no NVIDIA driver)")
    try:
        listing = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=timeout, **no_window())
        header = subprocess.run([exe], capture_output=True, text=True, timeout=timeout, **no_window())
    except (OSError, subprocess.SubprocessError) as err:
        return GpuInfo(problem=f"nvidia-smi failed: {err}")
    names = parse_gpu_list(listing.stdout)
    if not names:
        return GpuInfo(problem=("nvidia-smi lists no GPU: " + (listing.stdout + listing.stderr).strip())[:300])
    return GpuInfo(names=names, cuda_version=parse_cuda_version(header.stdout))
