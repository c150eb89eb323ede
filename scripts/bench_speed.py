"""Speed and memory benchmark of the tiled engine (``make bench-speed``); prints a markdown table.

Generated rasters (ratio 4, 4 bands, uint16; PAN 1k, 4k, 10k px a side) are written once
under ``runs/bench_speed/``. Every measurement runs in its own subprocess so that peak RSS
(``ru_maxrss`` of the whole process: Python, torch, GDAL, buffers) is per case:

* ``engine``: ``engine.run.pansharpen`` (the real path: windowed reads, tiles, blending,
  block-accumulated compressed writes) with PSDNet (the bundled model when there is one for 4
  bands at ratio 4, else random weights: same cost), or with a classical method given as a
  model name (``--models exp``: the tile loop's own memory without a network's activations);
* ``naive``: whole image in memory, one forward pass (only where it fits: ``--naive-max``);
* ``paper``: the reference recipe, 66 x 66 MS / 264 x 264 PAN tiles, eager fp32 NCHW,
  batch 1, ``no_grad``, no overlap, no other tricks (timed on a subset of tiles and
  extrapolated: CPU time per output MPx is what is compared);
* ``engine-cuda``: the engine on the GPU when CUDA is available;
* ``cli``: the headless command line, ``python -m psdnet_qgis pansharpen PAN MS OUT``, and
  ``qgis``: the Processing algorithm through ``qgis_process run psdnet:pansharpen`` (the
  plugin zip installed into a fresh QGIS profile). Both are a child process of the worker:
  CPU time and peak RSS are the child's whole process (interpreter or QGIS start-up,
  model loading, the run), so they read a little higher than ``engine``.

Usage: ``python scripts/bench_speed.py [--sizes 1024,4096] [--modes engine,cli,qgis,paper,naive]``.

The measured table, the command lines that made it and what it says are in docs/BENCHMARKS.md,
"Speed and memory".
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RATIO, BANDS = 4, 4
PAPER_MS = 66
#: ``--models psdnet_vhr4:nocal``: the engine run without the per-scene calibration.
UNCAL = "nocal"
#: ``--models exp``: a classical method through the engine (no network: the tile loop's own memory).
CLASSICAL = ("exp", "brovey", "gsa", "mtf_glp_hpm", "mtf_glp_fs", "bdsd_pc")


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _rss_mb() -> float:
    """Peak RSS of this process in MB: VmHWM where /proc has it (per address space, so it
    starts afresh at exec; ``ru_maxrss`` keeps the parent's peak across fork + exec, which made
    a worker started after the 100 MPx raster was generated report the generator's peak)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


def make_rasters(folder: Path, size: int) -> tuple[Path, Path]:
    """PAN ``size`` x ``size`` and MS ``size/4`` a side, written in strips (bounded memory)."""
    import numpy as np
    from osgeo import gdal, osr

    gdal.UseExceptions()
    folder.mkdir(parents=True, exist_ok=True)
    pan_p, ms_p = folder / f"pan_{size}.tif", folder / f"ms_{size}.tif"
    if pan_p.exists() and ms_p.exists():
        return pan_p, ms_p
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    opts = ["TILED=YES", "COMPRESS=DEFLATE", "PREDICTOR=2", "BIGTIFF=IF_SAFER"]
    h = size // RATIO
    drv = gdal.GetDriverByName("GTiff")
    pan_ds = drv.Create(str(pan_p), size, size, 1, gdal.GDT_UInt16, opts)
    ms_ds = drv.Create(str(ms_p), h, h, BANDS, gdal.GDT_UInt16, opts)
    for ds, px in ((pan_ds, 0.5), (ms_ds, 0.5 * RATIO)):
        ds.SetGeoTransform((500000.0, px, 0.0, 5700000.0, 0.0, -px))
        ds.SetProjection(srs.ExportToWkt())
    rng = np.random.default_rng(0)
    freq = rng.uniform(0.002, 0.02, size=(BANDS, 2))
    strip = 256  # MS rows per strip
    xs = np.arange(size, dtype=np.float32)
    for m0 in range(0, h, strip):
        m1 = min(h, m0 + strip)
        ys = np.arange(m0 * RATIO, m1 * RATIO, dtype=np.float32)[:, None]
        hr = np.empty((BANDS, ys.shape[0], size), np.float32)
        for b in range(BANDS):
            hr[b] = 900 + 400 * np.sin(freq[b, 0] * xs[None] + freq[b, 1] * ys) * np.cos(0.013 * ys + b)
            hr[b] += rng.normal(0, 40, size=hr[b].shape).astype(np.float32)  # texture
        hr = np.clip(hr, 0, 2047)
        pan_ds.GetRasterBand(1).WriteArray(np.rint(hr.mean(0)).astype(np.uint16), 0, m0 * RATIO)
        ms = hr.reshape(BANDS, m1 - m0, RATIO, h, RATIO).mean(axis=(2, 4))
        ms_ds.WriteArray(np.rint(ms).astype(np.uint16), 0, m0)
    pan_ds = ms_ds = None
    return pan_p, ms_p


def _model(name: str | None = None):
    """The bundled model ``name`` (default: Auto's 4-band ratio-4 model), else a random-weight
    PSDNet of the full width (same cost)."""
    try:
        from psdnet_qgis.core import registry
        from psdnet_qgis.model.weights import load_model

        if name:
            net, _ = load_model(name)
            return net, name
        info = registry.auto_select(BANDS, RATIO)
        net, _ = load_model(getattr(info, "path", None) or info.name)
        return net, info.name
    except Exception:  # noqa: BLE001 - fall back to an untrained network of the same size
        import torch

        from psdnet_qgis.model.psdnet import PSDNet

        torch.manual_seed(0)
        return PSDNet(BANDS, RATIO), "PSDNet (random weights)"


def _entry_point_cmd(mode: str, pan: Path, ms: Path, out: Path, folder: Path) -> tuple[list[str], dict]:
    """Command line and environment of the ``cli`` / ``qgis`` cases."""
    if mode == "cli":
        return [sys.executable, "-m", "psdnet_qgis", "pansharpen", str(pan), str(ms), str(out),
                "--device", "cpu", "--quiet"], dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    exe = shutil.which("qgis_process")
    if exe is None:
        raise SystemExit("qgis_process is not installed")
    sys.path.insert(0, str(ROOT / "scripts"))
    from package import build_zip, qgis_process_env

    plugins, profile = folder / "qgis_plugins", folder / "qgis_profile"
    for d in (plugins, profile):  # a fresh profile each time ("enable" fails if enabled)
        shutil.rmtree(d, ignore_errors=True)
    env = qgis_process_env(build_zip(folder / "dist"), plugins, profile, exe)
    return [exe, "run", "psdnet:pansharpen", "--", f"PAN={pan}", f"MS={ms}", f"OUTPUT={out}"], env


def worker(mode: str, size: int, folder: Path, args: argparse.Namespace) -> dict:
    """One measurement, run inside its own process."""
    import numpy as np

    import psdnet_qgis.model  # noqa: F401  (before torch, as in the engine: huge pages, model/__init__)

    pan_p, ms_p = make_rasters(folder, size)
    if args.threads:
        os.environ["PSDNET_THREADS"] = str(args.threads)  # the engine's predictor reads it
        import torch

        torch.set_num_threads(args.threads)
    rss0 = _rss_mb()
    c0, t0 = _cpu(), time.perf_counter()
    out_mpx = size * size / 1e6
    res: dict = {"mode": mode, "size": size}
    if mode in ("engine", "engine-cuda"):
        from psdnet_qgis.engine.run import METHODS, pansharpen

        model, _, flag = (args.model or "").partition(":")
        if model in METHODS and model != "psdnet":  # a classical method: the tile loop's own memory
            net, name, method = None, model, model
        else:
            (net, name), method = _model(model or None), "psdnet"
        c0, t0 = _cpu(), time.perf_counter()  # exclude model loading
        rep = pansharpen(pan_p, ms_p, folder / f"out_{mode}_{name}_{size}.tif", model=net, method=method,
                         device="cuda" if mode == "engine-cuda" else "cpu",
                         tile=args.tile, overlap=args.overlap, batch_size=args.batch, calibrate=flag != UNCAL)
        res.update(model=name + (f":{UNCAL}" if flag == UNCAL else ""), tiles=rep.tiles, tile=rep.tile,
                   overlap=rep.overlap, batch=rep.batch_size, device=rep.device, threads=rep.threads)
    elif mode in ("cli", "qgis"):
        out = folder / f"out_{mode}_{size}.tif"
        cmd, env = _entry_point_cmd(mode, pan_p, ms_p, out, folder)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        c0, t0 = before.ru_utime + before.ru_stime, time.perf_counter()
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"{mode} failed: {(p.stdout + p.stderr)[-2000:]}")
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        res.update(model="auto", tiles="-", device="cpu", threads=os.environ.get("PSDNET_THREADS", "auto"),
                   seconds=time.perf_counter() - t0, cpu_s=ru.ru_utime + ru.ru_stime - c0,
                   out_mpx=out_mpx, rss_start_mb=0.0, peak_rss_mb=ru.ru_maxrss / 1024.0)
        return res  # the child's figures, not this worker's
    elif mode == "naive":
        import torch
        from osgeo import gdal

        from psdnet_qgis.core.radiometry import Normalizer

        net, name = _model()
        net.eval()
        c0, t0 = _cpu(), time.perf_counter()
        ms = gdal.Open(str(ms_p)).ReadAsArray().astype(np.float32)
        pan = gdal.Open(str(pan_p)).ReadAsArray().astype(np.float32)[None]
        nz = Normalizer.from_arrays(ms, pan)
        with torch.inference_mode():
            out = net(torch.from_numpy(nz.norm_ms(ms))[None], torch.from_numpy(nz.norm_pan(pan))[None]).out3
        res.update(model=name, tiles=1, tile=ms.shape[-1], device="cpu", threads=torch.get_num_threads())
        del out
    elif mode == "paper":
        import torch
        from osgeo import gdal

        from psdnet_qgis.core.radiometry import Normalizer

        net, name = _model()
        net.eval()
        ms_ds, pan_ds = gdal.Open(str(ms_p)), gdal.Open(str(pan_p))
        h = size // RATIO
        n_side = h // PAPER_MS
        n_tiles = n_side * n_side
        budget = min(n_tiles, args.paper_tiles)
        c0, t0 = _cpu(), time.perf_counter()
        sample_ms = ms_ds.ReadAsArray(0, 0, PAPER_MS, PAPER_MS).astype(np.float32)
        sample_pan = pan_ds.ReadAsArray(0, 0, PAPER_MS * RATIO, PAPER_MS * RATIO).astype(np.float32)
        nz = Normalizer.from_arrays(sample_ms, sample_pan)
        with torch.no_grad():
            for k in range(budget):
                i, j = divmod(k, n_side)
                m = ms_ds.ReadAsArray(j * PAPER_MS, i * PAPER_MS, PAPER_MS, PAPER_MS).astype(np.float32)
                p = pan_ds.ReadAsArray(j * PAPER_MS * RATIO, i * PAPER_MS * RATIO,
                                       PAPER_MS * RATIO, PAPER_MS * RATIO).astype(np.float32)
                net(torch.from_numpy(nz.norm_ms(m))[None], torch.from_numpy(nz.norm_pan(p)[None])[None])
        out_mpx = budget * (PAPER_MS * RATIO) ** 2 / 1e6  # what was actually computed
        res.update(model=name, tiles=f"{budget}/{n_tiles}", tile=PAPER_MS, device="cpu",
                   threads=torch.get_num_threads())
    else:
        raise SystemExit(f"unknown mode {mode}")
    res["seconds"] = time.perf_counter() - t0
    res["cpu_s"] = _cpu() - c0
    res["out_mpx"] = out_mpx
    res["rss_start_mb"] = rss0
    res["peak_rss_mb"] = _rss_mb()
    from psdnet_qgis.model import cpu

    res["huge_pages"] = cpu.huge_pages()
    return res


