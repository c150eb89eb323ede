"""Seeded generator of small, georeferenced PAN + MS GeoTIFF pairs for the tests.

The scene is synthetic but physically shaped: a high-resolution multiband field (smooth
random texture plus sharp-edged "buildings"), whose band mean is the PAN and whose
block average over ratio x ratio pixels is the MS, so PAN and MS agree like a real pair.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from osgeo import gdal, osr

gdal.UseExceptions()

#: Upper-left corner (m, a UTM-like CRS) of the generated rasters.
ORIGIN = (500000.0, 5700000.0)
#: The WorldView 8-band positions (0-based) of the 4-band models' blue, green, red, NIR1.
NET_BANDS = [1, 2, 4, 6]
#: The USGS product name of the generated Landsat 8 band files (:func:`write_landsat`).
PRODUCT = "LC08_L1TP_195025_20130707_20170503_01_T1"
#: Float32 outputs of values up to 15000 (Landsat DN scale): the network's bands of a mixed run
#: and of a 3-band run go through the same network on the same normalised pixels, and the other
#: bands through the same classical method; what differs is float rounding through the two
#: normalisations (measured: at most 0.002 DN).
SAME = 0.05

GDAL_TYPES = {"uint8": gdal.GDT_Byte, "uint16": gdal.GDT_UInt16, "int16": gdal.GDT_Int16,
              "float32": gdal.GDT_Float32, "float64": gdal.GDT_Float64}


def synthetic_scene(ms_shape: tuple[int, int], bands: int, ratio: int, seed: int = 0,
                    max_value: float = 2047.0) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(pan (1, H, W), ms (bands, h, w))`` float64 in [0, max_value]."""
    rng = np.random.default_rng(seed)
    h, w = ms_shape
    H, W = h * ratio, w * ratio
    yy, xx = np.mgrid[0:H, 0:W] / max(H, W)
    hr = np.empty((bands, H, W))
    for b in range(bands):
        f = sum(rng.uniform(0.2, 1.0) * np.sin(2 * np.pi * (rng.uniform(1, 6) * xx + rng.uniform(1, 6) * yy)
                                             + rng.uniform(0, 6.3)) for _ in range(3))
        hr[b] = 0.5 + 0.12 * f
    for _ in range(max(2, H * W // 1500)):  # sharp rectangles: the detail PAN must bring
        y0, x0 = rng.integers(0, H - 4), rng.integers(0, W - 4)
        dy, dx = rng.integers(2, max(3, H // 6)), rng.integers(2, max(3, W // 6))
        hr[:, y0:y0 + dy, x0:x0 + dx] = rng.uniform(0.1, 0.95, size=(bands, 1, 1))
    hr = np.clip(hr, 0, 1) * max_value
    pan = hr.mean(axis=0, keepdims=True)
    ms = hr.reshape(bands, h, ratio, w, ratio).mean(axis=(2, 4))
    return pan, ms


def write_geotiff(path: Path, data: np.ndarray, origin: tuple[float, float], pixel: float,
                  epsg: int | None = 32631, dtype: str = "uint16", nodata: float | None = None) -> Path:
    """Write ``data`` (C, H, W) as a north-up GeoTIFF with top-left corner ``origin``."""
    path = Path(path)
    c, h, w = data.shape
    ds = gdal.GetDriverByName("GTiff").Create(str(path), w, h, c, GDAL_TYPES[dtype])
    ds.SetGeoTransform((origin[0], pixel, 0.0, origin[1], 0.0, -pixel))
    if epsg is not None:
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(epsg)
        ds.SetProjection(srs.ExportToWkt())
    for b in range(c):
        band = ds.GetRasterBand(b + 1)
        arr = data[b]
        if np.dtype(dtype).kind in "iu":
            arr = np.rint(arr)
        band.WriteArray(arr.astype(dtype))
        if nodata is not None:
            band.SetNoDataValue(nodata)
    ds = None
    return path


def make_pair(folder: Path, *, ms_shape: tuple[int, int] = (40, 48), bands: int = 4, ratio: int = 4,
              pan_pixel: float = 0.5, dtype: str = "uint16", seed: int = 0, epsg: int | None = 32631,
              origin: tuple[float, float] = (500000.0, 5700000.0), name: str = "scene") -> tuple[Path, Path]:
    """Write ``<name>_pan.tif`` and ``<name>_ms.tif`` (same footprint) into ``folder``."""
    pan, ms = synthetic_scene(ms_shape, bands, ratio, seed)
    folder = Path(folder)
    pan_path = write_geotiff(folder / f"{name}_pan.tif", pan, origin, pan_pixel, epsg, dtype)
    ms_path = write_geotiff(folder / f"{name}_ms.tif", ms, origin, pan_pixel * ratio, epsg, dtype)
    return pan_path, ms_path


#: Relative haze (path radiance) of the 8 WorldView bands, coastal to NIR2: falls with wavelength.
_HAZE8 = (0.30, 0.26, 0.20, 0.16, 0.12, 0.08, 0.04, 0.03)
#: Weight of the vegetation field per band: low in the visible, a step at the red edge, high in the NIR.
_VEG8 = (0.02, 0.03, 0.08, 0.05, 0.02, 0.35, 0.60, 0.55)


def worldview8_scene(ms_shape: tuple[int, int], ratio: int, seed: int = 0,
                     max_value: float = 2047.0) -> tuple[np.ndarray, np.ndarray]:
    """An 8-band MS (coastal .. NIR2) with what real WorldView scenes show: haze falling with
    wavelength and a vegetation field that only the red edge and NIR bands see. Returns
    ``(pan (1, H, W), ms (8, h, w))`` float64 like :func:`synthetic_scene`."""
    tex, _ = synthetic_scene(ms_shape, 1, ratio, seed, max_value=1.0)  # (1, H, W) detail field
    veg, _ = synthetic_scene(ms_shape, 1, ratio, seed + 1, max_value=1.0)
    rng = np.random.default_rng(seed + 2)
    h, w = ms_shape
    H, W = h * ratio, w * ratio
    tex_hr, veg_hr = tex[0], veg[0]
    hr = np.empty((8, H, W))
    for b in range(8):
        # shadows and water (dark texture) are dark in every band, the vegetation field included
        hr[b] = (_HAZE8[b] + 0.45 * (1 - _VEG8[b]) * tex_hr + _VEG8[b] * veg_hr * np.sqrt(tex_hr)
                 + rng.normal(0, 0.003, (H, W)))
    hr = np.clip(hr, 0, 1) * max_value
    pan = hr[1:6].mean(axis=0, keepdims=True)  # WorldView PAN: about 450-800 nm
    ms = hr.reshape(8, h, ratio, w, ratio).mean(axis=(2, 4))
    return pan, ms


#: Landsat 8/9 OLI bands 1-7 (coastal, blue, green, red, NIR, SWIR 1, SWIR 2) of :func:`landsat_scene`.
LANDSAT7 = ("coastal", "blue", "green", "red", "nir", "swir1", "swir2")
#: Relative haze of those bands: falls with wavelength (almost none in the SWIR).
_HAZE_L = (0.30, 0.26, 0.20, 0.14, 0.06, 0.03, 0.02)
#: Weight of the vegetation field: high in the NIR, some in SWIR 1, little in the visible.
_VEG_L = (0.02, 0.03, 0.08, 0.02, 0.60, 0.25, 0.10)


def landsat_scene(ms_shape: tuple[int, int], ratio: int = 2, seed: int = 0,
                  max_value: float = 20000.0) -> tuple[np.ndarray, np.ndarray]:
    """A 7-band Landsat 8 MS (bands 1-7) shaped like :func:`worldview8_scene` (haze falling with
    wavelength, vegetation seen by the NIR), with the OLI PAN (about 500-680 nm: green and red, a
    little blue). Returns ``(pan (1, H, W), ms (7, h, w))`` float64."""
    tex, _ = synthetic_scene(ms_shape, 1, ratio, seed, max_value=1.0)
    veg, _ = synthetic_scene(ms_shape, 1, ratio, seed + 1, max_value=1.0)
    rng = np.random.default_rng(seed + 2)
    h, w = ms_shape
    H, W = h * ratio, w * ratio
    hr = np.empty((7, H, W))
    for b in range(7):
        hr[b] = (_HAZE_L[b] + 0.45 * (1 - _VEG_L[b]) * tex[0] + _VEG_L[b] * veg[0] * np.sqrt(tex[0])
                 + rng.normal(0, 0.003, (H, W)))
    hr = np.clip(hr, 0, 1) * max_value
    pan = (0.2 * hr[1] + 0.4 * hr[2] + 0.4 * hr[3])[None]
    ms = hr.reshape(7, h, ratio, w, ratio).mean(axis=(2, 4))
    return pan, ms


def write_worldview(folder: Path, bands: Sequence[int] = range(8), descriptions: Sequence[str] | None = None,
                    name: str = "wv8", ms_shape: tuple[int, int] = (24, 28), seed: int = 5,
                    origin: tuple[float, float] = (500000.0, 5700000.0)) -> tuple[Path, Path]:
    """Write a ratio-4 pair from :func:`worldview8_scene`: PAN 0.5 m, the MS ``bands`` (0-based, in
    that order) at 2 m, with ``descriptions`` as band descriptions when given."""
    pan, ms = worldview8_scene(ms_shape, 4, seed=seed)
    folder = Path(folder)
    p = write_geotiff(folder / f"{name}_pan.tif", pan, origin, 0.5)
    m = write_geotiff(folder / f"{name}_ms.tif", ms[list(bands)], origin, 2.0)
    if descriptions:
        ds = gdal.Open(str(m), gdal.GA_Update)
        for b, d in enumerate(descriptions, 1):
            ds.GetRasterBand(b).SetDescription(d)
        ds = None
    return p, m


def write_landsat(folder: Path, shape: tuple[int, int] = (48, 48), seed: int = 4) -> dict[str, Path]:
    """Band files B1-B7 + B8 (PAN) named like a USGS product, VRT stacks of B2-B4, B2-B5, B1-B7,
    and a 4-band GeoTIFF of B2-B5 named ``ms4`` (no product name) with "SR_B2" .. descriptions."""
    pan, ms = landsat_scene(shape, 2, seed=seed)
    out = {"pan": write_geotiff(folder / f"{PRODUCT}_B8.TIF", pan, ORIGIN, 15.0)}
    files = [write_geotiff(folder / f"{PRODUCT}_B{b}.TIF", ms[b - 1:b], ORIGIN, 30.0) for b in range(1, 8)]
    for name, idx in (("ms3", [2, 3, 4]), ("ms4", [2, 3, 4, 5]), ("ms7", list(range(1, 8)))):
        out[name] = folder / f"{name}.vrt"
        gdal.BuildVRT(str(out[name]), [str(files[b - 1]) for b in idx], separate=True)
    out["ms4_tif"] = write_geotiff(folder / "ms4.tif", ms[1:5], ORIGIN, 30.0)
    ds = gdal.Open(str(out["ms4_tif"]), gdal.GA_Update)
    for b in range(4):
        ds.GetRasterBand(b + 1).SetDescription(f"SR_B{b + 2}")
    ds = None
    return out


#: (MAT-file data type, MATLAB array class) of the numpy types :func:`write_mat` writes.
_MAT_CODES = {np.dtype("uint8"): (2, 9), np.dtype("uint16"): (4, 11), np.dtype("float64"): (9, 6)}


def write_mat(path: Path, name: str, arr: np.ndarray, compress: bool = True) -> None:
    """A MATLAB 5 MAT-file holding one real numeric array (the form of the FuseBox files)."""
    typ, cls = _MAT_CODES[arr.dtype]

    def element(t: int, data: bytes) -> bytes:
        return struct.pack("<II", t, len(data)) + data + b"\0" * (-len(data) % 8)

    body = (element(6, struct.pack("<II", cls, 0)) + element(5, np.array(arr.shape, "<i4").tobytes())
            + element(1, name.encode()) + element(typ, arr.tobytes(order="F")))
    mat = struct.pack("<II", 14, len(body)) + body
    if compress:
        z = zlib.compress(mat)
        mat = struct.pack("<II", 15, len(z)) + z
    header = b"MATLAB 5.0 MAT-file, written by tests/rasters.py".ljust(116) + bytes(8) + struct.pack("<H", 0x0100)
    path.write_bytes(header + b"IM" + mat)
