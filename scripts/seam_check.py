#!/usr/bin/env python3
"""Seam check on real imagery: small tiles vs one whole tile, and their difference.

Usage: python scripts/seam_check.py [--data ../shared/data] [--out docs/seams.png]
Runs the bundled vhr4 model on SpaceNet 6 Rotterdam scene 2 (its validation scene) twice
through ``engine.run.pansharpen``: 40 MS px tiles (overlap 8, so 13 x 13 tiles) and one
tile covering the scene; writes [tiled | whole | |tiled - whole| x 20] as a PNG and prints
the difference statistics in band standard deviations.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "seams.png")
    args = ap.parse_args()
    from osgeo import gdal

    from psdnet_qgis.engine.assess.quicklook import percentiles, stretch
    from psdnet_qgis.engine.run import pansharpen

    gdal.UseExceptions()
    scene = args.data / "spacenet6_rotterdam_wv2_solaris"
    pan, ms = scene / "pan2.tif", scene / "ms2_native2m_derived.tif"
    with tempfile.TemporaryDirectory() as tmp:
        tiled, whole = Path(tmp) / "tiled.tif", Path(tmp) / "whole.tif"
        pansharpen(str(pan), str(ms), str(tiled), tile=40, overlap=8, out_dtype="float32")
        pansharpen(str(pan), str(ms), str(whole), tile=160, overlap=8, out_dtype="float32")
        a = gdal.Open(str(tiled)).ReadAsArray().astype(np.float64)
        b = gdal.Open(str(whole)).ReadAsArray().astype(np.float64)
    valid = (a[0] > 0) & (b[0] > 0)
    std = b[:, valid].std(axis=1)
    diff = np.abs(a - b)[:, valid] / std[:, None]
    print(f"tiled (40 MS px) vs whole: max {diff.max():.3f}, mean {diff.mean():.4f}, "
          f"99.9th pct {np.percentile(diff, 99.9):.3f} band std over {valid.sum()} px")
    rgb = [2, 1, 0]
    lo, hi = percentiles([a[rgb], b[rgb]])
    panels = [stretch(a[rgb], lo, hi), stretch(b[rgb], lo, hi)]
    d = np.abs(a - b)[rgb] / std[rgb, None, None] * 20.0
    panels.append(stretch(d, np.zeros(3), np.ones(3)))
    crop = (slice(None), slice(300, 600), slice(0, 300))  # the land part: 7 x 7 tile borders
    panels = [p[crop] for p in panels]
    white = np.full((3, panels[0].shape[1], 6), 255, np.uint8)
    canvas = np.concatenate([panels[0], white, panels[1], white, panels[2]], axis=2)
    mem = gdal.GetDriverByName("MEM").Create("", canvas.shape[2], canvas.shape[1], 3, gdal.GDT_Byte)
    for i in range(3):
        mem.GetRasterBand(i + 1).WriteArray(canvas[i])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    gdal.GetDriverByName("PNG").CreateCopy(str(args.out), mem)
    aux = args.out.with_name(args.out.name + ".aux.xml")
    if aux.exists():
        aux.unlink()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
