"""GPU checks of the model layer without GDAL or QGIS (``scripts/gpu_session.sh`` runs them).

Three parts, each writing one JSON file (and printing a markdown summary):

* ``env``: torch, CUDA, cuDNN versions, the device name and memory, bf16 support.
* ``agree``: the bundled ``psdnet_vhr4`` and ``psdnet_vhr4_fast`` (``model.weights.load_model``)
  through ``model.predictor.TorchPredictor`` on ``--device`` against the CPU in fp32, on two
  seeded inputs: a real-looking one (a reduced-resolution Wald pair exported by
  ``scripts/export_pairs.py`` when ``--pairs`` has one, else a smooth random scene) and a
  random-normal one. Cases: fp32 with TF32 convolutions off ("fp32-strict"), fp32 as torch
  runs it by default (cuDNN may use TF32: what the engine gets), and bf16 / fp16 autocast.
  Bounds (normalised units, where one band standard deviation is 0.25): max |diff| <= 1e-3
  for fp32-strict; max <= 0.05 and mean <= 5e-3 for TF32 and fp16; max <= 0.1 and mean
  <= 0.01 for bf16 (the CPU's fused bf16 path measures max 0.023, mean 0.002:
  ``model/precision.py``). Each case says ``ok`` or not; the script exits 1 when one fails.
* ``bench``: MP/s of output through the model layer's tiled path on in-memory arrays:
  ``core.tiling.resolve_tiling`` / ``plan_tiles`` as the engine plans a raster of that size
  (tile, overlap, 4 MS px reflection-padded context margin), the tiles' normalisation, the
  predictor, the margin crop, ``denorm_ms`` and the ``tile_weights`` blend into a float32
  output: the engine's ``run_tiles`` minus GDAL reads and writes. Batches: 4 (the engine's
  default, ``model.predictor.DEFAULT_BATCH``) and one sized to GPU memory (peak memory of a
  batch-1 tile measured, 60 % of the free memory; at most 64). The engine batches within one
  tile row (about 19 tiles at 100 MP); here batches run across rows (the same numbers per
  tile). Reported: wall MP/s, the share of time in ``predict`` (GPU + transfers) and the rest
  (host slicing, normalisation and blending). A case stops at ``--case-seconds`` and reports
  the tiles it did (``partial``); each case starts with one untimed warm-up batch.

Usage::

    python scripts/gpu_checks.py env --out OUT/env.json
    python scripts/gpu_checks.py agree --device cuda --pairs build/gpu/pairs --out OUT/agree.json
    python scripts/gpu_checks.py bench --device cuda --sizes 16,100 --out OUT/bench.json
    python scripts/gpu_checks.py bench --device cpu --sizes 0.25 --precisions fp32 --batches 1  # CPU dry run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = ("psdnet_vhr4", "psdnet_vhr4_fast")
#: (max |diff|, mean |diff|) bounds per case, normalised units (module docstring).
BOUNDS = {"fp32-strict": (1e-3, 1e-3), "fp32": (0.05, 5e-3), "fp16": (0.05, 5e-3), "bf16": (0.1, 0.01)}


def _write(path: str | None, obj: dict[str, Any]) -> None:
    text = json.dumps(obj, indent=2, default=str)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n", encoding="utf-8")


def env_info() -> dict[str, Any]:
    """Versions and the device."""
    import torch

    d: dict[str, Any] = {
        "python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__,
        "cuda_build": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "osgeo_importable": _importable("osgeo"), "qgis_importable": _importable("qgis"),
    }
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        free, total = torch.cuda.mem_get_info()
        d.update(device=p.name, capability=f"{p.major}.{p.minor}", total_gib=round(total / 2**30, 1),
                 free_gib=round(free / 2**30, 1), bf16=torch.cuda.is_bf16_supported(),
                 sm_count=p.multi_processor_count)
    return d


def _importable(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


# ----------------------------------------------------------------------------- inputs
def smooth_scene(rng: np.random.Generator, bands: int, h: int, w: int, r: int) -> tuple[np.ndarray, np.ndarray]:
    """A normalised, real-looking (spatially correlated, band-correlated) MS and its PAN.

    Sums of a few upsampled random fields at different scales, so there are edges and
    smooth areas; PAN = band mean at r x the MS resolution plus fine detail.
    """
    H, W = h * r, w * r
    field = np.zeros((H, W), np.float32)
    for s in (64, 16, 4, 1):
        g = rng.standard_normal((-(-H // s), -(-W // s))).astype(np.float32)
        field += np.kron(g, np.ones((s, s), np.float32))[:H, :W] * (s / 64.0) ** 0.5
    pan = 0.5 + 0.2 * field / (field.std() + 1e-6)
    lo = pan.reshape(h, r, w, r).mean(axis=(1, 3))
    ms = np.stack([0.5 + (lo - 0.5) * (0.8 + 0.1 * b) + 0.02 * rng.standard_normal((h, w)).astype(np.float32)
                   for b in range(bands)])
    return ms.astype(np.float32), pan[None].astype(np.float32)


def real_input(pairs: str | None, side: int) -> tuple[str, np.ndarray, np.ndarray] | None:
    """The reduced-resolution inputs of an exported pair (centre crop, ``side`` MS px)."""
    if not pairs or not (Path(pairs) / "manifest.json").is_file():
        return None
    from psdnet_qgis.training.pairs_io import load_pair, read_manifest

    m = read_manifest(pairs)
    name = max(m["pairs"], key=lambda n: np.prod(m["pairs"][n]["shapes"]["ms"]))
    p = load_pair(pairs, name, m)
    c, h, w = p.ms.shape
    s = min(side, h, w)
    y, x = (h - s) // 2, (w - s) // 2
    r = p.ratio
    return f"exported pair {name} (centre {s} MS px)", p.ms[:, y:y + s, x:x + s], \
        p.pan[:, y * r:(y + s) * r, x * r:(x + s) * r]


# ----------------------------------------------------------------------------- agree
def agree(device: str, pairs: str | None, side: int, seed: int) -> dict[str, Any]:
    """CPU fp32 vs ``device`` in every precision, both models, two inputs."""
    import torch

    from psdnet_qgis.model.predictor import TorchPredictor
    from psdnet_qgis.model.weights import load_model

    rng = np.random.default_rng(seed)
    inputs = []
    real = real_input(pairs, side)
    res: dict[str, Any] = {"device": device, "bounds": BOUNDS, "cases": []}
    for name in MODELS:
        model, info = load_model(name)
        b, r = info.bands, info.ratio
        if not inputs:
            inputs.append(real or ("smooth random scene",) + smooth_scene(rng, b, side, side, r))
            inputs.append(("random normal",
                           (0.5 + 0.25 * rng.standard_normal((b, side, side))).astype(np.float32),
                           (0.5 + 0.25 * rng.standard_normal((1, side * r, side * r))).astype(np.float32)))
        cpu = TorchPredictor(model, info, device="cpu", batch_size=1, precision="fp32")
        refs = [cpu.predict(ms, pan) for _, ms, pan in inputs]
        precs = ["fp32-strict", "fp32"]
        if device.startswith("cuda"):
            precs += ["fp16"] + (["bf16"] if torch.cuda.is_bf16_supported() else [])
        for prec in precs:
            tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
            if prec == "fp32-strict":
                torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
            try:
                m2, _ = load_model(name)
                pred = TorchPredictor(m2, info, device=device, batch_size=1,
                                      precision="fp32" if prec.startswith("fp32") else prec)
                for (what, ms, pan), ref in zip(inputs, refs, strict=True):
                    t0 = time.perf_counter()
                    out = pred.predict(ms, pan)
                    dt = time.perf_counter() - t0
                    d = np.abs(out.astype(np.float64) - ref)
                    mx, mean = BOUNDS[prec]
                    res["cases"].append({
                        "model": name, "precision": prec, "input": what, "ms_shape": list(ms.shape),
                        "max_abs": float(d.max()), "mean_abs": float(d.mean()),
                        "ref_std": float(ref.std()), "finite": bool(np.isfinite(out).all()),
                        "seconds": dt, "ok": bool(np.isfinite(out).all() and d.max() <= mx and d.mean() <= mean),
                        "path": pred.path})
            finally:
                torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    res["ok"] = all(c["ok"] for c in res["cases"])
    return res


# ----------------------------------------------------------------------------- bench
class _Inputs:
    """A raw (un-normalised) MS / PAN raster in memory, reflection-padded by the margin."""

    def __init__(self, bands: int, ratio: int, h: int, w: int, margin: int, seed: int) -> None:
        from psdnet_qgis.core.radiometry import Normalizer

        rng = np.random.default_rng(seed)
        # A smooth scene of 1/16 the size tiled 4 x 4 (mirrored, so no seams): fast to make.
        hs, ws = -(-h // 4), -(-w // 4)
        ms_n, pan_n = smooth_scene(rng, bands, hs, ws, ratio)
        ms_n = np.concatenate([ms_n, ms_n[:, ::-1]] * 2, 1)[:, :h]
        ms_n = np.concatenate([ms_n, ms_n[:, :, ::-1]] * 2, 2)[:, :, :w]
        pan_n = np.concatenate([pan_n, pan_n[:, ::-1]] * 2, 1)[:, :h * ratio]
        pan_n = np.concatenate([pan_n, pan_n[:, :, ::-1]] * 2, 2)[:, :, :w * ratio]
        # 11-bit-like DN, as a sensor stores them; the tiles are normalised as the engine does.
        self.ms = np.pad(ms_n * 400 + 300, ((0, 0), (margin, margin), (margin, margin)), mode="reflect")
        m = margin * ratio
        self.pan = np.pad(pan_n * 500 + 400, ((0, 0), (m, m), (m, m)), mode="reflect")
        self.norm = Normalizer.from_arrays(self.ms[:, ::8, ::8], self.pan[:, ::32, ::32])
        self.bands, self.ratio, self.h, self.w, self.margin = bands, ratio, h, w, margin

    def batch(self, tiles: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        r, m = self.ratio, self.margin
        ms = [self.norm.norm_ms(self.ms[:, t.row:t.row + t.height + 2 * m, t.col:t.col + t.width + 2 * m])
              for t in tiles]
        pan = [self.norm.norm_pan(self.pan[:, t.row * r:(t.row + t.height + 2 * m) * r,
                                           t.col * r:(t.col + t.width + 2 * m) * r]) for t in tiles]
        return np.stack(ms), np.stack(pan)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_case(pred: Any, inp: _Inputs, tiles: list[Any], batch: int, limit_s: float,
               device: str, sink: list[np.ndarray] | None = None) -> dict[str, Any]:
    """Run the tiles through ``pred`` in batches of ``batch`` with the engine's blending
    (the blended output is appended to ``sink`` when given)."""
    from psdnet_qgis.core.tiling import tile_weights

    r, mp = inp.ratio, inp.margin * inp.ratio
    out = np.zeros((inp.bands, inp.h * r, inp.w * r), np.float32)
    pred.batch_size = batch
    pred.predict(*inp.batch(tiles[:batch]))  # warm-up (cuDNN algorithm choice, allocator)
    _sync(device)
    cache: dict[Any, np.ndarray] = {}
    t_pred = 0.0
    done = 0
    t0 = time.perf_counter()
    for start in range(0, len(tiles), batch):
        group = tiles[start:start + batch]
        ms, pan = inp.batch(group)
        tp = time.perf_counter()
        y = pred.predict(ms, pan)
        t_pred += time.perf_counter() - tp
        for t, p in zip(group, y, strict=True):
            core = inp.norm.denorm_ms(p[:, mp:mp + t.height * r, mp:mp + t.width * r])
            key = (t.height, t.width, t.top, t.bottom, t.left, t.right)
            if key not in cache:
                cache[key] = tile_weights(t, r)
            core *= cache[key]
            out[:, t.row * r:(t.row + t.height) * r, t.col * r:(t.col + t.width) * r] += core
        done += len(group)
        if time.perf_counter() - t0 > limit_s:
            break
    wall = time.perf_counter() - t0
    if sink is not None:
        sink.append(out)
    mp_done = sum(t.height * t.width for t in tiles[:done]) * r * r / 1e6
    return {"batch": batch, "batch_used": pred.batch_size, "tiles": done, "of_tiles": len(tiles),
            "partial": done < len(tiles), "seconds": wall, "predict_s": t_pred,
            "mp_per_s": mp_done / wall, "predict_mp_per_s": mp_done / max(t_pred, 1e-9),
            "host_share": 1 - t_pred / wall, "notes": list(pred.messages),
            "out_finite": bool(np.isfinite(out[:, :64, :64]).all())}


def memory_batch(pred: Any, inp: _Inputs, tile: Any, device: str, cap: int = 64) -> int:
    """Tiles per batch that fit 60 % of the free GPU memory (peak of one batch-1 tile)."""
    import torch

    if not device.startswith("cuda"):
        return 1
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    pred.batch_size = 1
    pred.predict(*inp.batch([tile]))
    peak = torch.cuda.max_memory_allocated() - base
    free, _ = torch.cuda.mem_get_info()
    return int(max(1, min(cap, 0.6 * free // max(peak, 1))))


def bench(device: str, sizes: list[float], precisions: list[str], batches: list[str],
          models: list[str], limit_s: float, seed: int, out: str | None = None) -> dict[str, Any]:
    """MP/s per model, output size, precision and batch (module docstring); the result is
    rewritten to ``out`` after every case, so a part stopped by its time limit keeps what it did."""
    import torch

    from psdnet_qgis.core.tiling import plan_tiles, resolve_tiling
    from psdnet_qgis.model.predictor import TorchPredictor
    from psdnet_qgis.model.weights import load_model

    res: dict[str, Any] = {"device": device, "cases": [], "cudnn_benchmark": torch.backends.cudnn.benchmark}
    if device.startswith("cuda"):
        res["device_name"] = torch.cuda.get_device_name(0)
    for size in sizes:
        side = int(round((size * 1e6) ** 0.5 / 4)) * 4  # PAN side, square output
        r = 4
        h = w = side // r
        tile, overlap, margin = resolve_tiling(r, "psdnet", (h, w))
        tiles = plan_tiles(h, w, tile, overlap)
        t0 = time.perf_counter()
        inp = _Inputs(4, r, h, w, margin, seed)
        print(f"# {size} MP: PAN {side} px, {len(tiles)} tiles of {tile} MS px (overlap {overlap}, "
              f"margin {margin}); inputs made in {time.perf_counter() - t0:.1f} s", flush=True)
        for name in models:
            for prec in precisions:
                model, info = load_model(name)
                pred = TorchPredictor(model, info, device=device, batch_size=1, precision=prec)
                for bname in batches:
                    b = memory_batch(pred, inp, tiles[0], device) if bname == "mem" else int(bname)
                    c = bench_case(pred, inp, tiles, b, limit_s, device)
                    c.update(model=name, size_mp=side * side / 1e6, precision=prec, batch_rule=bname,
                             tile=tile, overlap=overlap, margin=margin, path=pred.path)
                    if device.startswith("cuda"):
                        c["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
                        torch.cuda.reset_peak_memory_stats()
                    res["cases"].append(c)
                    _write(out, res)
                    print(f"{name:17s} {c['size_mp']:6.1f} MP {prec:5s} batch {b:3d}: "
                          f"{c['mp_per_s']:8.2f} MP/s (predict {c['predict_mp_per_s']:8.2f}, host "
                          f"{100 * c['host_share']:.0f} %){' partial' if c['partial'] else ''}", flush=True)
                del pred, model
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()
        del inp
    return res


def markdown(kind: str, res: dict[str, Any]) -> str:
    """A short markdown table of a result."""
    if kind == "env":
        return "\n".join(f"- {k}: {v}" for k, v in res.items())
    if kind == "agree":
        rows = ["| model | precision | input | max abs | mean abs | ok |", "|---|---|---|---|---|---|"]
        rows += [f"| {c['model']} | {c['precision']} | {c['input']} | {c['max_abs']:.2e} | "
                 f"{c['mean_abs']:.2e} | {'yes' if c['ok'] else 'NO'} |" for c in res["cases"]]
        return "\n".join(rows)
    rows = ["| model | MP | precision | batch | MP/s | predict MP/s | host % | partial |",
            "|---|---|---|---|---|---|---|---|"]
    rows += [f"| {c['model']} | {c['size_mp']:.1f} | {c['precision']} | {c['batch_used']} ({c['batch_rule']}) | "
             f"{c['mp_per_s']:.2f} | {c['predict_mp_per_s']:.2f} | {100 * c['host_share']:.0f} | "
             f"{'yes' if c['partial'] else ''} |" for c in res["cases"]]
    return "\n".join(rows)


def session_summary(work: Path, run: Path) -> tuple[dict[str, Any], str]:
    """``scripts/gpu_session.sh``'s parts (status, env, agree, bench) and the training run, merged."""
    res: dict[str, Any] = {"parts": {}}
    status = work / "status.tsv"
    if status.is_file():
        for line in status.read_text().splitlines():
            name, rc, secs = line.split("\t")
            res["parts"][name] = {"rc": rc, "seconds": int(secs),
                                  "note": {"0": "ok", "124": "stopped by its time limit",
                                           "137": "killed after its time limit"}.get(rc, "failed")}
    smi = work / "nvidia-smi.txt"
    if smi.is_file():
        res["nvidia_smi"] = smi.read_text().strip()
    for part in ("env", "agree", "bench"):
        f = work / f"{part}.json"
        if f.is_file():
            res[part] = json.loads(f.read_text())
    train: dict[str, Any] = {}
    if (run / "log.jsonl").is_file():
        recs = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines() if x.strip()]
        train["epochs_logged"] = len(recs)
        train["last"] = recs[-1] if recs else None
        train["samples_per_s"] = [round(r.get("samples_per_s", 0.0), 1) for r in recs[-5:]]
    if (run / "summary.json").is_file():
        train["run_summary"] = json.loads((run / "summary.json").read_text())
    if (run / "last.pt").is_file():
        import torch

        ck = torch.load(run / "last.pt", map_location="cpu", weights_only=False)
        st = ck.get("state", {})
        train["checkpoint"] = {"phase": st.get("phase"), "epoch": st.get("epoch"), "steps": st.get("steps"),
                               "elapsed_s": st.get("elapsed"), "mib": (run / "last.pt").stat().st_size / 2**20,
                               "config": {k: ck["config"].get(k) for k in ("width", "epochs", "batch", "patch")}}
    res["train"] = train
    md = ["# GPU session", ""]
    md += [f"- {k}: rc {v['rc']} ({v['note']}), {v['seconds']} s" for k, v in res["parts"].items()]
    if "env" in res:
        md += ["", "## Environment", markdown("env", res["env"])]
    if "agree" in res:
        md += ["", f"## CPU vs {res['agree']['device']} (ok: {res['agree']['ok']})", markdown("agree", res["agree"])]
    if "bench" in res:
        md += ["", f"## Tiled predictor speed ({res['bench'].get('device_name', res['bench']['device'])})",
               markdown("bench", res["bench"])]
    if train:
        md += ["", "## Training", "```", json.dumps(train.get("checkpoint"), default=str),
               json.dumps(train.get("last"), default=str)[:2000], "```"]
    return res, "\n".join(md) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("part", choices=("env", "agree", "bench", "summary"))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default=None, help="JSON file")
    ap.add_argument("--pairs", default=None, help="exported pairs folder (agree: a real-looking input)")
    ap.add_argument("--side", type=int, default=136, help="agree: MS px a side of the inputs")
    ap.add_argument("--sizes", default="16,100", help="bench: output MP, comma separated")
    ap.add_argument("--precisions", default="fp32,bf16,fp16", help="bench: predictor precisions")
    ap.add_argument("--batches", default="4,mem", help="bench: tiles per batch; 'mem' = sized to GPU memory")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--case-seconds", type=float, default=20.0, help="bench: stop a case after this long")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None, help="summary: the session's work folder")
    ap.add_argument("--run", type=Path, default=None, help="summary: the training run folder")
    ap.add_argument("--md", default=None, help="summary: markdown file")
    a = ap.parse_args(argv)
    if a.part == "summary":
        res, md = session_summary(a.work, a.run)
        _write(a.out, res)
        if a.md:
            Path(a.md).write_text(md, encoding="utf-8")
        print(md)
        return 0
    if a.part == "env":
        res = env_info()
    elif a.part == "agree":
        res = agree(a.device, a.pairs, a.side, a.seed)
    else:
        import torch

        precs = [p for p in a.precisions.split(",") if p]
        if a.device.startswith("cuda") and not torch.cuda.is_bf16_supported():
            precs = [p for p in precs if p != "bf16"]
        res = bench(a.device, [float(s) for s in a.sizes.split(",")], precs, a.batches.split(","),
                    a.models.split(","), a.case_seconds, a.seed, a.out)
    _write(a.out, res)
    print(markdown(a.part, res), flush=True)
    return 0 if res.get("ok", True) else 1


if __name__ == "__main__":
    raise SystemExit(main())
