#!/usr/bin/env python3
"""Scene adaptation, measured per budget and per loss on one scene a model never saw.

``make bench`` has one adapted row per model (the default budget on the validation scene).
This sweep answers what the issue asks beyond it: what each loss does alone, and what a
shorter or longer budget buys. The scene is prepared as in ``scripts/bench_quality.py``
(valid crop; reduced resolution = MTF-degraded pair, the original MS as reference; the
adaptation sees only the run's own inputs), every run goes through ``engine.run.pansharpen``
on GeoTIFFs, and ``engine.assess`` scores it.

Usage::

    python scripts/bench_adapt.py --weights runs/loso/shanghai_wv3_p0/m.pt --scene shanghai_wv3 \
        [--budgets 0,30,60,120,240] [--losses both,fullres,wald] [--part head] [--full-res 120]

Prints a markdown table (reduced resolution: SAM, ERGAS, Q2n and the change against budget 0;
adaptation steps, crops, kept or not); ``--full-res S`` adds the full-resolution HQNR of
budget 0 and budget S with the default losses.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_quality import prepare_scene, run_engine  # noqa: E402

from psdnet_qgis.core.options import ADAPT_LOSSES, ADAPT_PARTS  # noqa: E402
from psdnet_qgis.engine.assess.quality import assess  # noqa: E402
from psdnet_qgis.errors import PSDNetInputError  # noqa: E402


def _run(sc: dict, weights: str, budget: float, options: dict[str, Any], where: str, tmp: Path) -> dict:
    spec = sc["spec"]
    tag = f"{where}_{budget:g}_{'_'.join(str(v) for v in options.values())}"
    out = tmp / f"{tag}.tif"
    adapted: list[dict] = []
    seconds = run_engine("psdnet", sc[f"{where}_pan"], sc[f"{where}_ms"], out, model=weights, sensor=spec.sensor,
                         adapt_seconds=budget, adaptations=adapted, adapt_options=options if budget else None)
    ref = sc["rr_ref"] if where == "rr" else None
    m = assess(out, sc[f"{where}_pan"], sc[f"{where}_ms"], reference_path=ref, sensor=spec.sensor).metrics
    return {"where": where, "budget": budget, **options, "seconds": seconds, "metrics": m,
            "adaptation": adapted[0] if adapted else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True, help="model weights (.pt with its .json)")
    ap.add_argument("--scene", required=True, help="training.scenes.SCENES name")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--model", default="vhr4", help="model kind (ratio and bands of the scene)")
    ap.add_argument("--budgets", default="0,30,60,120,240")
    ap.add_argument("--losses", default=",".join(ADAPT_LOSSES))
    ap.add_argument("--runs", default="", metavar="S:LOSSES,...",
                    help="budget:losses pairs instead of the --budgets x --losses grid, e.g. 30:both,120:wald")
    ap.add_argument("--part", default=ADAPT_PARTS[0], choices=ADAPT_PARTS)
    ap.add_argument("--spatial-weight", type=float, default=None, help="AdaptConfig.spatial_weight (default 1)")
    ap.add_argument("--lr", type=float, default=None, help="AdaptConfig.lr (default 1e-3)")
    ap.add_argument("--full-res", type=float, default=0.0, metavar="S",
                    help="also run the full-resolution pair without and with S seconds (default losses)")
    ap.add_argument("--out", type=Path, default=None, help="JSON of every run (default: none)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if a.runs:
        runs = [(float(b), lo) for b, lo in (item.split(":") for item in a.runs.split(",") if item)]
    else:
        runs = [(float(b), lo) for b in a.budgets.split(",") if b and float(b) for lo in a.losses.split(",")]
    runs = [(0.0, "-"), *runs]
    extra = {k: v for k, v in (("spatial_weight", a.spatial_weight), ("lr", a.lr)) if v is not None}
    rows = []
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        sc = prepare_scene(a.model, a.data, tmp, scene=a.scene)
        for budget, losses in runs:
            try:
                rows.append(_run(sc, a.weights, budget,
                                 {"part": a.part, "losses": losses, **extra} if budget else {}, "rr", tmp))
            except PSDNetInputError as exc:  # e.g. Wald losses on a scene too small for them
                print(f"budget {budget:g} s, losses {losses}: not run: {exc}")
        if a.full_res:
            for budget in (0.0, a.full_res):
                rows.append(_run(sc, a.weights, budget,
                                 {"part": a.part, "losses": "both", **extra} if budget else {}, "fr", tmp))
    base = next(r for r in rows if r["where"] == "rr" and not r["budget"])["metrics"]
    print(f"{a.scene} (MS {sc['ms_size'][1]} x {sc['ms_size'][0]} px, reduced resolution), "
          f"{Path(a.weights).name}, part {a.part}" + "".join(f", {k} {v:g}" for k, v in extra.items()))
    print("| budget s | losses | SAM | ERGAS | Q2n | HQNR | steps | crops | kept |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        m, ad = r["metrics"], r["adaptation"] or {}
        if r["where"] == "rr":
            d_sam = 100 * (m["SAM"] / base["SAM"] - 1)
            d_erg = 100 * (m["ERGAS"] / base["ERGAS"] - 1)
            cols = (f"{m['SAM']:.3f} ({d_sam:+.1f} %)", f"{m['ERGAS']:.3f} ({d_erg:+.1f} %)", f"{m['Q2n']:.4f}", "")
        else:
            cols = ("full res.", "", "", f"{m['HQNR']:.4f}")
        print(f"| {r['budget']:g} | {r.get('losses', '-')} | " + " | ".join(cols) +
              f" | {ad.get('steps', '')} | {ad.get('train_crops', '')} | {ad.get('kept', '')} |")
    if a.out:
        a.out.write_text(json.dumps(rows, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
