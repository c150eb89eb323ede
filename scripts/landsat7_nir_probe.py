#!/usr/bin/env python3
"""Landsat 7 ETM+: does the PAN (0.52-0.90 um, covering the NIR band) give the NIR useful detail,
and could the 3-band network fuse the NIR? (issue 21; a measurement, not a test)

``python scripts/landsat7_nir_probe.py --data ../shared/data [PAIR ...]`` (needs scipy to read
the FuseBox ``.mat`` pairs: MS 400 x 400 x 6 uint8 in the order red, green, blue, NIR, SWIR 1,
SWIR 2; PAN 800 x 800).

Reduced resolution (Wald: the default MTF gains, the MTF table has none for ETM+), per pair:

* the 6-band MS described with its ETM+ band numbers ("B3", "B2", "B1", "B4", "B5", "B7") and the
  PAN named like an ETM+ product (``LE07_..._B8.TIF``: the run finds Landsat 7 ETM+): Auto's mixed
  run calibrated and uncalibrated, MTF-GLP-FS, EXP;
* green, red, NIR given to ``psdnet_landsat3`` as its blue, green, red (uncalibrated): what the
  network does to an NIR band.

Prints the per-band relative RMSE (%) against the original MS, averaged over the pairs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from osgeo import gdal  # noqa: E402

from psdnet_qgis.core import mtf  # noqa: E402
from psdnet_qgis.engine.run import pansharpen  # noqa: E402

gdal.UseExceptions()
NAMES = ("red", "green", "blue", "nir", "swir1", "swir2")
ETM_NUMBERS = ("B3", "B2", "B1", "B4", "B5", "B7")
PAN_NAME = "LE07_L1TP_195025_20010730_20170204_01_T1_B8.TIF"
ORIGIN = (500000.0, 5700000.0)


def _write(path: Path, data: np.ndarray, pixel: float, descriptions: tuple[str, ...] = ()) -> Path:
    c, h, w = data.shape
    ds = gdal.GetDriverByName("GTiff").Create(str(path), w, h, c, gdal.GDT_Float32)
    ds.SetGeoTransform((ORIGIN[0], pixel, 0.0, ORIGIN[1], 0.0, -pixel))
    for b in range(c):
        ds.GetRasterBand(b + 1).WriteArray(data[b].astype(np.float32))
        if descriptions:
            ds.GetRasterBand(b + 1).SetDescription(descriptions[b])
    ds = None
    return path


def _read(path: Path) -> np.ndarray:
    ds = gdal.Open(str(path))
    return ds.ReadAsArray().astype(np.float64).reshape(ds.RasterCount, ds.RasterYSize, ds.RasterXSize)


def _rel(fused: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return np.sqrt(((fused - ref) ** 2).mean(axis=(1, 2))) / ref.mean(axis=(1, 2)) * 100


def probe(folder: Path, pair: int, tmp: Path) -> dict[str, np.ndarray]:
    import scipy.io as sio

    ms = sio.loadmat(folder / f"{pair}_ms.mat")["cropped_im"].transpose(2, 0, 1).astype(np.float64)
    pan = sio.loadmat(folder / f"{pair}_pan.mat")["cropped_gray"][None].astype(np.float64)
    gains = mtf.gnyq_for(None, 6)
    work = tmp / str(pair)
    work.mkdir()
    lr = mtf.degrade(ms, gains.ms, 2)
    rr_pan = _write(work / PAN_NAME, mtf.degrade(pan, gains.pan, 2), 30.0)
    ms6 = _write(work / "ms6.tif", lr, 60.0, ETM_NUMBERS)
    gnr = _write(work / "gnr.tif", lr[[1, 0, 3]], 60.0)
    runs = {"mixed, calibrated": (ms6, {}), "mixed, uncalibrated": (ms6, {"calibrate": False}),
            "MTF-GLP-FS": (ms6, {"method": "mtf_glp_fs"}), "EXP": (ms6, {"method": "exp"}),
            "network on G, R, NIR": (gnr, {"model": "psdnet_landsat3", "calibrate": False})}
    out = {}
    for key, (src, kw) in runs.items():
        path = work / f"{len(out)}.tif"
        pansharpen(str(rr_pan), str(src), str(path), out_dtype="float32", device="cpu", **kw)
        out[key] = _rel(_read(path), ms if src == ms6 else ms[[1, 0, 3]])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="the shared data folder")
    ap.add_argument("pairs", type=int, nargs="*", default=[1, 6, 11, 16, 21, 26, 31, 36])
    args = ap.parse_args(argv)
    folder = args.data / "landsat7_fusebox_39"
    with tempfile.TemporaryDirectory() as tmp:
        rows = [probe(folder, k, Path(tmp)) for k in args.pairs]
    print(f"relative RMSE % (mean of pairs {', '.join(map(str, args.pairs))}), reduced resolution")
    for key in rows[0]:
        names = ("green", "red", "nir") if key.startswith("network") else NAMES
        mean = np.mean([r[key] for r in rows], axis=0)
        print(f"  {key}: " + ", ".join(f"{n} {v:.2f}" for n, v in zip(names, mean, strict=True)))
    better = sum(r["MTF-GLP-FS"][3] < r["EXP"][3] for r in rows)
    worse = sum(r["network on G, R, NIR"][2] > r["MTF-GLP-FS"][3] for r in rows)
    print(f"NIR: MTF-GLP-FS detail better than none in {better} of {len(rows)} pairs; the network's NIR worse "
          f"than MTF-GLP-FS's in {worse} of {len(rows)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
