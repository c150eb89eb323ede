#!/usr/bin/env python3
"""Leave one scene out for networks on a classical base (``PSDNet(base=...)``; study, not a product path).

A network whose stage outputs are residuals on a classical fusion (MTF-GLP-FS or -HPM of the
same inputs) instead of on the bicubic MS starts where the classical method is and only has to
learn a correction. Each fold is trained like ``scripts/loso.py`` (``train_fold``: the recipe on
the other five VHR scenes, no validation, last epoch's EMA) and scored on the held-out scene's
reduced-resolution pair (Wald, the sensor's MTF, as ``make bench`` prepares it) as one whole
image: the pair's own normalisation statistics, the base fitted on the whole pair, the network
run once (the engine's tiled path does not know base models yet). Beside it, the classical
methods through the product path and the best per-band convex mix of the network's and the
classical details fitted on the reference itself (the ceiling of a calibration of that form).

Usage::

    python scripts/base_study.py --recipe fast8_fs [--held-out pleiades_gizeh,osman_vhr] [--jobs 2]

Writes ``runs/loso_<recipe>/base_study.json`` and prints ERGAS / SAM against each scene's best
classical method (GSA, MTF-GLP-HPM, MTF-GLP-FS, BDSD-PC).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

CLASSICAL = ("mtf_glp_fs", "mtf_glp_hpm", "gsa", "bdsd_pc")


def whole_image(weights: Path, ms: np.ndarray, pan: np.ndarray, ratio: int, sensor: str | None) -> np.ndarray:
    """The network on the whole pair (raw radiometry in and out), its base fitted on the pair."""
    import torch

    from psdnet_qgis.core import classical
    from psdnet_qgis.core.radiometry import Normalizer
    from psdnet_qgis.model.weights import load_model

    model, _ = load_model(weights)
    norm = Normalizer.from_arrays(ms, pan[None])
    base = None
    if model.base != "bicubic":
        b = classical.apply(model.base, ms, pan, ratio, classical.fit(model.base, ms, pan, ratio, sensor))
        base = torch.from_numpy(norm.norm_ms(b)[None])
    with torch.inference_mode():
        out = model.infer(torch.from_numpy(norm.norm_ms(ms)[None]), torch.from_numpy(norm.norm_pan(pan[None])[None]),
                          base)
    return norm.denorm_ms(out[0].numpy()).astype(np.float64)


def score(weights: Path, held: str, data: Path) -> dict[str, dict[str, float]]:
    import bench_quality as bq
    from calibration_ceiling import fit_on_reference
    from osgeo import gdal

    from psdnet_qgis.core.metrics import ergas, sam

    def read(p: Path) -> np.ndarray:
        return gdal.Open(str(p)).ReadAsArray().astype(np.float64)

    with tempfile.TemporaryDirectory() as tmp:
        sc = bq.prepare_scene("vhr4", data, Path(tmp), held)
        s, f, r = sc["spec"].sensor, sc["folder"], int(sc["spec"].ratio)
        outs: dict[str, np.ndarray] = {}
        for m in (*CLASSICAL, "exp"):
            bq.run_engine(m, sc["rr_pan"], sc["rr_ms"], f / f"{m}.tif", sensor=s)
            outs[m] = read(f / f"{m}.tif")
        ms = read(sc["rr_ms"]).astype(np.float32)
        pan = read(sc["rr_pan"]).astype(np.float32)
        outs["net"] = whole_image(weights, ms, pan, r, s)
        ref = read(sc["rr_ref"])
    rows = {k: (ergas(v, ref, r), sam(v, ref)) for k, v in outs.items()}
    for names in (("net", "mtf_glp_fs", "mtf_glp_hpm"), ("mtf_glp_fs", "mtf_glp_hpm")):
        o = fit_on_reference(outs, names, ref, outs["exp"], True)
        rows["ceiling convex: " + "+".join(names)] = (ergas(o, ref, r), sam(o, ref))
    be = min(rows[m][0] for m in CLASSICAL)
    bs = min(rows[m][1] for m in CLASSICAL)
    return {k: {"ERGAS": e, "SAM": q, "dERGAS_pct": 100 * (e / be - 1), "dSAM_pct": 100 * (q / bs - 1)}
            for k, (e, q) in rows.items()}


def main(argv: list[str] | None = None) -> int:
    import loso

    from psdnet_qgis.training.scenes import VHR_LOSO, default_data_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=default_data_dir())
    ap.add_argument("--recipe", choices=sorted(loso.RECIPES), required=True)
    ap.add_argument("--held-out", default=",".join(VHR_LOSO))
    ap.add_argument("--jobs", type=int, default=1)
    a = ap.parse_args(argv)
    ns = argparse.Namespace(work=str(ROOT / "runs" / f"loso_{a.recipe}"), recipe=a.recipe, data=a.data,
                            threads=1, seed=0)
    held = [h for h in a.held_out.split(",") if h]
    with ThreadPoolExecutor(a.jobs) as pool:
        weights = dict(zip(held, pool.map(lambda h: loso.train_fold(ns, h, list(VHR_LOSO)), held), strict=True))
    out_path = Path(ns.work) / "base_study.json"
    res: dict[str, Any] = json.loads(out_path.read_text()) if out_path.exists() else {}
    for h in held:
        res[h] = score(weights[h], h, a.data)
        out_path.write_text(json.dumps(res, indent=1))
        print(h, flush=True)
        for k, v in res[h].items():
            print(f"  {k:44s} {v['ERGAS']:.4f} ({v['dERGAS_pct']:+.1f} %)  {v['SAM']:.4f} ({v['dSAM_pct']:+.1f} %)",
                  flush=True)
    print("mean against the best classical method, ERGAS / SAM:")
    for k in res[held[0]]:
        print(f"  {k:44s} {np.mean([res[h][k]['dERGAS_pct'] for h in held]):+.2f} % "
              f"{np.mean([res[h][k]['dSAM_pct'] for h in held]):+.2f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
