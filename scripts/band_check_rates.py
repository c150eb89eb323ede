#!/usr/bin/env python3
"""How often ``core.bands.check_order`` refuses a right band order, and catches a wrong one.

Over every real scene of the shared data whose band order is known, crops of 32, 64 and 128
MS px (and the whole scene) are taken at many positions. For each crop the check gets

* the bands in their true order with their true names: "contradicted" is a **false refusal**
  (the engine would stop a correct run; target 0);
* the same names over the bands reversed, and over random permutations of the bands (the file's
  bands in another order than its descriptions or the assumed order say): "contradicted" is a
  detection (the engine refuses and names the fix), "inconclusive" a warning (the engine fuses
  with the claimed order and says it could not confirm it), "confirmed" a wrong order accepted
  without a warning (neighbouring bands swapped cannot be told apart, see ``core.bands``).

Usage::

    python scripts/band_check_rates.py [--data ../shared/data] [--sizes 32,64,128] [--positions 10]
        [--perms 10] [--seed 0]

Prints a markdown table, one row per scene and crop size.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import gdal

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from psdnet_qgis.core import bands  # noqa: E402

gdal.UseExceptions()

BGRN = ("blue", "green", "red", "nir1")
RGBN = ("red", "green", "blue", "nir1")


@dataclass(frozen=True)
class Scene:
    """A real MS whose band order is known: files (stacked in order), band names, nodata value."""

    name: str
    files: tuple[str, ...]
    names: tuple[str, ...]
    nodata: float | None
    note: str


#: The scenes of PROVENANCE.md whose band order is stated or verified (see each note).
SCENES = (
    Scene("shanghai_wv3", ("spacenet2_shanghai_wv3_torchsat/MUL_AOI_4_Shanghai_img1920.tif",),
          bands.WORLDVIEW8, None, "WorldView-3 8 bands (SpaceNet product order)"),
    *(Scene(f"rotterdam{i}_wv2", (f"spacenet6_rotterdam_wv2_solaris/ms{i}_native2m_derived.tif",),
            BGRN, 0.0, "WorldView-2 B,G,R,NIR (solaris tutorial), 32-39 % nodata in 2 and 3")
      for i in (1, 2, 3)),
    Scene("osman_vhr", ("osman_toolkit_vhr_0p5m/ms.tif",), BGRN, None,
          "unknown VHR sensor, B,G,R,NIR (provenance: probably; the model card's order)"),
    Scene("pleiades_gizeh", ("pleiades1b_gizeh_cnes/color1_low_res.tif",), RGBN, None,
          "Pleiades 1B, R,G,B,NIR (provenance: most likely; the pixels agree, see the report)"),
    Scene("landsat8_sattestdata", tuple(f"landsat8_sattestdata_full/l8_B{i}.tif" for i in range(1, 8)),
          ("coastal", "blue", "green", "red", "nir1", "swir1", "swir2"), 0.0,
          "Landsat 8 OLI B1-B7 (file names); SWIR bands are not used by the check"),
    Scene("pamplona_l8", ("landsat8_pamplona_pansharpen_r/ms_example.tif",), RGBN, None,
          "Landsat 8 R,G,B,NIR (the source tutorial)"),
    Scene("tiny_lc08", tuple(f"landsat_tiny_r_satellite/LC08_L1TP_195025_20130707_20170503_01_T1_B{i}.TIF"
                             for i in (2, 3, 4, 5)), BGRN, None, "Landsat 8 B2-B5, 41 x 41 px"),
    Scene("tiny_le07", tuple(f"landsat_tiny_r_satellite/LE07_L1TP_195025_20010730_20170204_01_T1_B{i}.TIF"
                             for i in (1, 2, 3, 4)), BGRN, None, "Landsat 7 B1-B4, 41 x 41 px"),
    Scene("virginia_l9", tuple(f"landsat9_virginia_mappykk/subset_band{i}_TOA.tif" for i in (2, 3, 4)),
          ("blue", "green", "red"), None, "Landsat 9 B2-B4 (file names), 3 bands"),
)


def load(data: Path, scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """(C, h, w) float64 MS and its (h, w) valid mask."""
    arrays = []
    for f in scene.files:
        ds = gdal.Open(str(data / f))
        a = ds.ReadAsArray().astype(np.float64)
        arrays.append(a.reshape(-1, ds.RasterYSize, ds.RasterXSize))
    ms = np.concatenate(arrays)
    valid = np.isfinite(ms).all(0)
    if scene.nodata is not None:
        valid &= ~(ms == scene.nodata).any(0)
    return ms, valid


def positions(size: int, extent: int, n: int) -> list[int]:
    """Up to ``n`` evenly spread crop origins along one axis (none when the crop does not fit)."""
    if size > extent:
        return []
    return sorted({int(round(v)) for v in np.linspace(0, extent - size, n)})


def wrong_orders(c: int, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``n`` random permutations of ``c`` bands, none of them the identity nor the reversal."""
    out: list[np.ndarray] = []
    ident, rev = np.arange(c), np.arange(c)[::-1]
    while len(out) < n:
        p = rng.permutation(c)
        if not (np.array_equal(p, ident) or np.array_equal(p, rev)):
            out.append(p)
    return out