def run_case(mode: str, size: int, folder: Path, args: argparse.Namespace, model: str | None = None
             ) -> dict | None:
    cmd = [sys.executable, __file__, "--worker", mode, "--size", str(size), "--work", str(folder),
           "--paper-tiles", str(args.paper_tiles)]
    if model:
        cmd += ["--model", model]
    for k in ("tile", "overlap", "batch", "threads"):
        v = getattr(args, k)
        if v is not None:
            cmd += [f"--{k}", str(v)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        tail = (p.stderr.strip().splitlines() or ["?"])[-1]
        print(f"<!-- {mode} {size}: failed: {tail} -->", file=sys.stderr)
        return None
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1024,4096,10240", help="PAN sizes (px a side), comma separated")
    ap.add_argument("--modes", default="engine,cli,qgis,naive,paper,engine-cuda")
    ap.add_argument("--naive-max", type=int, default=2048, help="largest PAN size for the naive path")
    ap.add_argument("--paper-tiles", type=int, default=12, help="paper tiles timed (extrapolated)")
    ap.add_argument("--tile", type=int, default=None)
    ap.add_argument("--overlap", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads for every path (default: all cores)")
    ap.add_argument("--models", default="",
                    help="bundled models of the engine rows, comma separated (default: Auto's model); "
                         "e.g. psdnet_vhr4,psdnet_vhr4_fast: the ratios of each to the first are printed; "
                         "NAME:nocal runs NAME without the per-scene calibration (its cost is printed)")
    ap.add_argument("--memory", action="store_true",
                    help="memory table only: peak RSS of every engine model at each size and its growth "
                         "from the smallest size (target: within 20 %%)")
    ap.add_argument("--fast-sizes", default="",
                    help="sizes run for the models after the first only (e.g. 10240: 100 MPx for the fast model)")
    ap.add_argument("--work", default=str(ROOT / "runs" / "bench_speed"))
    ap.add_argument("--model", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    folder = Path(args.work)
    if args.worker:
        print(json.dumps(worker(args.worker, args.size, folder, args)))
        return 0

    sizes = [int(s) for s in args.sizes.split(",") if s]
    fast_sizes = [int(s) for s in args.fast_sizes.split(",") if s]
    modes = ["engine"] if args.memory else [m for m in args.modes.split(",") if m]
    models = [m for m in args.models.split(",") if m] or [None]
    import psdnet_qgis.model  # noqa: F401  (before torch: the workers inherit its allocator settings)

    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    rows = []
    for size in sorted(set(sizes) | set(fast_sizes)):
        make_rasters(folder, size)
        for mode in modes:
            if size not in sizes and mode != "engine":
                continue
            if mode == "naive" and size > args.naive_max:
                continue
            if mode == "engine-cuda" and not cuda:
                continue
            if mode == "qgis" and shutil.which("qgis_process") is None:
                continue
            if mode == "paper" and size != min(sizes):
                continue  # per-MPx cost does not depend on the raster size
            for k, model in enumerate(models if mode == "engine" else [None]):
                if size not in sizes and k == 0:
                    continue
                r = run_case(mode, size, folder, args, model)
                if r:
                    rows.append(r)
                    print(f"<!-- {json.dumps(r)} -->", file=sys.stderr, flush=True)

    from psdnet_qgis.model import cpu

    pages = sorted({str(r.get("huge_pages")) for r in rows}) or [cpu.huge_pages()]
    print(f"CPU: {cpu.cpu_class()}, {os.cpu_count()} logical CPUs; huge pages: {'; '.join(pages)}\n")
    print("| PAN px | path | model | tiles (tile/overlap MS px) | device | wall s | output MPx/s | "
          "CPU s / MPx | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        plan = f"{r.get('tiles')}" + (f" ({r['tile']}/{r.get('overlap', 0)})" if "tile" in r else "")
        print(f"| {r['size']} | {r['mode']} | {r.get('model')} | {plan} | {r.get('device')} x{r.get('threads')} | "
              f"{r['seconds']:.1f} | {r['out_mpx'] / r['seconds']:.3f} | "
              f"{r['cpu_s'] / r['out_mpx']:.1f} | {r['peak_rss_mb']:.0f} |")
    _model_ratios(rows, models)
    _memory_table(rows)
    eng = {r["size"]: r for r in rows if r["mode"] == "engine" and r.get("model") == (models[0] or r.get("model"))}
    paper = [r for r in rows if r["mode"] == "paper"]
    if eng and paper:
        p_rate = paper[0]["cpu_s"] / paper[0]["out_mpx"]
        print()
        for size in sorted(eng):
            ratio = (eng[size]["cpu_s"] / eng[size]["out_mpx"]) / p_rate
            print(f"Engine CPU time per MPx / paper-tile eager, {size} px: {ratio:.2f} (target <= 0.25)")
    if len(eng) > 1:
        lo, hi = eng[min(eng)], eng[max(eng)]
        print(f"Peak RSS {min(eng)} -> {max(eng)} px: {lo['peak_rss_mb']:.0f} -> {hi['peak_rss_mb']:.0f} MB "
              f"({hi['peak_rss_mb'] / lo['peak_rss_mb'] - 1:+.0%}; target within 20 %, < 1500 MB)")
    return 0


def _memory_table(rows: list[dict]) -> None:
    """Peak RSS of every engine model at each size, and its growth from that model's smallest size."""
    per: dict[str, dict[int, dict]] = {}
    for r in rows:
        if r["mode"] == "engine":
            per.setdefault(str(r.get("model")), {})[r["size"]] = r
    per = {m: v for m, v in per.items() if len(v) > 1}
    if not per:
        return
    print("\n| model | PAN px a side | output MPx | peak RSS MB | growth from smallest | CPU s / MPx |")
    print("|---|---|---|---|---|---|")
    for m, by_size in per.items():
        lo = by_size[min(by_size)]["peak_rss_mb"]
        for size in sorted(by_size):
            r = by_size[size]
            print(f"| {m} | {size} | {r['out_mpx']:.1f} | {r['peak_rss_mb']:.0f} | "
                  f"{r['peak_rss_mb'] / lo - 1:+.0%} | {r['cpu_s'] / r['out_mpx']:.2f} |")
    print("(target: the fast model's peak RSS within 20 % from 1 to 100 MPx; the full model under 1 GB)")


def _model_ratios(rows: list[dict], models: list[str | None]) -> None:
    """CPU time per MPx of each later model against the first at the same size, each model's
    peak RSS from its smallest to its largest size, and the cost of the calibration."""
    if len(models) < 2:
        return
    per = {m: {r["size"]: r for r in rows if r["mode"] == "engine" and r.get("model") == m} for m in models}
    print()
    for m in models:
        uncal = per.get(f"{m}:{UNCAL}", {})
        for size in sorted(per[m]) if not str(m).endswith(UNCAL) else ():
            if size in uncal:
                c, u = per[m][size], uncal[size]
                print(f"CPU time, {m} calibrated / uncalibrated, {size} px: "
                      f"{c['cpu_s'] / u['cpu_s']:.3f} (target <= 1.15)")
    models = [m for m in models if not str(m).endswith(UNCAL) and m not in CLASSICAL]
    if not models:
        return
    base = per[models[0]]
    for m in models[1:]:
        for size in sorted(per[m]):
            if size in base:
                b, f = base[size], per[m][size]
                ratio = (b["cpu_s"] / b["out_mpx"]) / (f["cpu_s"] / f["out_mpx"])
                print(f"CPU time per MPx, {models[0]} / {m}, {size} px: {ratio:.2f} (target >= 4)")
    for m in models:
        if len(per[m]) > 1:
            lo, hi = per[m][min(per[m])], per[m][max(per[m])]
            print(f"Peak RSS of {m}, {min(per[m])} -> {max(per[m])} px: {lo['peak_rss_mb']:.0f} -> "
                  f"{hi['peak_rss_mb']:.0f} MB ({hi['peak_rss_mb'] / lo['peak_rss_mb'] - 1:+.0%})")


if __name__ == "__main__":
    sys.exit(main())
