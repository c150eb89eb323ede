"""Batched inference of a PSDNet (or any ``(ms, pan) -> image`` module) on numpy tiles.

The engine hands normalised float32 tiles; this module owns everything torch-specific
about running them: device choice, CPU thread count, channels-last layout,
``inference_mode``, the fused bf16 CPU copy (``model/fastcpu.py``), and the CUDA
out-of-memory back-off: halve the batch and retry; at one tile per batch, split the tile
into 2 x 2 overlapping sub-tiles blended with the engine's half-Hann weights
(``core.tiling``), recursively, down to sub-tiles of :data:`MIN_SPLIT_SIDE` MS px.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from psdnet_qgis.core.options import DEVICES
from psdnet_qgis.core.registry import ModelInfo
from psdnet_qgis.core.tiling import plan_tiles, tile_weights
from psdnet_qgis.errors import PSDNetInputError, PSDNetResourceError
from psdnet_qgis.model.psdnet import PSDNet

logger = logging.getLogger("psdnet_qgis.model")

#: Environment variable fixing the CPU thread count (default: all cores).
ENV_THREADS = "PSDNET_THREADS"
DEFAULT_BATCH = 4
#: Smallest sub-tile side (MS px) the CUDA out-of-memory split goes down to.
MIN_SPLIT_SIDE = 16
_AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _cpu_threads() -> int:
    env = os.environ.get(ENV_THREADS, "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            raise PSDNetInputError(f"{ENV_THREADS}='{env}': give a positive integer thread count.") from None
        if n < 1:
            raise PSDNetInputError(f"{ENV_THREADS}={n}: give a positive integer thread count.")
        return n
    return max(1, os.cpu_count() or 1)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Map "auto" | "cpu" | "cuda" (or "cuda:N") to a torch device.

    Raises:
        PSDNetInputError: CUDA requested but not available, or an unknown name.
    """
    name = str(device or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise PSDNetInputError(
                "Device: CUDA was requested but torch.cuda.is_available() is False (no NVIDIA GPU, "
                "driver, or a CPU-only torch build); choose Auto or CPU."
            )
        return torch.device(name)
    raise PSDNetInputError(f"Device: '{device}' is not one of {', '.join(DEVICES)}; choose Auto, CPU or CUDA.")


def _is_oom(exc: BaseException) -> bool:
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class TorchPredictor:
    """Runs a model on batches of normalised numpy tiles.

    Args:
        model: module with ``forward(ms, pan)`` returning a ``PSDNetOutput`` (``out3``
            is used) or a tensor ``(B, C, H, W)``.
        model_name: the model's name (for the CPU runtime choice and the OpenVINO cache), or
            its :class:`~psdnet_qgis.core.registry.ModelInfo` (``model.weights.load_model``);
            None: a custom module.
        device: "auto" (CUDA when available), "cpu" or "cuda".
        batch_size: tiles per forward pass (None -> 4); halved on CUDA OOM.
        log: optional callback receiving messages (also kept in ``messages`` and
            sent to the ``psdnet_qgis.model`` logger).
        precision: "fp32" (default, reference results), "bf16" or "fp16" (CUDA autocast
            only). On the CPU, "bf16" runs a PSDNet as the fused bf16 copy of
            :func:`psdnet_qgis.model.fastcpu.fuse_for_cpu` (weights converted once, oneDNN
            fused convolutions; about 3x faster than fp32 on CPUs with AMX, outputs differ
            by ~2e-3 mean in normalised units); narrow networks whose padded channels would
            cost more than fusing saves (``fastcpu.worth_fusing``: width 8), other modules, or
            torch builds without oneDNN, use bf16 autocast. On CUDA, "bf16"/"fp16" are autocast.

    Attributes:
        device: the torch device used.
        batch_size: current batch size (may shrink after OOM).
        threads: CPU threads used by torch.
        path: the code path ("fp32 channels-last", "bf16 fused", "bf16 autocast" on the
            CPU; the precision on CUDA).
        device_report: human-readable device, thread/GPU and path line.
        messages: notes about the run (OOM back-off).
    """

    def __init__(
        self,
        model: nn.Module,
        model_name: str | ModelInfo | None = None,
        device: str | torch.device | None = "auto",
        batch_size: int | None = DEFAULT_BATCH,
        log: Callable[[str], Any] | None = None,
        precision: str = "fp32",
    ) -> None:
        #: the model's name (None: unknown, a custom module)
        self.name: str | None = model_name.name if isinstance(model_name, ModelInfo) else model_name
        self.device = resolve_device(device)
        self.batch_size = max(1, int(batch_size or DEFAULT_BATCH))
        self.messages: list[str] = []
        self._log = log
        self.precision = str(precision or "fp32").lower()
        if self.precision not in _AUTOCAST:
            raise PSDNetInputError(f"Precision: '{precision}' is not one of fp32, bf16, fp16; choose fp32.")
        if self.precision == "fp16" and self.device.type != "cuda":
            raise PSDNetInputError("Precision: fp16 needs a CUDA device; choose fp32 or bf16 on the CPU.")
        if self.precision == "bf16" and self.device.type == "cpu":
            from psdnet_qgis.model import cpu

            if not cpu.bf16_runnable():
                raise PSDNetInputError(f"Precision: bf16 is not available: {cpu.bf16_missing_reason()}; "
                                       "choose fp32 or auto.")
        self.threads = _cpu_threads()
        if self.device.type == "cpu":
            torch.set_num_threads(self.threads)
        # Module.to takes memory_format at run time; torch's stubs only list device/dtype
        self.model = model.to(self.device).float().eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        for p in self.model.parameters():
            p.requires_grad_(False)
        #: Module actually run (the fused bf16 copy on the CPU, see ``precision``).
        self.runner: nn.Module = self.model
        self._autocast = _AUTOCAST[self.precision]
        if self.device.type == "cpu" and self.precision == "bf16":
            from psdnet_qgis.model import fastcpu

            if isinstance(self.model, PSDNet) and fastcpu.available() and fastcpu.worth_fusing(self.model.width):
                self.runner = fastcpu.fuse_for_cpu(self.model, torch.bfloat16)
                self._autocast = None
        #: The CPU/GPU code path, named in the log. In fp32 the fused copy is not used: it was
        #: no faster than the channels-last network (docs/BENCHMARKS.md, "PSDNet-Fast").
        if self.device.type != "cpu":
            self.path = f"{self.precision} autocast" if self._autocast is not None else self.precision
        elif self.runner is not self.model:
            self.path = "bf16 fused"
        else:
            self.path = "bf16 autocast" if self._autocast is not None else "fp32 channels-last"
        #: OpenVINO runner of the fp32 CPU path (``model/ovruntime.py``), None: torch runs.
        self._ov: Any = None
        #: Why the CPU runtime is what it is (logged once by the engine).
        self.runtime_reason = ""
        if self.device.type == "cpu" and self._autocast is None and self.runner is self.model:
            self._try_openvino()
        if self.device.type == "cuda":
            idx = self.device.index if self.device.index is not None else torch.cuda.current_device()
            self.device_report = f"cuda:{idx} ({torch.cuda.get_device_name(idx)}), {self.precision}"
        else:
            self.device_report = f"cpu ({self.threads} threads), {self.path}"

    def _try_openvino(self) -> None:
        """Run the fp32 CPU path through OpenVINO where ``model.ovruntime.wanted`` says so."""
        from psdnet_qgis.model import cpu, ovruntime

        use, self.runtime_reason = ovruntime.wanted(cpu.cpu_class(), self.name)
        if not use:
            return
        try:
            self._ov = ovruntime.OpenVINORunner(self.model, self.threads, self.name or "model")
        except Exception as exc:  # noqa: BLE001 - any failure of the optional runtime: torch runs
            self._note(f"OpenVINO could not start ({str(exc).splitlines()[0][:200]}); torch runs.")
            return
        self.path = f"fp32 openvino {self._ov.version}"

    def _note(self, msg: str) -> None:
        self.messages.append(msg)
        logger.info(msg)
        if self._log is not None:
            self._log(msg)

    def _split_tile(self, ms: np.ndarray, pan: np.ndarray) -> np.ndarray:
        """Fuse one tile ``(1, C, h, w)`` as 2 x 2 overlapping sub-tiles blended to one.

        The blend weights sum to exactly 1 (``core.tiling``), as between the engine's
        tiles; each sub-tile that still runs out of memory is split again.
        """
        h, w = ms.shape[-2:]
        r = pan.shape[-1] // w
        side = max(h, w)
        overlap = max(4, min(8, side // 8))
        tile = (side + overlap + 1) // 2
        if min(h, w) < 2 * MIN_SPLIT_SIDE or tile >= side:
            raise PSDNetResourceError(
                f"Device: CUDA ran out of memory even on a {h} x {w} MS px piece of a tile; choose "
                "a smaller tile size or the CPU device."
            )
        self._note(f"CUDA out of memory on a {h} x {w} MS px tile at batch 1; fusing it as "
                   f"{tile} px sub-tiles with {overlap} px blended overlap.")
        out: np.ndarray | None = None
        for t in plan_tiles(h, w, tile, overlap):
            m = ms[:, :, t.row:t.row + t.height, t.col:t.col + t.width]
            p = pan[:, :, t.row * r:(t.row + t.height) * r, t.col * r:(t.col + t.width) * r]
            y = self._forward_unless_oom(m, p)
            if y is None:
                y = self._split_tile(m, p)
            if out is None:
                out = np.zeros((1, y.shape[1], h * r, w * r), np.float32)
            out[:, :, t.row * r:(t.row + t.height) * r, t.col * r:(t.col + t.width) * r] += (
                y * tile_weights(t, r)[None, None])
        assert out is not None  # plan_tiles never returns an empty plan
        return out

    def _forward_unless_oom(self, ms: np.ndarray, pan: np.ndarray) -> np.ndarray | None:
        """:meth:`_forward`, or None (cache emptied) when CUDA runs out of memory; other
        errors are re-raised."""
        try:
            return self._forward(ms, pan)
        except Exception as exc:
            if self.device.type != "cuda" or not _is_oom(exc):
                raise
            torch.cuda.empty_cache()
            return None

    def _forward(self, ms: np.ndarray, pan: np.ndarray) -> np.ndarray:
        if self._ov is not None:
            try:
                return self._ov(ms, pan)
            except Exception as exc:  # noqa: BLE001 - the optional runtime failed: torch from here on
                self._ov = None
                self.path = "fp32 channels-last"
                self.device_report = f"cpu ({self.threads} threads), {self.path}"
                self._note(f"OpenVINO failed on a {ms.shape[-2]} x {ms.shape[-1]} MS px tile "
                           f"({str(exc).splitlines()[0][:200]}); torch runs the remaining tiles.")
        ms_t = torch.from_numpy(ms).to(self.device).contiguous(memory_format=torch.channels_last)
        pan_t = torch.from_numpy(pan).to(self.device).contiguous(memory_format=torch.channels_last)
        dtype = self._autocast
        with torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            # A PSDNet's infer: out3 only, each map released as soon as it is used (less memory).
            out = self.runner.infer(ms_t, pan_t) if isinstance(self.runner, PSDNet) else self.runner(ms_t, pan_t)
        img = getattr(out, "out3", out)
        return img.float().cpu().contiguous().numpy()

    def predict(self, ms: np.ndarray, pan: np.ndarray) -> np.ndarray:
        """Fuse a batch of tiles.

        Args:
            ms: normalised MS ``(B, C, h, w)`` (or a single ``(C, h, w)``).
            pan: normalised PAN ``(B, 1, H, W)`` (or ``(1, H, W)``), ``H = h r``.

        Returns:
            Fused image ``(B, C, H, W)`` float32 (``(C, H, W)`` for a single tile).

        Raises:
            PSDNetInputError: wrong shapes.
            PSDNetResourceError: CUDA out of memory even on a small piece of a tile.
        """
        single = np.ndim(ms) == 3
        ms = np.ascontiguousarray(ms, dtype=np.float32)
        pan = np.ascontiguousarray(pan, dtype=np.float32)
        if single:
            ms, pan = ms[None], pan[None]
        if pan.ndim == 3:
            pan = pan[:, None]
        if ms.ndim != 4 or pan.ndim != 4 or ms.shape[0] != pan.shape[0]:
            raise PSDNetInputError(
                f"TorchPredictor: ms {ms.shape} and pan {pan.shape} must be (B, C, h, w) and (B, 1, H, W) "
                "with the same B."
            )
        results: list[np.ndarray] = []
        i = 0
        with torch.inference_mode():
            while i < ms.shape[0]:
                bs = self.batch_size
                y = self._forward_unless_oom(ms[i:i + bs], pan[i:i + bs])
                if y is None and bs == 1:
                    # One tile is still too big: fuse it in blended sub-tiles.
                    y = self._split_tile(ms[i:i + 1], pan[i:i + 1])
                if y is None:
                    self.batch_size = bs // 2
                    self._note(f"CUDA out of memory at batch {bs}; retrying with batch {self.batch_size}.")
                    continue
                results.append(y)
                i += bs
        out = np.concatenate(results, axis=0)
        return out[0] if single else out
