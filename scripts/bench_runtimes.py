"""Inference runtimes of the bundled PSDNets on this CPU: torch eager fp32 / bf16, torch.compile,
ONNX Runtime, OpenVINO (``make bench-speed``'s runtime table; docs/RUNTIMES.md).

One workload: a PAN tile of ``--pan`` px a side (default 1024) and its MS (``pan / 4``, 4 bands),
generated (``tests.rasters.synthetic_scene``: smooth fields plus sharp rectangles), normalised with
the engine's statistics, through one forward pass of the network (its ``out3``). Every (model,
runtime) runs in its own process, single-threaded unless ``--threads``: one untimed warm-up pass
(and, for torch.compile / ONNX / OpenVINO, the export or compilation, reported apart), then
``--repeat`` timed passes; the table gives CPU seconds (process time: every thread of the process)
per output megapixel of the fastest pass, and the largest absolute difference of the output from
torch eager fp32 on the same input, in normalised units (0.25 = one band standard deviation) and
relative to the output's RMS deviation from its mean.

Runtimes (each one skipped, with the reason, where its package is missing or it fails):

* ``eager-fp32``: the engine's path on CPUs without native bf16: channels-last fp32, ``inference_mode``;
* ``eager-bf16``: bf16 autocast (``torch.autocast("cpu", torch.bfloat16)``) of the same module. On a
  CPU without AVX-512 BW/VL/DQ or AVX-NE-CONVERT oneDNN refuses bf16 convolutions, so torch runs
  them with oneDNN disabled (ATen's own kernels, bf16 emulated in fp32 arithmetic); the row says so;
* ``fused-bf16``: the engine's bf16 path for networks of width 16 and more on CPUs with native bf16
  (``model.fastcpu.fuse_for_cpu``: oneDNN fused convolutions, bf16 weights, padded channels);
  not measured elsewhere;
* ``compile`` / ``compile-bf16``: ``torch.compile`` (inductor, CPU C++ code generation; Linux only
  here), the second under bf16 autocast;
* ``ort``: ONNX Runtime (CPU execution provider) on ``torch.onnx.export`` of the network;
* ``openvino`` / ``openvino-bf16``: OpenVINO (CPU plugin, inference precision hint f32 / bf16; on
  a CPU without native bf16 OpenVINO runs the bf16 hint in f32) on the same ONNX file;
* ``ort-int8``: ONNX Runtime on a static int8 (QDQ, per-channel weights) quantisation of the ONNX
  file, calibrated on the input itself (``--int8``; an upper bound on what int8 gives).

Packages that the project does not depend on (onnxruntime, openvino, onnx, onnxscript) can live
outside the venv: ``--extra-path /tmp/ort`` (installed with ``pip install --target /tmp/ort
onnxruntime openvino onnx onnxscript``, numpy pinned to the venv's) is put on ``sys.path`` of the
workers after the venv's own packages.

Usage: ``python scripts/bench_runtimes.py [--models psdnet_vhr4_fast,psdnet_vhr4] [--runtimes ...]
[--pan 1024] [--threads 1] [--extra-path /tmp/ort]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RATIO, BANDS = 4, 4
RUNTIMES = ("eager-fp32", "eager-bf16", "fused-bf16", "compile", "compile-bf16", "ort", "openvino",
            "openvino-bf16", "ort-int8")
DEFAULT_RUNTIMES = ("eager-fp32", "eager-bf16", "fused-bf16", "compile", "ort", "openvino", "openvino-bf16")


def _inputs(pan_px: int):
    """Normalised (ms (1, 4, h, w), pan (1, 1, H, W)) float32 numpy of the generated scene."""
    import numpy as np

    from psdnet_qgis.core.radiometry import Normalizer
    from tests.rasters import synthetic_scene

    pan, ms = synthetic_scene((pan_px // RATIO, pan_px // RATIO), BANDS, RATIO, seed=23)
    pan, ms = (np.asarray(a * 2047.0, np.float32) for a in (pan, ms))
    nz = Normalizer.from_arrays(ms, pan)
    return (np.ascontiguousarray(nz.norm_ms(ms)[None], np.float32),
            np.ascontiguousarray(nz.norm_pan(pan)[None], np.float32))


class _Out3:
    """``module(ms, pan).out3`` as a plain module (what exporters and compilers see)."""

    @staticmethod
    def wrap(net):
        import torch

        class Out3(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.net = net

            def forward(self, ms: torch.Tensor, pan: torch.Tensor) -> torch.Tensor:
                out = self.net(ms, pan)
                return getattr(out, "out3", out)

        return Out3().eval()


def _export_onnx(module, ms, pan, path: Path) -> str:
    """torch.onnx.export of ``module`` at these shapes; returns the exporter used."""
    import torch

    args = (torch.from_numpy(ms), torch.from_numpy(pan))
    errors = []
    for dynamo in (False, True):
        try:
            with torch.inference_mode(False), torch.no_grad():
                torch.onnx.export(module, args, str(path), input_names=["ms", "pan"], output_names=["out"],
                                  opset_version=18, dynamo=dynamo)
            return "dynamo" if dynamo else "torchscript"
        except Exception as exc:  # noqa: BLE001 - try the other exporter, report both
            errors.append(f"{'dynamo' if dynamo else 'torchscript'}: {str(exc).splitlines()[0][:200]}")
    raise RuntimeError("; ".join(errors))


def worker(model_name: str, runtime: str, args: argparse.Namespace) -> dict:
    """One (model, runtime) measurement, in its own process."""
    import psdnet_qgis.model  # noqa: F401, I001  (before torch, as in the engine: huge pages)
    import numpy as np
    import torch

    from psdnet_qgis.model import cpu
    from psdnet_qgis.model.weights import load_model

    torch.set_num_threads(args.threads)
    net, _ = load_model(model_name)
    net = net.float().eval()
    for p in net.parameters():
        p.requires_grad_(False)
    ms, pan = _inputs(args.pan)
    res: dict = {"model": model_name, "runtime": runtime, "pan": args.pan, "threads": args.threads, "note": ""}
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t_prep = time.process_time()
    module = _Out3.wrap(net)

    if runtime == "fused-bf16":
        from psdnet_qgis.model import fastcpu

        if not cpu.native_bf16():
            raise SystemExit(f"the fused bf16 copy runs only with native bf16 ({cpu.bf16_missing_reason()})")
        fused = fastcpu.fuse_for_cpu(net, torch.bfloat16)
        ms_t = torch.from_numpy(ms).contiguous(memory_format=torch.channels_last)
        pan_t = torch.from_numpy(pan).contiguous(memory_format=torch.channels_last)

        def run() -> np.ndarray:
            with torch.inference_mode():
                return fused.infer(ms_t, pan_t).float().numpy()
    elif runtime in ("eager-fp32", "eager-bf16", "compile", "compile-bf16"):
        module = module.to(memory_format=torch.channels_last)
        ms_t = torch.from_numpy(ms).contiguous(memory_format=torch.channels_last)
        pan_t = torch.from_numpy(pan).contiguous(memory_format=torch.channels_last)
        run_mod = module
        mkldnn_on = True
        bf16 = runtime in ("eager-bf16", "compile-bf16")
        if runtime.startswith("compile"):
            run_mod = torch.compile(module, backend="inductor", dynamic=False)
        if bf16:
            if not cpu.bf16_runnable():
                mkldnn_on = False
                res["note"] = f"emulated: oneDNN cannot run bf16 here ({cpu.bf16_missing_reason()}), ATen kernels"
            elif not cpu.native_bf16():
                res["note"] = f"emulated by oneDNN ({cpu.bf16_missing_reason()})"

        def run() -> np.ndarray:
            torch.backends.mkldnn.enabled = mkldnn_on  # (mkldnn.flags() fails in torch 2.13 CPU builds)
            with torch.inference_mode(), torch.autocast(
                    "cpu", dtype=torch.bfloat16, enabled=bf16):
                return run_mod(ms_t, pan_t).float().numpy()
    elif runtime in ("ort", "ort-int8"):
        import onnxruntime as ort

        onnx_path = work / f"{model_name}_{args.pan}.onnx"
        res["note"] = f"onnxruntime {ort.__version__}, exporter " + _export_onnx(module, ms, pan, onnx_path)
        if runtime == "ort-int8":
            from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

            class Reader(CalibrationDataReader):
                def __init__(self) -> None:
                    self.items = iter([{"ms": ms, "pan": pan}])

                def get_next(self):
                    return next(self.items, None)

            q_path = work / f"{model_name}_{args.pan}_int8.onnx"
            quantize_static(str(onnx_path), str(q_path), Reader(), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
            onnx_path = q_path
            vnni = [f for f in ("avx512_vnni", "avx_vnni", "amx_int8") if f in cpu.cpu_flags()]
            res["note"] += (", static int8 QDQ (calibrated on this input; "
                            + (f"the CPU has {', '.join(vnni)})" if vnni else "no VNNI on this CPU)"))
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])

        def run() -> np.ndarray:
            return sess.run(None, {"ms": ms, "pan": pan})[0]
    elif runtime in ("openvino", "openvino-bf16"):
        import openvino as ov

        onnx_path = work / f"{model_name}_{args.pan}.onnx"
        res["note"] = f"openvino {ov.__version__}, exporter " + _export_onnx(module, ms, pan, onnx_path)
        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(onnx_path)), "CPU", {
            "INFERENCE_NUM_THREADS": args.threads,
            "INFERENCE_PRECISION_HINT": "bf16" if runtime == "openvino-bf16" else "f32",
            "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1})
        req = compiled.create_infer_request()

        def run() -> np.ndarray:
            req.infer({"ms": ms, "pan": pan})
            return np.array(req.get_output_tensor(0).data, copy=True)
    else:
        raise SystemExit(f"unknown runtime {runtime}")

    out = run()  # warm-up (compilation happens here for torch.compile)
    res["prep_cpu_s"] = time.process_time() - t_prep
    best_cpu, best_wall = float("inf"), float("inf")
    for _ in range(args.repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        out = run()
        best_cpu = min(best_cpu, time.process_time() - c0)
        best_wall = min(best_wall, time.perf_counter() - t0)
    mpx = (args.pan ** 2) / 1e6
    res.update(cpu_s=best_cpu, wall_s=best_wall, cpu_s_per_mpx=best_cpu / mpx)
    np.save(work / f"out_{model_name}_{runtime}_{args.pan}.npy", np.asarray(out, np.float32))
    return res


def _diff(work: Path, model: str, runtime: str, pan: int) -> tuple[float, float] | None:
    import numpy as np

    ref_p, out_p = (work / f"out_{model}_{r}_{pan}.npy" for r in ("eager-fp32", runtime))
    if not (ref_p.exists() and out_p.exists()):
        return None
    ref, out = np.load(ref_p), np.load(out_p)
    if ref.shape != out.shape:
        return float("nan"), float("nan")
    d = float(np.abs(out - ref).max())
    return d, d / float(np.sqrt(np.mean((ref - ref.mean()) ** 2)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="psdnet_vhr4_fast,psdnet_vhr4")
    ap.add_argument("--runtimes", default=",".join(DEFAULT_RUNTIMES),
                    help=f"comma separated, of {', '.join(RUNTIMES)}")
    ap.add_argument("--int8", action="store_true", help="add ort-int8 (static QDQ) to the runtimes")
    ap.add_argument("--pan", type=int, default=1024, help="PAN tile side in px (MS: pan / 4)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2, help="timed passes (the fastest is reported)")
    ap.add_argument("--extra-path", default=os.environ.get("PSDNET_RUNTIMES_PATH", ""),
                    help="folder of optional packages (onnxruntime, openvino) appended to sys.path")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per (model, runtime) case")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "psdnet_bench_runtimes"))
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.extra_path:
        sys.path.append(args.extra_path)
    if args.worker:
        model, runtime = args.worker.split("@")
        print(json.dumps(worker(model, runtime, args)))
        return 0

    runtimes = [r for r in args.runtimes.split(",") if r] + (["ort-int8"] if args.int8 else [])
    models = [m for m in args.models.split(",") if m]
    rows = []
    for model in models:
        for runtime in runtimes:
            cmd = [sys.executable, __file__, "--worker", f"{model}@{runtime}", "--pan", str(args.pan),
                   "--threads", str(args.threads), "--repeat", str(args.repeat), "--work", args.work]
            if args.extra_path:
                cmd += ["--extra-path", args.extra_path]
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PSDNET_THREADS=str(args.threads))
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
                ok = p.returncode == 0
                tail = (p.stderr.strip().splitlines() or ["?"])[-1][:160]
            except subprocess.TimeoutExpired:
                ok, tail = False, f"over {args.timeout:.0f} s"
            if ok:
                r = json.loads(p.stdout.strip().splitlines()[-1])
            else:
                r = {"model": model, "runtime": runtime, "note": f"not measured: {tail}"}
            rows.append(r)
            print(f"<!-- {json.dumps(r)} -->", file=sys.stderr, flush=True)

    from psdnet_qgis.model import cpu

    work = Path(args.work)
    print(f"CPU: {cpu.cpu_class()}, {os.cpu_count()} logical CPUs; torch {__import__('torch').__version__}; "
          f"{args.threads} thread(s); PAN tile {args.pan} px, MS {args.pan // RATIO} px, {BANDS} bands\n")
    print("| model | runtime | CPU s / MPx | x eager fp32 | max abs diff (normalised) | max diff / output RMS "
          "| prep CPU s | note |")
    print("|---|---|---|---|---|---|---|---|")
    base = {r["model"]: r.get("cpu_s_per_mpx") for r in rows if r["runtime"] == "eager-fp32"}
    for r in rows:
        rate = r.get("cpu_s_per_mpx")
        b = base.get(r["model"])
        d = _diff(work, r["model"], r["runtime"], args.pan) if rate is not None else None
        print(f"| {r['model']} | {r['runtime']} | {rate:.2f} | {b / rate:.2f} | {d[0]:.2e} | {d[1]:.2e} | "
              f"{r['prep_cpu_s']:.1f} | {r.get('note', '')} |" if rate is not None and b and d else
              f"| {r['model']} | {r['runtime']} | - | - | - | - | - | {r.get('note', '')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
