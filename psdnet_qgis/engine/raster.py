"""Input rasters and their grids for the tiled engine (GDAL + numpy; never torch, never qgis).

What this module decides:

* **Output grid** = the PAN pixel grid, restricted to the intersection of the PAN and MS
  footprints, trimmed to a whole number of MS working pixels (``ratio`` PAN px a side).
* **MS working grid** = pixel size ``ratio * pan_px``, origin = output origin, so MS
  working pixel (i, j) covers output PAN pixels [i*r, (i+1)*r) x [j*r, (j+1)*r)
  (the ARCHITECTURE.md "area" convention).
* **MS read by georeference**: when the MS raster's own pixels coincide with the working
  grid (same CRS, pixel size ``ratio * pan_px``, corners on PAN pixel corners) windows are
  read straight from it; otherwise (Landsat: PAN half a PAN pixel off the MS grid; another
  CRS; rotated MS) it is read through an in-memory GDAL warped VRT (cubic) onto the working
  grid, with an alpha band giving validity.
* **Ratio** = MS pixel size / PAN pixel size, rounded when within 2 %, an error otherwise.
  When the MS is in another CRS than the PAN, its pixel size is its *ground* pixel size in
  the PAN's CRS (:func:`ground_pixel`: the footprint diagonal in the PAN's units over the
  diagonal in pixels, the size ``gdalwarp -t_srs`` gives it by default), so an MS
  reprojected to EPSG:4326 over a UTM PAN keeps its ratio; the 2 % rule is the same.

Every problem with the inputs raises :class:`~psdnet_qgis.errors.PSDNetInputError` naming
the input and the fix, before any pixel is processed.
The output file is :mod:`psdnet_qgis.engine.output`'s.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from osgeo import gdal, osr

from psdnet_qgis.core import grid
from psdnet_qgis.core.grid import ALIGN_TOLERANCE_PX, RATIO_TOLERANCE
from psdnet_qgis.core.validity import valid_pixels
from psdnet_qgis.engine.gdalerr import first_line as _first_line
from psdnet_qgis.errors import PSDNetInputError

#: Smallest usable intersection, in MS working pixels a side.
MIN_MS_PIXELS = 4


def open_raster(path: str, name: str) -> gdal.Dataset:
    """Open ``path`` read-only or raise a PSDNetInputError naming ``name``."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise PSDNetInputError(f"{name} input: no file given; choose a raster file.")
    path = os.fspath(path)
    if not os.path.exists(path) and not path.startswith("/vsi"):
        raise PSDNetInputError(f"{name} input '{path}' does not exist: check the path.")
    try:
        ds = gdal.Open(path, gdal.GA_ReadOnly)
    except RuntimeError as exc:
        raise PSDNetInputError(
            f"{name} input '{path}' cannot be opened as a raster (corrupt, truncated or "
            f"unsupported format: {_first_line(exc)}); re-export it as GeoTIFF."
        ) from None
    if ds is None or ds.RasterCount == 0:
        raise PSDNetInputError(
            f"{name} input '{path}' holds no raster band; choose an image file."
        )
    return ds


def _check_dtype(ds: gdal.Dataset, name: str, path: str) -> None:
    dt = ds.GetRasterBand(1).DataType
    if gdal.DataTypeIsComplex(dt):
        raise PSDNetInputError(
            f"{name} input '{path}' has complex pixels ({gdal.GetDataTypeName(dt)}); "
            "pansharpening needs real-valued radiance/reflectance: convert it to a real type "
            "(e.g. gdal_translate -ot Float32 of the amplitude)."
        )


def _check_readable(ds: gdal.Dataset, name: str, path: str, bands: Sequence[int]) -> None:
    """Read the first and last row of each band: catches truncated files before any work."""
    w, h = ds.RasterXSize, ds.RasterYSize
    try:
        for b in bands:
            band = ds.GetRasterBand(b)
            band.ReadAsArray(0, 0, w, 1)
            band.ReadAsArray(0, h - 1, w, 1)
    except (RuntimeError, ValueError, AttributeError) as exc:
        raise PSDNetInputError(
            f"{name} input '{path}' cannot be read ({_first_line(exc)}): the file is "
            "truncated or corrupt; copy or download it again."
        ) from None


def dataset_srs(ds: gdal.Dataset) -> osr.SpatialReference | None:
    """The dataset's CRS, or None when it has none (or an empty one)."""
    srs = ds.GetSpatialRef()
    if srs is None:
        return None
    srs = srs.Clone()
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def _nodata(band: gdal.Band) -> float | None:
    v = band.GetNoDataValue()
    return None if v is None else float(v)


