#!/usr/bin/env python3
"""Which calibration settings transfer from the twice-degraded scene to the reduced-resolution check.

For each scene (``training.scenes.SCENES`` names): the Wald reduced-resolution pair of
``bench_quality.prepare_scene`` is what a user's run sees. Every candidate (the bundled network
uncalibrated, and the classical methods) fuses it once through ``engine.run.pansharpen``; the
calibration is fitted, as the engine does, on that pair degraded once more
(``engine.calibration``), for each setting (candidate set, constraint, prior strength); the
fitted weights then combine the reduced-resolution outputs, which are scored against the real
MS (ERGAS, SAM). Prints one markdown table per setting and the mean over scenes, with the best
classical method per metric.

    python scripts/calibration_study.py --scenes rotterdam2_wv2,pleiades_gizeh --out runs/calstudy
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "scripts"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from bench_quality import SCENE_MODEL, bundled_model, prepare_scene  # noqa: E402
from osgeo import gdal  # noqa: E402

from psdnet_qgis.core import classical, metrics, mtf  # noqa: E402
from psdnet_qgis.core.calibration import CalibrationFit  # noqa: E402
from psdnet_qgis.core.resample import upsample_bicubic  # noqa: E402
from psdnet_qgis.core.tiling import PSDNET_MARGIN  # noqa: E402
from psdnet_qgis.engine import calibration as ecal  # noqa: E402
from psdnet_qgis.engine.feedback import NullFeedback  # noqa: E402
from psdnet_qgis.engine.fusion import choose_predictor, scene_model  # noqa: E402
from psdnet_qgis.engine.raster import open_inputs  # noqa: E402
from psdnet_qgis.engine.run import pansharpen  # noqa: E402
from psdnet_qgis.training.scenes import SCENES  # noqa: E402

CLASSICAL = ("mtf_glp_fs", "gsa", "bdsd_pc", "mtf_glp_hpm")


def read(path: Path) -> np.ndarray:
    """(C, H, W) float32."""
    ds = gdal.Open(str(path))
    return np.asarray(ds.ReadAsArray(), np.float32).reshape(ds.RasterCount, ds.RasterYSize, ds.RasterXSize)


def rr_outputs(sc: dict, weights: str, tmp: Path) -> dict[str, np.ndarray]:
    """Every candidate's reduced-resolution output (float32 arrays on the reference grid)."""
    out = {}
    for name in ("psdnet", *CLASSICAL):
        path = tmp / f"{sc['spec'].name}_{name}.tif"
        kw = {"model": weights, "device": "cpu", "calibrate": False} if name == "psdnet" else {}
        pansharpen(str(sc["rr_pan"]), str(sc["rr_ms"]), str(path), method=name, out_dtype="float32",
                   sensor=sc["spec"].sensor, **kw)
        out[name] = read(path)
    return out


def rr2_windows(sc: dict, weights: str) -> tuple[list, dict[str, list[np.ndarray]], int]:
    """The engine's twice-degraded windows and every candidate's output there."""
    spec = sc["spec"]
    inputs = open_inputs(str(sc["rr_pan"]), str(sc["rr_ms"]))
    fb = NullFeedback()
    scene = scene_model(inputs, "psdnet", weights, spec.sensor, fb)
    fusion = choose_predictor(inputs, scene, "psdnet", "cpu", None, "auto", PSDNET_MARGIN, fb)
    r = inputs.ratio
    gains = mtf.gnyq_for(scene.sensor, inputs.bands)
    wins = ecal._read_windows(inputs, gains, fb)
    m = PSDNET_MARGIN * r
    outs: dict[str, list[np.ndarray]] = {k: [] for k in ("psdnet", *CLASSICAL)}
    stats = {k: classical.fit(k, [w.ms_lr for w in wins], [w.pan_lr for w in wins], r, sensor=scene.sensor,
                              valid=[w.lr_valid for w in wins]) for k in CLASSICAL}
    norm = fusion.normalizer
    for w in wins:
        hh, ww = w.valid.shape
        core = (slice(None), slice(m, m + hh), slice(m, m + ww))
        net = fusion.predictor.predict(norm.norm_ms(w.ms_lr)[None], norm.norm_pan(w.pan_lr)[None])[0]
        outs["psdnet"].append(norm.denorm_ms(net)[core])
        for k in CLASSICAL:
            outs[k].append(classical.apply(k, w.ms_lr, w.pan_lr, r, stats[k])[core])
    inputs.close()
    return wins, outs, r


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenes", required=True)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "calstudy")
    ap.add_argument("--priors", default="0,1024,4096")
    ap.add_argument("--sets", default="mtf_glp_fs+gsa,mtf_glp_fs,mtf_glp_fs+gsa+bdsd_pc,mtf_glp_fs+gsa+mtf_glp_hpm")
    ap.add_argument("--constraints", default="simplex,nonneg")
    args = ap.parse_args()
    from psdnet_qgis.training.scenes import default_data_dir

    data = args.data or default_data_dir()
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for name in [s for s in args.scenes.split(",") if s]:
            model = SCENE_MODEL[SCENES[name].ratio]
            weights = bundled_model(model)[1]
            sc = prepare_scene(model, data, tmp, name)
            ref = read(sc["rr_ref"])
            rr = rr_outputs(sc, weights, tmp)
            ms_rr = read(sc["rr_ms"])
            lms = upsample_bicubic(ms_rr, sc["ratio"])
            wins, outs, r = rr2_windows(sc, weights)
            res = {k: (metrics.ergas(v, ref, r), metrics.sam(v, ref)) for k, v in rr.items()}
            px = int(sum(w.valid.sum() for w in wins))
            for cset, cons, prior in itertools.product(args.sets.split(","), args.constraints.split(","),
                                                      [float(p) for p in args.priors.split(",")]):
                cands = ["psdnet", *cset.split("+")]
                fit = CalibrationFit(cands, ref.shape[0], r, constraint=cons, prior_pixels=prior)
                m = PSDNET_MARGIN * r
                for i, w in enumerate(wins):
                    up = upsample_bicubic(w.ms_lr, r)[:, m:m + w.valid.shape[0], m:m + w.valid.shape[1]]
                    fit.add(w.ref, up, [outs[c][i] for c in cands], w.valid)
                cal = fit.solve()
                fused = cal.combine(lms, [rr[c] for c in cands])
                res[f"{cset}|{cons}|{int(prior)}"] = (metrics.ergas(fused, ref, r), metrics.sam(fused, ref))
            results[name] = {"px": px, "res": res}
            print(name, px, {k: tuple(round(x, 3) for x in v) for k, v in res.items()}, flush=True)
    (args.out / "calstudy.json").write_text(json.dumps(results, indent=1))
    keys = list(next(iter(results.values()))["res"])
    print("\n| setting | " + " | ".join(f"{s} ERGAS / SAM" for s in results)
          + " | mean ERGAS / SAM rel. best classical |")
    print("|---|" + "---|" * (len(results) + 1))
    for k in keys:
        cells, rel_e, rel_s = [], [], []
        for d in results.values():
            e, a = d["res"][k]
            be = min(d["res"][c][0] for c in CLASSICAL)
            bs = min(d["res"][c][1] for c in CLASSICAL)
            rel_e.append(e / be - 1)
            rel_s.append(a / bs - 1)
            cells.append(f"{e:.3f} / {a:.3f}")
        print(f"| {k} | " + " | ".join(cells) + f" | {100 * np.mean(rel_e):+.1f} % / {100 * np.mean(rel_s):+.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
