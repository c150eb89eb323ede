#!/usr/bin/env python3
"""The ceiling of per-scene calibration on the leave-one-scene-out folds.

Each held-out VHR scene's reduced-resolution pair (Wald, the sensor's MTF, as ``make bench``
prepares it) is fused by its fold network (``runs/loso_<recipe>/held_<scene>/m.pt``, trained
without it; uncalibrated and calibrated as by default) and by the classical methods, through
the product path. Then, per band, the weights of each candidate's detail are fitted **on the
reference itself** (the real MS: what no run can see), convex (the calibration's constraint) or
free non-negative: no per-band combination of these candidates can do better than these rows,
whatever the calibration's sample, so they bound what calibration can give.

Usage::

    python scripts/calibration_ceiling.py [--recipe fast8] [--data ../shared/data]

Prints, per scene and on average, ERGAS / SAM against the scene's best classical method
(GSA, MTF-GLP-HPM, MTF-GLP-FS, BDSD-PC); writes ``runs/ceiling_<recipe>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

CLASSICAL = ("mtf_glp_fs", "mtf_glp_hpm", "gsa", "bdsd_pc")
SETS = (("net", "mtf_glp_fs", "mtf_glp_hpm"), ("mtf_glp_fs", "mtf_glp_hpm"), ("net", *CLASSICAL), CLASSICAL)


def fit_on_reference(outs: dict[str, np.ndarray], names: tuple[str, ...], ref: np.ndarray, lms: np.ndarray,
                     convex: bool) -> np.ndarray:
    """lms + per band sum_k w_bk (out_k - lms), w fitted on ``ref`` by least squares."""
    from psdnet_qgis.core.classical.base import nnls_gram

    out = lms.copy()
    for b in range(ref.shape[0]):
        d = np.stack([(outs[n][b] - lms[b]).ravel() for n in names])
        w = nnls_gram(d @ d.T, d @ (ref[b] - lms[b]).ravel(), sum_to_one=convex)
        out[b] = lms[b] + (w[:, None] * d).sum(0).reshape(lms[b].shape)
    return out


def main(argv: list[str] | None = None) -> int:
    import bench_quality as bq
    from osgeo import gdal

    from psdnet_qgis.core.metrics import ergas, sam
    from psdnet_qgis.training.scenes import VHR_LOSO, default_data_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=default_data_dir())
    ap.add_argument("--recipe", default="fast8")
    ap.add_argument("--held-out", default=",".join(VHR_LOSO))
    a = ap.parse_args(argv)

    def read(p: Path) -> np.ndarray:
        return gdal.Open(str(p)).ReadAsArray().astype(np.float64)

    res: dict[str, dict[str, dict[str, float]]] = {}
    for held in [h for h in a.held_out.split(",") if h]:
        weights = ROOT / "runs" / f"loso_{a.recipe}" / f"held_{held}" / "m.pt"
        with tempfile.TemporaryDirectory() as tmp:
            sc = bq.prepare_scene("vhr4", a.data, Path(tmp), held)
            s, f, r = sc["spec"].sensor, sc["folder"], int(sc["spec"].ratio)
            outs: dict[str, np.ndarray] = {}
            for name, cal in (("net", False), ("calibrated", True)):
                bq.run_engine("psdnet", sc["rr_pan"], sc["rr_ms"], f / f"{name}.tif", model=str(weights),
                              sensor=s, calibrate=cal)
                outs[name] = read(f / f"{name}.tif")
            for m in (*CLASSICAL, "exp"):
                bq.run_engine(m, sc["rr_pan"], sc["rr_ms"], f / f"{m}.tif", sensor=s)
                outs[m] = read(f / f"{m}.tif")
            ref = read(sc["rr_ref"])
            rows = {k: (ergas(v, ref, r), sam(v, ref)) for k, v in outs.items()}
            for names in SETS:
                for convex in (True, False):
                    o = fit_on_reference(outs, names, ref, outs["exp"], convex)
                    rows[f"ceiling {'convex' if convex else 'free'}: {'+'.join(names)}"] = (ergas(o, ref, r),
                                                                                           sam(o, ref))
        best_e = min(rows[m][0] for m in CLASSICAL)
        best_s = min(rows[m][1] for m in CLASSICAL)
        res[held] = {k: {"ERGAS": e, "SAM": q, "dERGAS_pct": 100 * (e / best_e - 1), "dSAM_pct": 100 * (q / best_s - 1)}
                     for k, (e, q) in rows.items()}
        print(held, flush=True)
        for k, v in res[held].items():
            print(f"  {k:62s} {v['ERGAS']:.4f} ({v['dERGAS_pct']:+.1f} %)  {v['SAM']:.4f} ({v['dSAM_pct']:+.1f} %)",
                  flush=True)
    (ROOT / "runs" / f"ceiling_{a.recipe}.json").write_text(json.dumps(res, indent=1))
    print("mean against the best classical method, ERGAS / SAM:")
    for k in next(iter(res.values())):
        print(f"  {k:62s} {np.mean([res[h][k]['dERGAS_pct'] for h in res]):+.2f} % "
              f"{np.mean([res[h][k]['dSAM_pct'] for h in res]):+.2f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