def rates(ms: np.ndarray, valid: np.ndarray, names: tuple[str, ...], size: int | None, n_pos: int,
          n_perm: int, rng: np.random.Generator,
          check: Callable[..., bands.OrderCheck] = bands.check_order) -> dict[str, Counter] | None:
    """Verdict counts of the right order, the reversed one and random permutations over the crops."""
    c, h, w = ms.shape
    if size is None:
        boxes = [(0, 0, h, w)]
    else:
        boxes = [(r, q, size, size) for r in positions(size, h, n_pos) for q in positions(size, w, n_pos)]
    boxes = [b for b in boxes if valid[b[0]:b[0] + b[2], b[1]:b[1] + b[3]].any()]
    if not boxes:
        return None
    out = {"right": Counter(), "reversed": Counter(), "permuted": Counter(), "crops": Counter()}
    for r, q, hh, ww in boxes:
        crop, v = ms[:, r:r + hh, q:q + ww], valid[r:r + hh, q:q + ww]
        out["crops"]["n"] += 1
        out["right"][check(crop, names, v).verdict] += 1
        out["reversed"][check(crop[::-1], names, v).verdict] += 1
        for p in wrong_orders(c, n_perm, rng):
            out["permuted"][check(crop[p], names, v).verdict] += 1
    return out


def pct(counter: Counter, key: str) -> str:
    """Percentage of ``key`` among the counter's values."""
    n = sum(counter.values())
    return f"{100.0 * counter[key] / n:.1f}" if n else "-"


def main(argv: list[str] | None = None) -> int:
    """Print the table (markdown)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--sizes", default="32,64,128", help="crop sides in MS px (comma-separated)")
    ap.add_argument("--positions", type=int, default=10, help="crop origins per axis")
    ap.add_argument("--perms", type=int, default=10, help="random wrong orders per crop")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    sizes: list[int | None] = [int(s) for s in a.sizes.split(",") if s.strip()]
    rng = np.random.default_rng(a.seed)
    print(f"band_check_rates: {a.positions} x {a.positions} crop positions, reversed + {a.perms} random "
          f"wrong orders per crop, seed {a.seed}")
    print()
    print("| scene | bands | crop px | crops | right: refused % | right: confirmed % | right: inconclusive % "
          "| reversed: refused % | permuted: refused % | permuted: warned % | permuted: accepted % |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    totals: dict[str, Counter] = {k: Counter() for k in ("right", "reversed", "permuted")}
    for scene in SCENES:
        ms, valid = load(a.data, scene)
        for size in [*sizes, None]:
            res = rates(ms, valid, scene.names, size, a.positions, a.perms, rng)
            if res is None:
                continue
            for k in totals:
                totals[k].update(res[k])
            label = "whole" if size is None else str(size)
            print(f"| {scene.name} | {ms.shape[0]} | {label} | {res['crops']['n']} "
                  f"| {pct(res['right'], 'contradicted')} | {pct(res['right'], 'confirmed')} "
                  f"| {pct(res['right'], 'inconclusive')} | {pct(res['reversed'], 'contradicted')} "
                  f"| {pct(res['permuted'], 'contradicted')} | {pct(res['permuted'], 'inconclusive')} "
                  f"| {pct(res['permuted'], 'confirmed')} |")
    t = totals
    print(f"| **all** | | | {sum(t['right'].values())} | {pct(t['right'], 'contradicted')} "
          f"| {pct(t['right'], 'confirmed')} | {pct(t['right'], 'inconclusive')} "
          f"| {pct(t['reversed'], 'contradicted')} | {pct(t['permuted'], 'contradicted')} "
          f"| {pct(t['permuted'], 'inconclusive')} | {pct(t['permuted'], 'confirmed')} |")
    print()
    for scene in SCENES:
        print(f"- {scene.name}: {scene.note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
