#!/usr/bin/env python3
"""`make demo`: pansharpen the embedded Landsat 8 demo scene (or your PAN/MS) and write a quicklook.

Default input: the Landsat 8 OLI scene LC08_L1TP_195025_20130707 (Marburg, Germany; public
domain USGS data) shipped in Debian's `r-cran-satellite` package: B2, B3, B4 (blue, green,
red, 30 m) and B8 (PAN, 15 m). The package is only downloaded and unpacked (no R install).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCENE = "LC08_L1TP_195025_20130707_20170503_01_T1"
EXTDATA = "usr/lib/R/site-library/satellite/extdata"
PREVIEW = 1000  # quicklook panels are at most this many pixels a side


def fetch_demo_scene(folder: Path) -> tuple[Path, Path]:
    """Return (pan, ms) of the embedded demo scene, unpacking r-cran-satellite when needed."""
    from osgeo import gdal

    gdal.UseExceptions()
    folder.mkdir(parents=True, exist_ok=True)
    bands = {b: folder / f"{SCENE}_{b}.TIF" for b in ("B2", "B3", "B4", "B8")}
    if not all(p.exists() for p in bands.values()):
        with tempfile.TemporaryDirectory() as tmp:
            cmd = ["apt-get", "download", "-o", "APT::Sandbox::User=root", "r-cran-satellite"]
            if subprocess.run(cmd, cwd=tmp).returncode != 0:
                subprocess.run(["apt-get", "update", "-q"], check=True)
                subprocess.run(cmd, cwd=tmp, check=True)
            deb = next(Path(tmp).glob("r-cran-satellite_*.deb"))
            subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "x")], check=True)
            for dest in bands.values():
                shutil.copy2(Path(tmp) / "x" / EXTDATA / dest.name, dest)
    ms = folder / "landsat8_B2_B3_B4.vrt"
    vrt = gdal.BuildVRT(str(ms), [str(bands[b]) for b in ("B2", "B3", "B4")], separate=True)
    for i, name in enumerate(("Blue", "Green", "Red"), start=1):
        vrt.GetRasterBand(i).SetDescription(name)
    vrt = None
    return bands["B8"], ms


def preview(path: Path, bounds, size: tuple[int, int]):
    """Read ``path`` resampled to the output grid's bounds at preview size, (C, h, w) float64."""
    from osgeo import gdal

    ds = gdal.Warp("", str(path), format="MEM", outputBounds=bounds, width=size[0], height=size[1],
                   resampleAlg="average")
    return ds.ReadAsArray().astype("float64").reshape(ds.RasterCount, size[1], size[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pan", type=Path, help="PAN raster (default: the embedded Landsat 8 scene)")
    ap.add_argument("--ms", type=Path, help="MS raster (default: the embedded Landsat 8 scene)")
    ap.add_argument("--out", type=Path, help="fused GeoTIFF (default: OUT_DIR/<name>_psdnet.tif)")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "build" / "demo")
    ap.add_argument("--model", default="auto")
    args = ap.parse_args()

    from osgeo import gdal

    from psdnet_qgis.engine.assess.quicklook import write_quicklook
    from psdnet_qgis.engine.feedback import TqdmFeedback
    from psdnet_qgis.engine.run import pansharpen
    from psdnet_qgis.errors import EXIT_INPUT, PSDNetError

    gdal.UseExceptions()
    out_dir = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    if (args.pan is None) != (args.ms is None):
        print("error: give both PAN=... and MS=..., or neither for the embedded demo scene", file=sys.stderr)
        return EXIT_INPUT
    if args.pan is None:
        pan, ms = fetch_demo_scene(out_dir / "data")
        name = "landsat8_marburg"
        print(f"demo scene: Landsat 8 {SCENE} (Debian package r-cran-satellite), PAN {pan.name}, MS B2-B4")
    else:
        pan, ms = args.pan, args.ms
        name = Path(ms).stem
    fused = args.out or out_dir / f"{name}_psdnet.tif"
    lms = out_dir / f"{name}_bicubic.tif"
    try:
        report = pansharpen(str(pan), str(ms), str(fused), model=args.model, feedback=TqdmFeedback())
        pansharpen(str(pan), str(ms), str(lms), method="exp", feedback=TqdmFeedback())
    except PSDNetError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INPUT
    ds = gdal.Open(str(fused))
    gt = ds.GetGeoTransform()
    bounds = (gt[0], gt[3] + gt[5] * ds.RasterYSize, gt[0] + gt[1] * ds.RasterXSize, gt[3])
    scale = min(1.0, PREVIEW / max(ds.RasterXSize, ds.RasterYSize))
    size = (max(1, round(ds.RasterXSize * scale)), max(1, round(ds.RasterYSize * scale)))
    rgb = tuple(report.rgb or (2, 1, 0))
    png = out_dir / f"{name}_quicklook.png"
    write_quicklook(png, preview(lms, bounds, size), preview(fused, bounds, size),
                    preview(pan, bounds, size)[:1], rgb=rgb)
    print(f"fused GeoTIFF: {fused}")
    print(f"quicklook (MS bicubic | PSDNet | PAN): {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