@dataclass
class RasterInputs:
    """Validated, opened inputs and the grids derived from them.

    Attributes (PAN px unless stated):
        pan_path, ms_path: the input paths.
        ratio: integer MS/PAN resolution ratio.
        pan_band: 1-based PAN band used.
        pan_xoff, pan_yoff: output window origin inside the PAN raster.
        width, height: output size (multiples of ``ratio``).
        ms_width, ms_height: MS working grid size (MS px) = width / ratio, height / ratio.
        ms_xoff, ms_yoff: working grid origin inside the MS source (MS px; 0 when warped).
        bands: number of MS bands (C).
        geotransform, crs_wkt: output georeference (PAN grid).
        ms_warped: True when the MS is read through a warped VRT.
        warp_reason: why it is warped (for the feedback line).
        ms_dtype: GDAL data type of the MS (default output type).
        pan_nodata, ms_nodata: nodata values (None when unset).
        descriptions: MS band descriptions (may be empty strings).
    """

    pan_path: str
    ms_path: str
    pan_ds: gdal.Dataset
    ms_ds: gdal.Dataset
    ratio: int
    pan_band: int
    pan_xoff: int
    pan_yoff: int
    width: int
    height: int
    ms_width: int
    ms_height: int
    ms_xoff: int
    ms_yoff: int
    bands: int
    geotransform: tuple[float, ...]
    crs_wkt: str
    ms_warped: bool
    warp_reason: str
    ms_dtype: int
    pan_nodata: float | None
    ms_nodata: float | None
    descriptions: list[str] = field(default_factory=list)
    ms_src: gdal.Dataset | None = None  # the MS dataset actually read (VRT when warped)
    ms_alpha: int = 0  # alpha band index in ms_src (0 = none)

    # ------------------------------------------------------------------ block cache
    def tile_row_cache_bytes(self, ms_rows: int, ms_cols: int) -> int:
        """Bytes of GDAL block cache that hold the input blocks of one tile row.

        A tile of ``ms_rows`` x ``ms_cols`` MS px (margins included) is read from every block it
        touches; the next tile of the row shares some of them. A striped file's blocks span
        the whole width (the tile row's strips), a tiled file's a tile and a block each side;
        never more than the whole raster.
        """
        def need(ds: gdal.Dataset, bands: list[int], rows: int, cols: int, width: int) -> int:
            total = 0
            for b in bands:
                band = ds.GetRasterBand(b)
                bw, bh = band.GetBlockSize()
                span = width if bw >= width // 2 else min(width, cols + 2 * bw)
                total += min(rows + 2 * bh, ds.RasterYSize) * span * gdal.GetDataTypeSize(band.DataType) // 8
            return total

        r = self.ratio
        ms = self.ms_src if self.ms_src is not None else self.ms_ds
        pan = need(self.pan_ds, [self.pan_band], ms_rows * r, ms_cols * r, self.pan_ds.RasterXSize)
        return pan + need(ms, list(range(1, self.bands + 1)), ms_rows, ms_cols, ms.RasterXSize)

    # ------------------------------------------------------------------ reads
    def _ms_window(self, row0: int, col0: int, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
        """Read working-grid MS pixels [row0, row0+rows) x [col0, col0+cols) (inside the grid).

        Returns:
            ms (C, rows, cols) float32 and valid (rows, cols) bool (all bands valid).
        """
        src = self.ms_src
        assert src is not None
        x, y = self.ms_xoff + col0, self.ms_yoff + row0
        arr = src.ReadAsArray(x, y, cols, rows, band_list=list(range(1, self.bands + 1)))
        arr = np.asarray(arr, dtype=np.float32).reshape(self.bands, rows, cols)
        valid = valid_pixels(arr, self.ms_nodata)
        if self.ms_alpha:
            alpha = src.GetRasterBand(self.ms_alpha).ReadAsArray(x, y, cols, rows)
            valid &= alpha >= 128
        return arr, valid

    def _pan_window(self, row0: int, col0: int, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
        """Read output-grid PAN pixels (inside the grid). Returns (1, rows, cols), valid (rows, cols)."""
        band = self.pan_ds.GetRasterBand(self.pan_band)
        arr = band.ReadAsArray(self.pan_xoff + col0, self.pan_yoff + row0, cols, rows)
        arr = np.asarray(arr, dtype=np.float32)[None]
        valid = valid_pixels(arr, self.pan_nodata)
        return arr, valid

    def read_ms(self, row0: int, col0: int, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
        """MS working-grid window that may reach past the grid: reflection-padded there.

        Args:
            row0, col0: window origin in MS working px (may be negative).
            rows, cols: window size in MS px.

        Returns:
            ms (C, rows, cols) float32, valid (rows, cols) bool.
        """
        return _padded_read(self._ms_window, self.ms_height, self.ms_width, row0, col0, rows, cols)

    def read_pan(self, row0: int, col0: int, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
        """PAN window on the output grid, reflection-padded past it. Returns (1, rows, cols), valid."""
        return _padded_read(self._pan_window, self.height, self.width, row0, col0, rows, cols)

    def read_tile(self, row0: int, col0: int, rows: int, cols: int, margin: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """MS px [row0, row0+rows) x [col0, col0+cols) with ``margin`` MS px of context on every
        side, and the PAN px under them: (ms, ms_valid, pan, pan_valid) as :meth:`read_ms` and
        :meth:`read_pan` give them. A failed read raises PSDNetInputError naming both inputs."""
        r, m = self.ratio, int(margin)
        try:
            ms, ms_v = self.read_ms(row0 - m, col0 - m, rows + 2 * m, cols + 2 * m)
            pan, pan_v = self.read_pan((row0 - m) * r, (col0 - m) * r, (rows + 2 * m) * r, (cols + 2 * m) * r)
        except RuntimeError as exc:
            raise PSDNetInputError(
                f"Inputs '{self.pan_path}' / '{self.ms_path}': read failed at MS row {row0}, col {col0} "
                f"({_first_line(exc)}); the file is damaged: copy it again.") from None
        return ms, ms_v, pan, pan_v

    def valid_rows(self, row0: int, rows: int) -> np.ndarray | None:
        """Output validity for PAN rows [row0, row0+rows): (rows, width) bool, None if all valid."""
        return self.valid_window(row0, 0, rows, self.width)

    def valid_window(self, row0: int, col0: int, rows: int, cols: int) -> np.ndarray | None:
        """Output validity of PAN px [row0, row0+rows) x [col0, col0+cols) (inside the grid):
        (rows, cols) bool, None if all valid.

        A pixel is invalid when its PAN pixel or the MS working pixel covering it is
        nodata/NaN in any band (or outside the warped MS footprint).
        """
        if not self.has_nodata:
            return None
        r = self.ratio
        _, pv = self._pan_window(row0, col0, rows, cols)
        m0, m1 = row0 // r, (row0 + rows - 1) // r + 1
        n0, n1 = col0 // r, (col0 + cols - 1) // r + 1
        _, mv = self._ms_window(m0, n0, m1 - m0, n1 - n0)
        mv = np.repeat(np.repeat(mv, r, axis=0), r, axis=1)
        return pv & mv[row0 - m0 * r: row0 - m0 * r + rows, col0 - n0 * r: col0 - n0 * r + cols]

    @property
    def has_nodata(self) -> bool:
        """True when any output pixel may be invalid (nodata set, float data, warped MS)."""
        float_types = (gdal.GDT_Float32, gdal.GDT_Float64)
        return (
            self.pan_nodata is not None
            or self.ms_nodata is not None
            or bool(self.ms_alpha)
            or self.pan_ds.GetRasterBand(self.pan_band).DataType in float_types
            or self.ms_dtype in float_types
        )

    def read_sample(self, max_side: int = 1024) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Decimated read of the whole intersection for global statistics.

        GDAL picks overviews when present, else nearest-neighbour subsampling; the buffer is
        at most ``max_side`` a side, so memory stays bounded whatever the raster size.

        Returns:
            ms (C, hs, ws), pan (1, Hs, Ws) float32 and their validity masks (hs, ws), (Hs, Ws).
        """
        def buf(w: int, h: int) -> tuple[int, int]:
            s = min(1.0, max_side / max(w, h))
            return max(1, int(round(w * s))), max(1, int(round(h * s)))

        src = self.ms_src
        assert src is not None
        bw, bh = buf(self.ms_width, self.ms_height)
        ms = np.asarray(src.ReadAsArray(self.ms_xoff, self.ms_yoff, self.ms_width, self.ms_height,
                                        buf_xsize=bw, buf_ysize=bh,
                                        band_list=list(range(1, self.bands + 1))), dtype=np.float32)
        ms = ms.reshape(self.bands, bh, bw)
        ms_valid = valid_pixels(ms, self.ms_nodata)
        if self.ms_alpha:
            a = src.GetRasterBand(self.ms_alpha).ReadAsArray(
                self.ms_xoff, self.ms_yoff, self.ms_width, self.ms_height, buf_xsize=bw, buf_ysize=bh)
            ms_valid &= a >= 128
        pw, ph = buf(self.width, self.height)
        pan = self.pan_ds.GetRasterBand(self.pan_band).ReadAsArray(
            self.pan_xoff, self.pan_yoff, self.width, self.height, buf_xsize=pw, buf_ysize=ph)
        pan = np.asarray(pan, dtype=np.float32)[None]
        pan_valid = valid_pixels(pan, self.pan_nodata)
        return ms, pan, ms_valid, pan_valid

    def close(self) -> None:
        """Drop GDAL handles (idempotent)."""
        self.ms_src = None
        self.pan_ds = None
        self.ms_ds = None


def _padded_read(reader, height: int, width: int, row0: int, col0: int, rows: int, cols: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Read the in-grid part of a window and reflection-pad the rest (``numpy.pad`` reflect)."""
    r0, r1 = max(row0, 0), min(row0 + rows, height)
    c0, c1 = max(col0, 0), min(col0 + cols, width)
    arr, valid = reader(r0, c0, r1 - r0, c1 - c0)
    pads = ((r0 - row0, row0 + rows - r1), (c0 - col0, col0 + cols - c1))
    if any(p for pair in pads for p in pair):
        # reflect needs >= 2 samples on an axis; a 1-pixel axis is replicated instead
        mode: Literal["reflect", "edge"] = "reflect" if min(arr.shape[-2:]) > 1 else "edge"
        arr = np.pad(arr, ((0, 0),) + pads, mode=mode)
        valid = np.pad(valid, pads, mode=mode)
    return arr, valid


def _ratio(ms_px: float, pan_px: float, axis: str, ms_path: str, pan_path: str) -> int:
    raw = ms_px / pan_px
    if raw < 1.0 - RATIO_TOLERANCE:
        raise PSDNetInputError(
            f"MS input '{ms_path}' has smaller pixels ({ms_px:.6g}) than PAN input "
            f"'{pan_path}' ({pan_px:.6g}) along {axis}: the inputs look swapped; give the "
            "panchromatic image as PAN and the multispectral image as MS."
        )
    r = int(round(raw))
    if r < 2 or abs(raw - r) > RATIO_TOLERANCE * r:
        raise PSDNetInputError(
            f"MS input '{ms_path}': pixel size ratio MS/PAN along {axis} is {raw:.4f}, not an "
            f"integer >= 2 within {RATIO_TOLERANCE:.0%}; resample the MS to an integer multiple "
            "of the PAN pixel size (e.g. gdalwarp -tr) or check that PAN and MS belong together."
        )
    return r


def _footprint(ds: gdal.Dataset, to_srs: osr.SpatialReference | None,
               from_srs: osr.SpatialReference | None) -> tuple[float, float, float, float]:
    """Bounding box (xmin, ymin, xmax, ymax) of ``ds`` in ``to_srs`` (edges densified)."""
    gt = ds.GetGeoTransform()
    w, h = ds.RasterXSize, ds.RasterYSize
    n = 21
    t = np.linspace(0.0, 1.0, n)
    px = np.concatenate([t * w, np.full(n, w), t[::-1] * w, np.zeros(n)])
    py = np.concatenate([np.zeros(n), t * h, np.full(n, h), t[::-1] * h])
    x = gt[0] + px * gt[1] + py * gt[2]
    y = gt[3] + px * gt[4] + py * gt[5]
    if to_srs is not None and from_srs is not None and not to_srs.IsSame(from_srs):
        ct = osr.CoordinateTransformation(from_srs, to_srs)
        pts = ct.TransformPoints(list(zip(x.tolist(), y.tolist(), strict=True)))
        arr = np.array([p[:2] for p in pts], dtype=np.float64)
        arr = arr[np.isfinite(arr).all(axis=1)]
        x, y = arr[:, 0], arr[:, 1]
    return float(x.min()), float(y.min()), float(x.max()), float(y.max())


def crs_label(srs: osr.SpatialReference | None) -> str:
    """A short name of a CRS for messages: ``EPSG:4326`` (also when only recognised as such),
    else its name, else "a custom CRS"."""
    if srs is None:
        return "no CRS"
    srs = srs.Clone()
    if not srs.GetAuthorityCode(None):
        try:
            srs.AutoIdentifyEPSG()
        except RuntimeError:  # not recognised: keep the name
            pass
    auth, code = srs.GetAuthorityName(None), srs.GetAuthorityCode(None)
    if auth and code:
        return f"{auth}:{code}"
    name = srs.GetName()
    return name if name and name.lower() != "unknown" else "a custom CRS"


def crs_units(srs: osr.SpatialReference) -> str:
    """The CRS's unit for messages: "m", "ft", "°" or the unit's own name."""
    if srs.IsGeographic():
        return "°"
    name = (srs.GetLinearUnitsName() or "").lower()
    if name in ("metre", "meter", "m", "metres", "meters"):
        return "m"
    if name in ("foot", "feet", "international foot", "ft"):
        return "ft"
    if "us survey foot" in name or name == "us-ft":
        return "US ft"
    return name or "units"


def _num(v: float) -> str:
    """A size for messages: 4 significant digits, no trailing zeros ("2", "0.5", "2.005")."""
    return f"{v:.4g}"


@dataclass(frozen=True)
class GroundPixel:
    """The MS pixel measured in the PAN's CRS, for an MS in another CRS than the PAN.

    Attributes:
        size: the MS ground pixel size in the PAN's units: the length of the MS footprint's
            diagonals (corner to corner, transformed into the PAN's CRS, mean of both) over
            the raster's diagonal in pixels. This is the square pixel ``gdalwarp -t_srs``
            gives the MS by default (GDAL's suggested warp output keeps the diagonal pixel
            count; the two agree to 1e-4 on the tests' scenes), so an MS reprojected without
            ``-tr`` measures close to its original size
            although its pixels are far from square on the ground (EPSG:4326 at 51 deg N:
            about 1.7 x 2.8 m for a 2 m original).
        along_x, along_y: the sides of the MS pixel at the footprint centre, in the PAN's
            units (what one MS pixel step along its x and y axes spans on the ground).
        ms_crs, pan_crs: short CRS names (``EPSG:4326``).
        units: the PAN CRS's unit ("m", "ft", "°").
    """

    size: float
    along_x: float
    along_y: float
    ms_crs: str
    pan_crs: str
    units: str

    def sides(self) -> str:
        """``"1.732 x 2.772 m along its x, y at the scene centre"``."""
        return (f"{_num(self.along_x)} x {_num(self.along_y)} {self.units} along its x, y at the "
                "scene centre")

    def warp_reason(self, ratio: int, pan_px: float, pan_py: float) -> str:
        """The feedback line's reason: CRSs, working pixel size and where the ratio came from."""
        u = self.units
        pan = _num(pan_px) if pan_px == pan_py else f"{_num(pan_px)} x {_num(pan_py)}"
        work = _num(ratio * pan_px) if pan_px == pan_py else f"{_num(ratio * pan_px)} x {_num(ratio * pan_py)}"
        return (f"MS in {self.ms_crs}, PAN in {self.pan_crs} (another CRS): warped onto the PAN's CRS at "
                f"{work} {u}, ratio {ratio} from ground pixel sizes MS {_num(self.size)} {u}, PAN {pan} {u} "
                f"(the MS pixel spans {self.sides()})")


def ground_pixel(ms_ds: gdal.Dataset, ms_srs: osr.SpatialReference, pan_srs: osr.SpatialReference,
                 ms: str) -> GroundPixel:
    """Measure the MS pixel in the PAN's CRS (see :class:`GroundPixel`).

    Args:
        ms_ds: the MS dataset; ms_srs, pan_srs: the two (different) CRSs, traditional GIS
            axis order (:func:`dataset_srs`).
        ms: MS path, for the error message.

    Raises:
        PSDNetInputError: the MS corners cannot be transformed into the PAN's CRS.
    """
    gt = ms_ds.GetGeoTransform()
    w, h = ms_ds.RasterXSize, ms_ds.RasterYSize
    cx, cy = w / 2.0, h / 2.0
    pix = [(0.0, 0.0), (w, h), (w, 0.0), (0.0, h), (cx, cy), (cx + 1.0, cy), (cx, cy + 1.0)]
    geo = [(gt[0] + px * gt[1] + py * gt[2], gt[3] + px * gt[4] + py * gt[5]) for px, py in pix]
    try:
        ct = osr.CoordinateTransformation(ms_srs, pan_srs)
        pts = np.array([p[:2] for p in ct.TransformPoints(geo)], dtype=np.float64)
    except RuntimeError:
        pts = np.full((len(pix), 2), np.nan)
    if not np.isfinite(pts).all():
        raise PSDNetInputError(
            f"MS input '{ms}' ({crs_label(ms_srs)}) cannot be expressed in the PAN's CRS "
            f"({crs_label(pan_srs)}): its corners do not transform (the MS reaches far outside the "
            "PAN CRS's area of use); clip it to the PAN's area or warp it onto the PAN's CRS first "
            "(gdalwarp -t_srs)."
        )
    tl, br, tr, bl, c, cxp, cyp = pts
    diag = 0.5 * (float(np.hypot(*(br - tl))) + float(np.hypot(*(tr - bl))))
    return GroundPixel(
        size=diag / float(np.hypot(w, h)),
        along_x=float(np.hypot(*(cxp - c))), along_y=float(np.hypot(*(cyp - c))),
        ms_crs=crs_label(ms_srs), pan_crs=crs_label(pan_srs), units=crs_units(pan_srs),
    )


def _ground_ratio(g: GroundPixel, pan_px: float, axis: str, ms_path: str, pan_path: str) -> int:
    """:func:`_ratio` for an MS in another CRS: the same 2 % rule on ground pixel sizes."""
    raw = g.size / pan_px
    u = g.units
    if raw < 1.0 - RATIO_TOLERANCE:
        raise PSDNetInputError(
            f"MS input '{ms_path}' ({g.ms_crs}) has smaller ground pixels in the PAN's CRS "
            f"({_num(g.size)} {u}) than PAN input '{pan_path}' ({g.pan_crs}, {_num(pan_px)} {u}) along {axis}: "
            "the inputs look swapped; give the panchromatic image as PAN and the multispectral "
            "image as MS."
        )
    r = int(round(raw))
    if r < 2 or abs(raw - r) > RATIO_TOLERANCE * r:
        k = max(2, r)
        raise PSDNetInputError(
            f"MS input '{ms_path}' is in {g.ms_crs}, PAN input '{pan_path}' in {g.pan_crs}: the MS "
            f"ground pixel in the PAN's CRS is {_num(g.size)} {u} (it spans {g.sides()}) and the "
            f"PAN's is {_num(pan_px)} {u}: a ratio of {raw:.4f} along {axis}, not an integer >= 2 within "
            f"{RATIO_TOLERANCE:.0%}; "
            f"warp the MS onto the PAN's CRS at an integer multiple of the PAN pixel size (e.g. "
            f"gdalwarp -t_srs {g.pan_crs} -tr {_num(k * pan_px)} {_num(k * pan_px)} for ratio {k}, "
            "from the original MS if it was reprojected without -tr) or check that PAN and MS "
            "belong together."
        )
    return r


def open_inputs(pan: str, ms: str, pan_band: int = 1) -> RasterInputs:
    """Open and validate PAN and MS, derive the ratio, output grid and MS access.

    Steps: open and check both files (types, bands, readability), check their georeferencing,
    derive the resolution ratio, decide whether the MS's own grid is the working grid or must
    be warped onto it, and place the working window (``engine.raster`` helpers below).

    Args:
        pan: path of the panchromatic raster (one band, or several with ``pan_band``).
        ms: path of the multispectral raster (>= 2 bands).
        pan_band: 1-based band of ``pan`` to use.

    Returns:
        A :class:`RasterInputs`; must be used inside :func:`gdal_errors`.

    Raises:
        PSDNetInputError: any problem with the inputs (message names the input and the fix).
    """
    pan, ms = os.fspath(pan), os.fspath(ms)
    pan_ds, ms_ds, pan_band = _open_pair(pan, ms, pan_band)
    pan_gt, ms_gt, pan_srs, ms_srs = _georeferencing(pan_ds, ms_ds, pan, ms)
    same_crs = pan_srs is None or pan_srs.IsSame(ms_srs)
    ms_north_up = ms_gt[2] == 0.0 and ms_gt[4] == 0.0 and ms_gt[1] > 0 and ms_gt[5] < 0
    pan_px, pan_py = pan_gt[1], -pan_gt[5]

    # MS footprint and pixel size expressed in the PAN CRS
    mb = _footprint(ms_ds, pan_srs, ms_srs)
    ground = None
    if same_crs and ms_north_up:
        ms_px, ms_py = ms_gt[1], -ms_gt[5]
    elif same_crs:
        ms_px = (mb[2] - mb[0]) / ms_ds.RasterXSize
        ms_py = (mb[3] - mb[1]) / ms_ds.RasterYSize
    else:  # another CRS: ground pixel sizes in the PAN's CRS
        ground = ground_pixel(ms_ds, ms_srs, pan_srs, ms)
        ms_px = ms_py = ground.size
    if ground is None:
        rx = _ratio(ms_px, pan_px, "x", ms, pan)
        ry = _ratio(ms_py, pan_py, "y", ms, pan)
    else:
        rx = _ground_ratio(ground, pan_px, "x", ms, pan)
        ry = _ground_ratio(ground, pan_py, "y", ms, pan)
    if rx != ry:
        raise PSDNetInputError(
            f"MS input '{ms}': resolution ratio differs between x ({rx}) and y ({ry}); resample "
            "the MS to square pixels matching the PAN."
        )
    r = rx
    inter = grid.intersect(_footprint(pan_ds, None, None), mb)
    if inter is None:
        raise PSDNetInputError(
            f"PAN input '{pan}' and MS input '{ms}' do not overlap (footprints do not "
            "intersect): choose PAN and MS of the same scene."
        )
    if ground is not None:
        warp_reason = ground.warp_reason(r, pan_px, pan_py)
    else:
        warp_reason = _warp_reason(ms_north_up, ms_ds, ms_gt, pan_gt, r, ms_px / pan_px)
    pan_xoff, pan_yoff, ms_xoff, ms_yoff, ms_w, ms_h = _working_window(
        pan_ds, ms_ds, pan_gt, ms_gt, inter, r, bool(warp_reason), pan, ms)
    out_x0 = pan_gt[0] + pan_xoff * pan_px
    out_y0 = pan_gt[3] - pan_yoff * pan_py
    ms_band1 = ms_ds.GetRasterBand(1)
    inputs = RasterInputs(
        pan_path=pan, ms_path=ms, pan_ds=pan_ds, ms_ds=ms_ds, ratio=r, pan_band=pan_band,
        pan_xoff=pan_xoff, pan_yoff=pan_yoff, width=ms_w * r, height=ms_h * r,
        ms_width=ms_w, ms_height=ms_h, ms_xoff=ms_xoff, ms_yoff=ms_yoff,
        bands=ms_ds.RasterCount, geotransform=(out_x0, pan_px, 0.0, out_y0, 0.0, -pan_py),
        crs_wkt=pan_ds.GetProjection() or "",
        ms_warped=bool(warp_reason), warp_reason=warp_reason, ms_dtype=ms_band1.DataType,
        pan_nodata=_nodata(pan_ds.GetRasterBand(pan_band)), ms_nodata=_nodata(ms_band1),
        descriptions=[ms_ds.GetRasterBand(b).GetDescription() for b in range(1, ms_ds.RasterCount + 1)],
    )
    if warp_reason:
        vrt = warp_onto_grid(ms_ds, "MS", ms, (out_x0, out_y0, r * pan_px, r * pan_py), ms_w, ms_h,
                             pan_srs, inputs.ms_nodata)
        inputs.ms_src = vrt
        inputs.ms_alpha = vrt.RasterCount
    else:
        inputs.ms_src = ms_ds
    return inputs


def _open_pair(pan: str, ms: str, pan_band: Any) -> tuple[gdal.Dataset, gdal.Dataset, int]:
    """Open PAN and MS, check types, band counts, ``pan_band`` and readability."""
    pan_ds = open_raster(pan, "PAN")
    ms_ds = open_raster(ms, "MS")
    if os.path.abspath(pan) == os.path.abspath(ms):
        raise PSDNetInputError(
            f"PAN and MS inputs are the same file '{pan}': choose the panchromatic image as PAN "
            "and the multispectral image as MS."
        )
    _check_dtype(pan_ds, "PAN", pan)
    _check_dtype(ms_ds, "MS", ms)
    if ms_ds.RasterCount < 2:
        raise PSDNetInputError(
            f"MS input '{ms}' has 1 band: pansharpening needs a multispectral image with "
            ">= 2 bands (stack single-band files with gdalbuildvrt -separate; were PAN and MS "
            "swapped?)."
        )
    if not isinstance(pan_band, (int, np.integer)) or not 1 <= int(pan_band) <= pan_ds.RasterCount:
        raise PSDNetInputError(
            f"PAN input '{pan}' has {pan_ds.RasterCount} band(s) but pan_band={pan_band} was "
            f"asked: choose a band between 1 and {pan_ds.RasterCount}."
        )
    pan_band = int(pan_band)
    _check_readable(pan_ds, "PAN", pan, [pan_band])
    _check_readable(ms_ds, "MS", ms, range(1, ms_ds.RasterCount + 1))
    return pan_ds, ms_ds, pan_band


def _georeferencing(pan_ds: gdal.Dataset, ms_ds: gdal.Dataset, pan: str, ms: str) -> tuple:
    """``(pan_gt, ms_gt, pan_srs, ms_srs)``, checked: both georeferenced, CRS on both or neither,
    PAN north-up."""
    pan_gt = pan_ds.GetGeoTransform(can_return_null=True)
    ms_gt = ms_ds.GetGeoTransform(can_return_null=True)
    for gt, name, path in ((pan_gt, "PAN", pan), (ms_gt, "MS", ms)):
        if gt is None:
            raise PSDNetInputError(
                f"{name} input '{path}' has no georeferencing (geotransform): the engine places "
                "MS on PAN by coordinates; georeference it (e.g. gdal_translate -a_ullr -a_srs)."
            )
    pan_srs, ms_srs = dataset_srs(pan_ds), dataset_srs(ms_ds)
    if (pan_srs is None) != (ms_srs is None):
        name, path = ("PAN", pan) if pan_srs is None else ("MS", ms)
        raise PSDNetInputError(
            f"{name} input '{path}' has no coordinate reference system while the other input "
            "has one: assign it (gdal_edit.py -a_srs EPSG:xxxx) so both can be matched."
        )
    if pan_gt[2] != 0.0 or pan_gt[4] != 0.0 or pan_gt[1] <= 0 or pan_gt[5] >= 0:
        raise PSDNetInputError(
            f"PAN input '{pan}' is not on a north-up grid (rotated or flipped geotransform): "
            "warp it to north-up first (gdalwarp)."
        )
    return pan_gt, ms_gt, pan_srs, ms_srs


def _warp_reason(ms_north_up: bool, ms_ds: gdal.Dataset, ms_gt: tuple, pan_gt: tuple,
                 r: int, size_ratio: float) -> str:
    """Why an MS in the PAN's CRS must be warped onto the working grid; "" when its own grid is
    that grid (an MS in another CRS: :meth:`GroundPixel.warp_reason`)."""
    if not ms_north_up:
        return "MS grid is rotated/flipped"
    off_x, off_y, drift_x, drift_y = grid.misalignment(ms_gt, (ms_ds.RasterXSize, ms_ds.RasterYSize), pan_gt, r)
    if max(off_x, off_y) > ALIGN_TOLERANCE_PX:
        return f"MS grid is offset from the PAN grid by ({off_x:.2f}, {off_y:.2f}) PAN px (x, y)"
    if max(drift_x, drift_y) > ALIGN_TOLERANCE_PX:
        return f"MS pixel size is {size_ratio:.4f} x the PAN pixel size, not exactly {r}"
    return ""


def _working_window(pan_ds: gdal.Dataset, ms_ds: gdal.Dataset, pan_gt: tuple, ms_gt: tuple, inter: tuple,
                    r: int, warped: bool, pan: str, ms: str) -> tuple[int, int, int, int, int, int]:
    """``(pan_xoff, pan_yoff, ms_xoff, ms_yoff, ms_w, ms_h)`` of the working grid (MS px sizes),
    checked to hold at least ``MIN_MS_PIXELS`` a side."""
    pan_w, pan_h = pan_ds.RasterXSize, pan_ds.RasterYSize
    if not warped:
        ox, oy = (int(round(v)) for v in grid.origin_in_pan_px(ms_gt, pan_gt))
        k0x, k1x, pan_xoff = grid.aligned_axis(ox, pan_w, ms_ds.RasterXSize, r)
        k0y, k1y, pan_yoff = grid.aligned_axis(oy, pan_h, ms_ds.RasterYSize, r)
        ms_w, ms_h = k1x - k0x, k1y - k0y
        ms_xoff, ms_yoff = k0x, k0y
    else:
        c0, c1, r0, r1 = grid.pixel_window(inter, pan_gt, (pan_w, pan_h))
        ms_w, ms_h = max(0, (c1 - c0) // r), max(0, (r1 - r0) // r)
        pan_xoff, pan_yoff, ms_xoff, ms_yoff = c0, r0, 0, 0
    if ms_w < MIN_MS_PIXELS or ms_h < MIN_MS_PIXELS:
        raise PSDNetInputError(
            f"PAN input '{pan}' and MS input '{ms}' overlap on only {max(ms_w, 0)} x "
            f"{max(ms_h, 0)} MS pixels (at least {MIN_MS_PIXELS} x {MIN_MS_PIXELS} needed): "
            "choose inputs covering the same area."
        )
    return pan_xoff, pan_yoff, ms_xoff, ms_yoff, ms_w, ms_h


def warp_onto_grid(ds: gdal.Dataset, name: str, path: str, grid: tuple[float, float, float, float],
                   width: int, height: int, dst_srs: osr.SpatialReference | None,
                   nodata: float | None) -> gdal.Dataset:
    """Cubic warped VRT of ``ds`` on a north-up grid; its last band is the footprint alpha.

    Args:
        ds: source GDAL dataset; name, path: for the error message ("MS", "Fused", ...).
        grid: (x0, y0, pixel width, pixel height) of the target grid's top-left corner.
        width, height: target size in pixels.
        dst_srs: target osr.SpatialReference (None: the source's).
        nodata: source nodata, kept as the target's.
    """
    x0, y0, px, py = grid
    opts: dict = dict(
        format="VRT", outputBounds=(x0, y0 - height * py, x0 + width * px, y0),
        width=width, height=height, resampleAlg="cubic", dstAlpha=True, outputType=gdal.GDT_Float32,
    )
    if dst_srs is not None:
        opts["dstSRS"] = dst_srs.ExportToWkt()
    if nodata is not None:
        opts["srcNodata"] = nodata
        opts["dstNodata"] = nodata
    try:
        return gdal.Warp("", ds, options=gdal.WarpOptions(**opts))
    except RuntimeError as exc:
        raise PSDNetInputError(
            f"{name} input '{path}' cannot be warped onto the PAN grid ({_first_line(exc)}); "
            "check its georeferencing."
        ) from None
