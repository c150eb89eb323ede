"""What the CPU at hand can run: the x86 vector extensions that decide the inference path.

Users' and CI's machines differ: AVX2-only CPUs (most laptops, AMD Zen 2/3), AVX-512 without
bf16 (Intel Skylake-SP to Ice Lake), AVX-512 with bf16 (AMD Zen 4/5, Intel Cooper Lake) and
AMX (Intel Sapphire Rapids and later). oneDNN's bf16 convolutions need AVX-512 BW/VL/DQ (or
AVX-NE-CONVERT) to run at all, and are only fast with native bf16 arithmetic (AVX512-BF16 or
AMX): elsewhere they are emulated. The automatic precision therefore picks bf16 only on a
CPU with native bf16 (:func:`native_bf16`), and an explicit ``precision="bf16"`` is refused
with a clear message where oneDNN cannot run it (:func:`bf16_runnable`).
"""

from __future__ import annotations

import functools
import os
import sys

import torch

import psdnet_qgis.model as _package

#: /proc/cpuinfo flags that give native bf16 arithmetic to oneDNN's convolutions.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "avx_ne_convert")


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of the first processor in /proc/cpuinfo; empty where unknown."""
    if not sys.platform.startswith("linux"):
        return frozenset()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_class() -> str:
    """A short name of the CPU's vector class, for logs and benchmark tables.

    The vector width comes from torch's own CPU dispatch (cpuid), the bf16 / AMX extensions
    from the kernel's flags.
    """
    cap = str(torch.backends.cpu.get_cpu_capability())
    flags = cpu_flags()
    if cap.startswith("AVX512"):
        if "amx_bf16" in flags:
            return "AVX-512 + AMX"
        return "AVX-512 + bf16" if "avx512_bf16" in flags else "AVX-512"
    if cap == "AVX2":
        return "AVX2 (no AVX-512)"
    return cap


def bf16_runnable() -> bool:
    """True when oneDNN can run bf16 convolutions on this CPU at all (native or emulated)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def native_bf16() -> bool:
    """True when bf16 convolutions run natively (AVX512-BF16 / AMX / AVX-NE-CONVERT) here.

    Unknown flags (not Linux) count as no: fp32 is always right, bf16 only sometimes faster.
    """
    return bf16_runnable() and any(f in cpu_flags() for f in NATIVE_BF16_FLAGS)


def bf16_missing_reason() -> str:
    """Why bf16 does not run (natively) here, naming the missing CPU features."""
    if not bf16_runnable():
        return (f"this CPU ({cpu_class()}) cannot run oneDNN bf16 convolutions: they need "
                "AVX-512 BW/VL/DQ or AVX-NE-CONVERT")
    return (f"this CPU ({cpu_class()}) has no native bf16: none of "
            f"{', '.join(NATIVE_BF16_FLAGS)} in its flags")


def _thp_mode() -> str:
    """The kernel's transparent huge page mode (``always``, ``madvise``, ``never``), else ''."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled", encoding="ascii") as fh:
            text = fh.read()
    except OSError:
        return ""
    return text.split("[", 1)[1].split("]", 1)[0] if "[" in text else ""


def huge_pages() -> str:
    """Whether torch's big CPU buffers get transparent huge pages here (``model/__init__``), for
    logs and benchmark tables: "on (THP madvise)", else "off: <why>"."""
    if not sys.platform.startswith("linux"):
        return "off: not Linux"
    mode = _thp_mode()
    if mode == "never" or not mode:
        return "off: the kernel's transparent huge pages are " + (mode or "unavailable")
    if os.environ.get("THP_MEM_ALLOC_ENABLE", "") != "1":
        why = "set to " + os.environ["THP_MEM_ALLOC_ENABLE"] if "THP_MEM_ALLOC_ENABLE" in os.environ else (
            "not set: torch was imported before psdnet_qgis.model")
        return f"off: THP_MEM_ALLOC_ENABLE {why}"
    return f"on (THP {mode}{'' if _package.HUGE_PAGES_REQUESTED else ', set by the user'})"
