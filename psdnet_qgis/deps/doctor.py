"""The diagnostics text: one builder for ``python -m psdnet_qgis doctor``, the plugin's
"About / diagnostics" window and ``psdnet:diagnostics``.

Plain text, one ``key: value`` line per fact, so a user can paste it into a bug report. Never
raises: a fact that cannot be found says why. torch and ``model`` are imported here only, and
only when torch is importable.
"""

from __future__ import annotations

import configparser
import importlib.util
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path

from ..core import registry
from . import gpu as gpu_mod
from .paths import MARKER, is_inside, read_marker
from .python import find_python

PACKAGE_DIR = Path(__file__).resolve().parent.parent
#: x86 flags that decide the CPU inference path (model/cpu.py), listed where torch is missing.
VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile",
                "avx_ne_convert")


def plugin_version() -> str:
    """``version`` of metadata.txt (inside the installed plugin, else the repository's)."""
    for folder in (PACKAGE_DIR, PACKAGE_DIR.parent):
        meta = folder / "metadata.txt"
        if meta.is_file():
            parser = configparser.ConfigParser(interpolation=None)
            try:
                parser.read(meta, encoding="utf-8")
                return parser["general"]["version"]
            except (configparser.Error, KeyError, UnicodeDecodeError) as err:
                return f"unreadable {meta} ({err})"
    return "unknown (no metadata.txt)"


def cpu_vector_flags(cpuinfo: str = "/proc/cpuinfo") -> list[str]:
    """The :data:`VECTOR_FLAGS` the first CPU of ``cpuinfo`` has (empty off Linux)."""
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [f for f in VECTOR_FLAGS if f in have]
    except OSError:
        pass
    return []


def _section_plugin(qgis_version: str | None) -> list[str]:
    return [
        f"PSDNet plugin: {plugin_version()} ({PACKAGE_DIR})",
        f"QGIS: {qgis_version or 'not running inside QGIS (command line)'}",
        f"Python: {platform.python_version()} ({sys.executable}); pip runs {find_python() or 'no Python found'}",
        f"OS: {platform.platform()}",
    ]


def _section_managed(target: Path | None) -> list[str]:
    if target is None:
        return ["Managed folder: unknown"]
    marker = read_marker(target)
    if not marker:
        state = "not installed" if not target.exists() else f"no {MARKER} (incomplete install)"
        return [f"Managed folder: {target} ({state}; on sys.path: {str(target) in sys.path})"]
    return [f"Managed folder: {target} (PyTorch {marker.get('torch_version')}, {marker.get('variant')} "
            f"from {marker.get('index_url')}; on sys.path: {str(target) in sys.path})",
            f"Install log: {marker.get('log')}"]


def _section_torch(target: Path | None) -> tuple[list[str], object | None]:
    if "torch" not in sys.modules and importlib.util.find_spec("torch") is None:
        return ["torch: not importable (run 'Install PyTorch…' in the PSDNet menu, or psdnet:install_pytorch)"], None
    try:
        from .. import model  # noqa: F401, I001  (before torch: its allocator settings)
        import torch
    except (ImportError, OSError) as err:
        return [f"torch: found but does not import: {err}"], None
    where = "managed folder" if target is not None and is_inside(torch.__file__, target) else "elsewhere"
    return [f"torch: {torch.__version__} from {Path(torch.__file__).parent} ({where})",
            f"torch threads: {torch.get_num_threads()}"], torch


def _section_devices(torch: object | None) -> list[str]:
    gpu = gpu_mod.detect_gpu()
    lines = [f"nvidia-smi: {', '.join(gpu.names)} (driver CUDA {gpu.cuda_version})" if gpu.present
             else f"nvidia-smi: {gpu.problem}"]
    if torch is None:
        flags = cpu_vector_flags()
        lines.append(f"CPU: {platform.processor() or platform.machine()}; flags: {', '.join(flags) or 'unknown'}")
        lines.append("Precision: unknown until torch is installed")
        return lines
    lines += _torch_devices()
    return lines


def _torch_devices() -> list[str]:
    import torch

    from ..model import cpu
    from ..model.precision import auto_precision
    from ..model.predictor import resolve_device

    lines = []
    if torch.cuda.is_available():
        lines.append(f"CUDA: build {torch.version.cuda}, device {torch.cuda.get_device_name(0)}")
    else:
        build = torch.version.cuda or "none (CPU-only build)"
        lines.append(f"CUDA: not available (torch CUDA build: {build})")
    device = resolve_device("auto")
    lines.append(f"Device used (auto): {device.type}")
    lines.append(f"CPU: {cpu.cpu_class()} (torch capability {torch.backends.cpu.get_cpu_capability()}; "
                 f"flags: {', '.join(cpu_vector_flags()) or 'unknown'})")
    precision = auto_precision(device)
    if device.type == "cpu":
        path = ("bf16: the fused bf16 copy of the network (model/fastcpu.py)" if precision == "bf16"
                else f"fp32 ({cpu.bf16_missing_reason()})")
    else:
        path = precision
    lines.append(f"Precision (auto): {path}")
    return lines


def _section_models() -> list[str]:
    models = registry.list_models()
    if not models:
        return [f"Bundled models: none in {registry.models_dir()}"]
    lines = [f"Bundled models ({registry.models_dir()}):"]
    for m in models:
        try:
            actual = registry.sha256_file(m.path)
            state = "ok" if actual == m.sha256 else f"MISMATCH (file {actual})"
        except OSError as err:
            state = f"unreadable ({err})"
        lines.append(f"  {m.name}: {m.bands} bands, ratio {m.ratio}, sha256 {m.sha256} {state}")
    return lines


def _guarded(section: Callable[[], list[str]], name: str) -> list[str]:
    try:
        return section()
    except Exception as err:  # noqa: BLE001 - a diagnostics report must never fail
        return [f"{name}: could not be determined ({type(err).__name__}: {err})"]


def diagnostics_text(qgis_version: str | None = None, target: str | os.PathLike | None = None) -> str:
    """The whole report (plugin, QGIS, Python, managed folder, torch, devices, precision, models).

    Args:
        qgis_version: ``Qgis.version()`` from the QGIS glue; None on the command line.
        target: the managed folder (``deps.paths.managed_dir``), to say where torch came from.
    """
    folder = Path(target) if target is not None else None
    lines = _section_plugin(qgis_version) + _guarded(lambda: _section_managed(folder), "Managed folder")
    try:
        torch_lines, torch = _section_torch(folder)
    except Exception as err:  # noqa: BLE001 - a diagnostics report must never fail
        torch_lines, torch = [f"torch: could not be determined ({type(err).__name__}: {err})"], None
    lines += torch_lines
    lines += _guarded(lambda: _section_devices(torch), "Devices")
    lines += _guarded(_section_models, "Bundled models")
    return "\n".join(lines)
