#!/usr/bin/env python3
"""Leave-one-scene-out check of the calibration's classical candidates.

Each held-out VHR scene is fused by its fold network (``runs/loso_<recipe>/held_<scene>/m.pt``,
trained without it) through the product path (``engine.run.pansharpen``, as ``make bench``
scores it: reduced resolution (Wald, the sensor's MTF) and full resolution), calibrated with
each candidate set in turn (``engine.calibration.CANDIDATES``).

Usage::

    python scripts/calibration_candidates_study.py --recipe fast8 \
        --sets mtf_glp_fs+mtf_glp_hpm,mtf_glp_fs+mtf_glp_hpm+bdsd_pc [--held-out a,b] [--adapt-seconds S]

Writes ``runs/calcand_<recipe>_<tag>.json`` (scene -> set -> ERGAS, SAM, HQNR, weights) and
prints one line per run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


def main(argv: list[str] | None = None) -> int:
    import bench_quality as bq

    import psdnet_qgis.engine.calibration as cal
    from psdnet_qgis.training.scenes import VHR_LOSO, default_data_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=default_data_dir())
    ap.add_argument("--recipe", default="fast8")
    ap.add_argument("--sets", default="mtf_glp_fs+mtf_glp_hpm", help="comma-separated; '+' joins a set")
    ap.add_argument("--held-out", default=",".join(VHR_LOSO))
    ap.add_argument("--tag", default="study")
    ap.add_argument("--adapt-seconds", type=float, default=0.0, help="scene adaptation budget of every run")
    ap.add_argument("--shared", action="store_true", help="one weight vector for all bands")
    a = ap.parse_args(argv)
    cal.SHARED = a.shared
    sets = [tuple(s.split("+")) for s in a.sets.split(",") if s]
    path = ROOT / "runs" / f"calcand_{a.recipe}_{a.tag}.json"
    out = json.loads(path.read_text()) if path.exists() else {}
    for held in [h for h in a.held_out.split(",") if h]:
        weights = ROOT / "runs" / f"loso_{a.recipe}" / f"held_{held}" / "m.pt"
        if not weights.exists():
            print(held, "no fold weights", weights, flush=True)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            sc = bq.prepare_scene("vhr4", a.data, Path(tmp), held)
            sensor = sc["spec"].sensor
            for cands in sets:
                name = "+".join(cands) + (f" adapt {a.adapt_seconds:g}" if a.adapt_seconds else "") + (
                    " shared" if a.shared else "")
                if name in out.get(held, {}):
                    continue
                cal.CANDIDATES = cands
                cals: list = []
                adapted: list = []
                t0 = time.time()
                rr, fr, _ = bq.score_method(
                    lambda p, m, o, k=cals, w=weights, s=sensor, ad=adapted: bq.run_engine(
                        "psdnet", p, m, o, model=str(w), sensor=s, calibrate=True, calibrations=k,
                        adapt_seconds=a.adapt_seconds, adaptations=ad), sc, name)
                row = {k: rr["metrics"][k] for k in ("ERGAS", "SAM")}
                row["HQNR"] = fr["metrics"]["HQNR"]
                row["weights"] = cals[0]["weights"] if cals else None
                row["candidates"] = cals[0]["candidates"] if cals else None
                row["adapted_kept"] = [bool(x.get("kept")) for x in adapted]
                out.setdefault(held, {})[name] = row
                print(held, name, {k: round(v, 4) for k, v in row.items() if k in ("ERGAS", "SAM", "HQNR")},
                      f"{time.time() - t0:.0f}s", flush=True)
                path.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
