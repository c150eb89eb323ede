"""Rasters placed on the engine's output grid and read there, window by window (GDAL + numpy).

The assessment compares a fused raster (and optionally a reference) with the PAN and MS it
was made from on one grid: the engine's output grid (:func:`engine.raster.open_inputs`:
PAN pixels over the PAN/MS footprint intersection, MS working pixels of ``ratio`` PAN px a
side). :func:`on_grid` places another raster of the PAN pixel size on it (straight windows
when aligned, an in-memory cubic warp otherwise); :class:`WindowReader` reads the aligned
fused / PAN / MS / reference arrays of a rectangle together with their joint validity.

Validity. A pixel is unusable when any input is NaN or equal to its declared nodata there,
lies outside a warped input's footprint, or, for integer rasters without declared nodata,
when all its bands are 0 (the usual fill of image edges, e.g. SpaceNet tiles).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from osgeo import gdal

from psdnet_qgis.core.grid import ALIGN_TOLERANCE_PX, RATIO_TOLERANCE
from psdnet_qgis.core.validity import valid_pixels
from psdnet_qgis.engine.raster import RasterInputs, dataset_srs, open_raster, warp_onto_grid
from psdnet_qgis.errors import PSDNetInputError


def is_integer_type(dtype: int) -> bool:
    """True for a real integer GDAL data type."""
    return dtype not in (gdal.GDT_Float32, gdal.GDT_Float64) and not gdal.DataTypeIsComplex(dtype)


def _validity(arr: np.ndarray, nodata: float | None, zero_fill: bool) -> np.ndarray:
    """(C, H, W) -> (H, W) bool: finite, not nodata in any band, not all-zero fill."""
    valid = valid_pixels(arr, nodata)
    if zero_fill:
        valid &= (arr != 0).any(axis=0)
    return valid


@dataclass
class OnGrid:
    """A raster (fused or reference) read onto the output grid.

    Attributes:
        name: role for messages ("Fused", "Reference").
        src: dataset actually read (the raster, or a warped VRT on the output grid).
        xoff, yoff: output-grid origin inside ``src`` (px; may be negative when aligned).
        bands: number of data bands.
        nodata: declared nodata (None when unset).
        alpha: alpha band of a warped VRT (0 = none).
        zero_fill: integer raster without nodata: all-zero pixels are treated as fill.
        warped: read through a warp.
    """

    name: str
    src: gdal.Dataset
    xoff: int
    yoff: int
    bands: int
    nodata: float | None
    alpha: int
    zero_fill: bool
    warped: bool

    def covered(self, width: int, height: int) -> tuple[int, int, int, int]:
        """Output-grid rectangle (row0, row1, col0, col1) this raster covers."""
        if self.warped:
            return 0, height, 0, width
        c0, r0 = max(0, -self.xoff), max(0, -self.yoff)
        c1 = min(width, self.src.RasterXSize - self.xoff)
        r1 = min(height, self.src.RasterYSize - self.yoff)
        return r0, r1, c0, c1

    def read(self, row0: int, col0: int, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
        """Output-grid window (inside the covered rectangle): (C, rows, cols) float32, valid."""
        x, y = self.xoff + col0, self.yoff + row0
        arr = self.src.ReadAsArray(x, y, cols, rows, band_list=list(range(1, self.bands + 1)))
        arr = np.asarray(arr, dtype=np.float32).reshape(self.bands, rows, cols)
        valid = _validity(arr, self.nodata, self.zero_fill)
        if self.alpha:
            valid &= self.src.GetRasterBand(self.alpha).ReadAsArray(x, y, cols, rows) >= 128
        return arr, valid


def on_grid(path: str, name: str, inputs: RasterInputs, bands: int) -> OnGrid:
    """Open ``path`` and place it on the output grid of ``inputs`` (PSDNetInputError if it can't).

    A raster on the PAN's pixel grid (pixel size within ``core.grid.RATIO_TOLERANCE``, corners
    within ``core.grid.ALIGN_TOLERANCE_PX``) is read directly; any other is warped onto it.
    """
    ds = open_raster(path, name)
    if ds.RasterCount != bands:
        raise PSDNetInputError(
            f"{name} input '{path}' has {ds.RasterCount} band(s) but the MS input has {bands}: "
            f"give the {name.lower()} image with the MS bands in the MS order."
        )
    gt = ds.GetGeoTransform(can_return_null=True)
    if gt is None:
        raise PSDNetInputError(
            f"{name} input '{path}' has no georeferencing: it is placed on the PAN by coordinates; "
            "use the georeferenced GeoTIFF written by the pansharpening (or assign the PAN's "
            "georeference with gdal_translate -a_ullr -a_srs)."
        )
    out_gt = inputs.geotransform
    pan_px, pan_py = out_gt[1], -out_gt[5]
    srs = dataset_srs(ds)
    pan_srs = dataset_srs(inputs.pan_ds)
    # a raster without CRS is taken to be in the PAN's (a fused output always has one)
    same_crs = srs is None or pan_srs is None or bool(srs.IsSame(pan_srs))
    north_up = gt[2] == 0.0 and gt[4] == 0.0 and gt[1] > 0 and gt[5] < 0
    band1 = ds.GetRasterBand(1)
    nodata = band1.GetNoDataValue()
    zero_fill = nodata is None and is_integer_type(band1.DataType)
    if same_crs and north_up:
        for size, ref, axis in ((gt[1], pan_px, "x"), (-gt[5], pan_py, "y")):
            if abs(size / ref - 1.0) > RATIO_TOLERANCE:
                raise PSDNetInputError(
                    f"{name} input '{path}' has a pixel size of {size:.6g} along {axis}, the PAN "
                    f"has {ref:.6g}: the {name.lower()} image must be on the PAN's grid (the "
                    "output of pansharpening these PAN and MS); resample it to the PAN pixel "
                    "size (gdalwarp -tr) or choose the matching PAN."
                )
        ox = (gt[0] - out_gt[0]) / pan_px
        oy = (out_gt[3] - gt[3]) / pan_py
        drift = max(abs(gt[1] - pan_px) * ds.RasterXSize / pan_px,
                    abs(-gt[5] - pan_py) * ds.RasterYSize / pan_py)
        if max(abs(ox - round(ox)), abs(oy - round(oy)), drift) <= ALIGN_TOLERANCE_PX:
            return OnGrid(name, ds, -int(round(ox)), -int(round(oy)), bands, nodata, 0, zero_fill,
                          False)
    # Not on the grid: warp onto it (cubic), alpha band = footprint.
    vrt = warp_onto_grid(ds, name, path, (out_gt[0], out_gt[3], pan_px, pan_py),
                         inputs.width, inputs.height, pan_srs, nodata)
    return OnGrid(name, vrt, 0, 0, bands, nodata, vrt.RasterCount, zero_fill, True)


@dataclass
class Window:
    """Aligned data of one evaluated rectangle (PAN px; multiples of the ratio).

    The arrays may extend past the rectangle the window *owns* (``core``, its top-left
    ``core_h x core_w`` part) at the bottom and right: the sliding 32 px Q windows whose
    top-left corner lies in the core are then all complete (see
    ``engine.assess.pooling.window_stats``).
    """

    row: int
    col: int
    fused: np.ndarray  # (C, H, W)
    pan: np.ndarray  # (1, H, W)
    ms: np.ndarray  # (C, H / r, W / r)
    ref: np.ndarray | None  # (C, H, W)
    valid: np.ndarray  # (H / r, W / r) bool: everything valid over the MS working pixel
    core_h: int = 0  # owned rows (PAN px); 0 = all
    core_w: int = 0

    @property
    def core(self) -> tuple[int, int]:
        """(rows, cols) owned, PAN px."""
        return (self.core_h or self.fused.shape[1], self.core_w or self.fused.shape[2])

    def crop(self, r0: int, r1: int, c0: int, c1: int, ratio: int) -> Window:
        """The part over MS working pixels [r0, r1) x [c0, c1) of this window (all of it owned)."""
        p = (slice(None), slice(r0 * ratio, r1 * ratio), slice(c0 * ratio, c1 * ratio))
        return Window(self.row + r0 * ratio, self.col + c0 * ratio, self.fused[p], self.pan[p],
                      self.ms[:, r0:r1, c0:c1], None if self.ref is None else self.ref[p],
                      self.valid[r0:r1, c0:c1])


class WindowReader:
    """Reads aligned fused / PAN / MS / reference windows of the output grid."""

    def __init__(self, inputs: RasterInputs, fused: OnGrid, ref: OnGrid | None) -> None:
        self.inputs = inputs
        self.fused = fused
        self.ref = ref
        self.r = inputs.ratio
        band = inputs.pan_ds.GetRasterBand(inputs.pan_band)
        self.pan_zero_fill = inputs.pan_nodata is None and is_integer_type(band.DataType)
        self.ms_zero_fill = inputs.ms_nodata is None and is_integer_type(inputs.ms_dtype) \
            and not inputs.ms_warped

    def read(self, row: int, col: int, rows: int, cols: int) -> Window:
        """The window of ``rows x cols`` PAN px at (row, col) (multiples of the ratio)."""
        r = self.r
        fused, fv = self.fused.read(row, col, rows, cols)
        pan, pv = self.inputs.read_pan(row, col, rows, cols)
        if self.pan_zero_fill:
            pv &= pan[0] != 0
        ms, mv = self.inputs.read_ms(row // r, col // r, rows // r, cols // r)
        if self.ms_zero_fill:
            mv &= (ms != 0).any(axis=0)
        full = fv & pv
        ref = None
        if self.ref is not None:
            ref, rv = self.ref.read(row, col, rows, cols)
            full &= rv
        valid = mv & full.reshape(rows // r, r, cols // r, r).all(axis=(1, 3))
        return Window(row, col, fused, pan, ms, ref, valid)
