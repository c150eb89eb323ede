"""Throughput of ``python -m psdnet_qgis batch`` against the plain command line, one per scene.

Generated scenes (``tests/rasters.py``, seeded; 3 bands at ratio 2 for the bundled
``psdnet_landsat3``, uint16) are written once under ``runs/bench_batch/``. Cases, each on the
same scenes, outputs removed before each:

* ``cli``: ``python -m psdnet_qgis pansharpen`` once per scene, one after the other (what a
  shell loop does: every scene pays the interpreter, torch import and model load);
* ``batch WxT``: ``python -m psdnet_qgis batch`` on a local cluster of W workers x T threads
  (cluster start and stop included).

Prints a markdown table: wall seconds, CPU seconds (of every process the case started),
scenes per hour, output MPx/s, and the machine's load average before the case (the CPU may
be shared).

Usage: ``python scripts/bench_batch.py [--scenes 8] [--ms-size 512] [--method psdnet]
[--cases cli,batch1x2,batch2x1]``. The measured table is in docs/BATCH.md, "Throughput".
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


def make_scenes(folder: Path, n: int, ms_size: int) -> list[tuple[Path, Path]]:
    """``n`` PAN + MS pairs (MS ``ms_size`` a side, ratio 2, 3 bands), kept between runs."""
    from tests.rasters import make_pair

    folder.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i in range(n):
        name = f"scene{i:02d}_{ms_size}"
        pan, ms = folder / f"{name}_pan.tif", folder / f"{name}_ms.tif"
        if not (pan.exists() and ms.exists()):
            pan, ms = make_pair(folder, ms_shape=(ms_size, ms_size), bands=3, ratio=2, seed=i, name=name)
        pairs.append((pan, ms))
    return pairs


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)  # includes the cluster's worker processes
    return ru.ru_utime + ru.ru_stime


def _run(cmd: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=8)
    ap.add_argument("--ms-size", type=int, default=512, help="MS side in px (PAN: twice that)")
    ap.add_argument("--method", default="psdnet")
    ap.add_argument("--cases", default="cli,batch1x2,batch2x1")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_batch")
    a = ap.parse_args()
    load = os.getloadavg()[0]

    pairs = make_scenes(a.out / "scenes", a.scenes, a.ms_size)
    jobs = a.out / "jobs.csv"
    jobs.write_text("pan,ms\n" + "".join(f"{p},{m}\n" for p, m in pairs))
    out_dir = a.out / "outputs"
    mpx = a.scenes * (2 * a.ms_size) ** 2 / 1e6
    py = sys.executable
    rows = []
    for case in a.cases.split(","):
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True)
        cpu0, load0 = _children_cpu(), os.getloadavg()[0]
        if case == "cli":
            seconds = sum(_run([py, "-m", "psdnet_qgis", "pansharpen", str(p), str(m),
                                str(out_dir / f"{m.stem}.tif"), "--method", a.method, "--quiet"])
                          for p, m in pairs)
        elif case.startswith("batch"):
            w, t = case[len("batch"):].split("x")
            seconds = _run([py, "-m", "psdnet_qgis", "batch", str(jobs), "--out-dir", str(out_dir),
                            "--method", a.method, "--workers", w, "--threads-per-worker", t, "--quiet",
                            "--json"])
        else:
            raise SystemExit(f"unknown case {case!r}")
        rows.append({"case": case, "seconds": round(seconds, 1), "cpu_s": round(_children_cpu() - cpu0, 1),
                     "load": round(load0, 1),
                     "scenes_per_hour": round(3600 * a.scenes / seconds), "mpx_per_s": round(mpx / seconds, 3)})
        print(json.dumps(rows[-1]), file=sys.stderr)
    print(f"\n{a.scenes} scenes of {2 * a.ms_size} x {2 * a.ms_size} PAN px ({mpx:.1f} MPx), method {a.method}, "
          f"{os.cpu_count()} CPUs, load average before: {load:.1f}\n")
    print("| case | wall s | CPU s | scenes/h | output MPx/s | load before |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['case']} | {r['seconds']} | {r['cpu_s']} | {r['scenes_per_hour']} | {r['mpx_per_s']} "
              f"| {r['load']} |")


if __name__ == "__main__":
    main()
