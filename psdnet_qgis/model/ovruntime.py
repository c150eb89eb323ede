"""Optional OpenVINO inference of a PSDNet on the CPU (fp32), opt-in; torch stays reference and default.

OpenVINO beats torch on one large tile, but not on whole engine runs by the project's bar
(>= 1.5x on a CPU class): on the engine's tiles the network is only part of a run and each new
tile shape costs a conversion and a compilation (measurements: docs/RUNTIMES.md, section 1).
So the engine does not pick OpenVINO
by itself (:data:`MEASURED_FASTER` is empty); ``PSDNET_RUNTIME=openvino`` opts in (the log says
``fp32 openvino``), ``PSDNET_RUNTIME=torch`` or an absent package keeps torch.

With it, the predictor converts the network once per tile shape (``ov.convert_model`` of the
module traced at that shape: PSDNet's padding and sub-patch split depend on the shape), keeps
the converted model on disk (:func:`cache_dir`, keyed by a hash of the weights) and falls back
to torch, with a log line, on any failure. No module imports ``openvino`` at import time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

logger = logging.getLogger("psdnet_qgis.model")

#: Environment variable choosing the CPU runtime: "auto" (default), "torch" or "openvino".
ENV_RUNTIME = "PSDNET_RUNTIME"
#: Environment variable of the folder of converted models (default: the user cache folder).
ENV_CACHE = "PSDNET_OV_CACHE"
#: (CPU class, bundled model) pairs on which OpenVINO fp32 was measured >= 1.5x faster than
#: torch for whole engine runs (``engine.run.pansharpen``), outputs within :data:`MAX_ABS_DIFF`.
MEASURED_FASTER: tuple[tuple[str, str], ...] = ()
#: The bound held by the tests: largest absolute difference to torch fp32, normalised units
#: (0.25 = one band standard deviation; measured 3.6e-7 on a 1024 px tile, docs/RUNTIMES.md).
MAX_ABS_DIFF = 1e-4


def available() -> bool:
    """True when the ``openvino`` package can be imported (not imported here)."""
    try:
        return importlib.util.find_spec("openvino") is not None
    except (ImportError, ValueError):
        return False


def wanted(cpu_class: str, model: str | None = None) -> tuple[bool, str]:
    """Whether the predictor should try OpenVINO for this model on this CPU class, and why (a log line)."""
    choice = os.environ.get(ENV_RUNTIME, "auto").strip().lower() or "auto"
    if choice not in ("auto", "torch", "openvino"):
        logger.warning("%s=%r is not auto, torch or openvino: using auto", ENV_RUNTIME, choice)
        choice = "auto"
    if choice == "torch":
        return False, f"{ENV_RUNTIME}=torch"
    if not available():
        return False, "the openvino package is not installed"
    if choice == "openvino":
        return True, f"{ENV_RUNTIME}=openvino"
    if (cpu_class, model) not in MEASURED_FASTER:
        return False, (f"OpenVINO not measured >= 1.5x faster than torch for {model or 'this model'} on "
                       f"{cpu_class} ({ENV_RUNTIME}=openvino opts in)")
    return True, f"OpenVINO measured >= 1.5x faster than torch fp32 for {model} on {cpu_class}"


def cache_dir() -> Path:
    """Folder of converted models: ``PSDNET_OV_CACHE``, else the user's cache folder."""
    env = os.environ.get(ENV_CACHE, "").strip()
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.environ.get("LOCALAPPDATA")
    root = Path(base) if base else Path.home() / ".cache"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        root = Path(tempfile.gettempdir())
    return root / "psdnet_qgis" / "openvino"


def weights_key(model: nn.Module) -> str:
    """Hash of the module's class, parameters and buffers (an adapted copy gets its own key)."""
    h = hashlib.sha256(type(model).__name__.encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().contiguous().cpu().numpy().tobytes())
    for attr in ("bands", "ratio", "width"):
        h.update(f"{attr}={getattr(model, attr, None)}".encode())
    return h.hexdigest()[:16]


class _Out3(nn.Module):
    """``model(ms, pan).out3`` (or the tensor it returns) as a plain module for tracing."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ms: torch.Tensor, pan: torch.Tensor) -> torch.Tensor:
        out = self.model(ms, pan)
        return getattr(out, "out3", out)


class OpenVINORunner:
    """Runs ``model`` through OpenVINO's CPU plugin in fp32, one compiled model per input shape.

    Args:
        model: a PSDNet (or any module ``(ms, pan) -> PSDNetOutput | tensor``), fp32, eval mode.
        threads: CPU threads OpenVINO may use.
        name: the model's name, for file names only.
        folder: where converted models are kept (default :func:`cache_dir`).
    """

    def __init__(self, model: nn.Module, threads: int, name: str = "model", folder: Path | None = None) -> None:
        import openvino as ov

        self._ov = ov
        self.core = ov.Core()
        self.model = model
        self.threads = max(1, int(threads))
        self.folder = Path(folder) if folder is not None else cache_dir()
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(name))[:40] or "model"
        self.stem = f"{safe}-{weights_key(model)}"
        self._compiled: dict[tuple[tuple[int, ...], tuple[int, ...]], Any] = {}
        self.version = ov.__version__.split("-")[0]

    def _compile(self, ms_shape: tuple[int, ...], pan_shape: tuple[int, ...]) -> Any:
        ov = self._ov
        shape_tag = "x".join(str(v) for v in ms_shape) + "_" + "x".join(str(v) for v in pan_shape[2:])
        xml = self.folder / f"{self.stem}-{shape_tag}-ov{self.version}.xml"
        if xml.exists() and xml.with_suffix(".bin").exists():
            ov_model = self.core.read_model(str(xml))
        else:
            example = (torch.zeros(ms_shape), torch.zeros(pan_shape))
            with torch.no_grad():
                ov_model = ov.convert_model(_Out3(self.model).eval(), example_input=example)
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                tmp = xml.with_name(xml.stem + f".tmp{os.getpid()}.xml")
                ov.save_model(ov_model, str(tmp), compress_to_fp16=False)
                os.replace(tmp.with_suffix(".bin"), xml.with_suffix(".bin"))
                os.replace(tmp, xml)
            except OSError as exc:  # a read-only cache only costs the conversion next time
                logger.info("OpenVINO: converted model not cached in %s (%s)", self.folder, exc)
        config = {"INFERENCE_NUM_THREADS": self.threads, "INFERENCE_PRECISION_HINT": "f32",
                  "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        return self.core.compile_model(ov_model, "CPU", config).create_infer_request()

    def __call__(self, ms: np.ndarray, pan: np.ndarray) -> np.ndarray:
        """Fuse normalised float32 ``ms`` (B, C, h, w) and ``pan`` (B, 1, H, W) -> (B, C, H, W)."""
        key = (tuple(ms.shape), tuple(pan.shape))
        req = self._compiled.get(key)
        if req is None:
            req = self._compiled[key] = self._compile(*key)
        req.infer([np.ascontiguousarray(ms, np.float32), np.ascontiguousarray(pan, np.float32)])
        return np.array(req.get_output_tensor(0).data, dtype=np.float32, copy=True)
