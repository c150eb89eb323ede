#!/usr/bin/env python3
"""What the consistency step (``core.wald.consistent``) is worth to every method, and how much
of it survives a wrong MTF (study; docs/TRAINING_LOG.md, "The consistency step").

For each held-out VHR scene, reduced resolution (Wald, the sensor's MTF, as ``make bench``) and
full resolution: the fold network of ``--recipe`` through the product path calibrated without
the step and uncalibrated, and the four classical methods, each as it comes and with the step
applied afterwards to the whole image (``+step``). ``--gain-scales``: MTF-GLP-HPM and -FS at
reduced resolution with the step's MTF gains scaled against those that made the pair.

Usage::

    python scripts/consistency_study.py --recipe fast8 [--held-out a,b] [--gain-scales 0.6,0.8,1,1.25]

Prints ERGAS / SAM against the scene's best classical method (without the step), HQNR, D_lambda_K
and D_s; writes ``runs/consistency_<recipe>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

CLASSICAL = ("mtf_glp_fs", "mtf_glp_hpm", "gsa", "bdsd_pc")


def step_file(out: Path, ms_path: Path, sensor: str | None, ratio: int, scale: float = 1.0) -> None:
    """The consistency step on a fused GeoTIFF, in place (MTF gains of ``sensor`` times ``scale``)."""
    from osgeo import gdal

    from psdnet_qgis.core.mtf import gnyq_for
    from psdnet_qgis.core.wald import consistent

    ds = gdal.Open(str(out), gdal.GA_Update)
    x = ds.ReadAsArray().astype(np.float32)
    ms = gdal.Open(str(ms_path)).ReadAsArray().astype(np.float32)
    gains = list(np.clip(np.asarray(gnyq_for(sensor, x.shape[0]).ms) * scale, 0.05, 0.95))
    y = consistent(x, ms, ratio, gains)
    for b in range(y.shape[0]):
        ds.GetRasterBand(b + 1).WriteArray(y[b])
    ds = None


def main(argv: list[str] | None = None) -> int:
    import bench_quality as bq

    from psdnet_qgis.core.metrics import ergas
    from psdnet_qgis.engine import calibration
    from psdnet_qgis.training.scenes import VHR_LOSO, default_data_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=default_data_dir())
    ap.add_argument("--recipe", default="fast8")
    ap.add_argument("--held-out", default=",".join(VHR_LOSO))
    ap.add_argument("--gain-scales", default="", help="e.g. 0.6,0.8,1,1.25 (reduced resolution only)")
    a = ap.parse_args(argv)
    calibration.CONSISTENT = False  # the engine's own step off: this script applies it
    res: dict[str, Any] = {}
    for held in [h for h in a.held_out.split(",") if h]:
        w = str(ROOT / "runs" / f"loso_{a.recipe}" / f"held_{held}" / "m.pt")
        with tempfile.TemporaryDirectory() as tmp:
            sc = bq.prepare_scene("vhr4", a.data, Path(tmp), held)
            s, r = sc["spec"].sensor, int(sc["spec"].ratio)
            rows: dict[str, dict[str, float]] = {}
            runs: list[tuple[str, str, dict[str, Any]]] = [
                ("PSDNet calibrated", "psdnet", {"model": w}),
                ("PSDNet uncalibrated", "psdnet", {"model": w, "calibrate": False}),
                *[(m, m, {}) for m in CLASSICAL]]
            for label, method, kw in runs:
                for step in (False, True):
                    def fn(p: Path, m: Path, o: Path, method: str = method, kw: dict = kw, step: bool = step,
                           sensor: str | None = s, ratio: int = r) -> float:
                        t = bq.run_engine(method, p, m, o, sensor=sensor, **kw)
                        if step:
                            step_file(o, m, sensor, ratio)
                        return t
                    rr, fr, _ = bq.score_method(fn, sc, f"{method}{int(step)}{len(rows)}")
                    rows[label + (" +step" if step else "")] = {
                        "ERGAS": rr["metrics"]["ERGAS"], "SAM": rr["metrics"]["SAM"], "HQNR": fr["metrics"]["HQNR"],
                        "D_lambda_K": fr["metrics"]["D_lambda_K"], "D_s": fr["metrics"]["D_s"]}
            scales = {}
            if a.gain_scales:
                from osgeo import gdal

                ref = gdal.Open(str(sc["rr_ref"])).ReadAsArray().astype(np.float64)
                for m in ("mtf_glp_hpm", "mtf_glp_fs"):
                    out = sc["folder"] / f"scale_{m}.tif"
                    base = None
                    for k in [float(v) for v in a.gain_scales.split(",")]:
                        bq.run_engine(m, sc["rr_pan"], sc["rr_ms"], out, sensor=s)
                        if base is None:
                            base = ergas(gdal.Open(str(out)).ReadAsArray().astype(np.float64), ref, r)
                        step_file(out, sc["rr_ms"], s, r, k)
                        e = ergas(gdal.Open(str(out)).ReadAsArray().astype(np.float64), ref, r)
                        scales[f"{m} x{k:g}"] = 100 * (e / base - 1)
        be = min(rows[m]["ERGAS"] for m in CLASSICAL)
        bs = min(rows[m]["SAM"] for m in CLASSICAL)
        res[held] = {"rows": rows, "gain_scales": scales}
        print(held, flush=True)
        for k, v in rows.items():
            print(f"  {k:26s} ERGAS {v['ERGAS']:.4f} ({100 * (v['ERGAS'] / be - 1):+.1f} %) SAM {v['SAM']:.4f} "
                  f"({100 * (v['SAM'] / bs - 1):+.1f} %) HQNR {v['HQNR']:.4f} D_lambda_K {v['D_lambda_K']:.4f} "
                  f"D_s {v['D_s']:.4f}", flush=True)
        for k, v in scales.items():
            print(f"  step with MTF gains {k}: ERGAS {v:+.1f} %", flush=True)
    (ROOT / "runs" / f"consistency_{a.recipe}.json").write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
