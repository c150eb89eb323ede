"""The engine's output GeoTIFF: path checks, creation, block-row writing, cleanup (GDAL + numpy).

The output is a tiled, DEFLATE-compressed GeoTIFF on the PAN grid of the inputs
(:class:`~psdnet_qgis.engine.raster.RasterInputs`), written once, block row by block row
(:class:`StripWriter`); a failed or cancelled run removes it with its side-cars
(:func:`remove_output`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from osgeo import gdal

from psdnet_qgis.engine.gdalerr import first_line
from psdnet_qgis.errors import PSDNetInputError, PSDNetOutputError

if TYPE_CHECKING:
    from psdnet_qgis.engine.raster import RasterInputs

#: Output GeoTIFF block size (PAN px); strips are written in multiples of it.
OUT_BLOCK = 256
#: Output types a caller may ask for (``out_dtype``), by name.
_OUT_TYPES = {"float32": gdal.GDT_Float32, "float64": gdal.GDT_Float64, "uint16": gdal.GDT_UInt16,
              "uint8": gdal.GDT_Byte, "byte": gdal.GDT_Byte, "int16": gdal.GDT_Int16,
              "uint32": gdal.GDT_UInt32, "int32": gdal.GDT_Int32}


def check_output(out: str, inputs: Sequence[str]) -> str:
    """Validate the output path: folder exists and is writable, not one of the inputs.

    Returns:
        The absolute output path.
    """
    if not out:
        raise PSDNetInputError("Output: no file given; choose an output .tif path.")
    out = os.path.abspath(os.fspath(out))
    folder = os.path.dirname(out)
    if not os.path.isdir(folder):
        raise PSDNetInputError(
            f"Output '{out}': folder '{folder}' does not exist; create it or choose another folder."
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PSDNetInputError(
            f"Output '{out}': folder '{folder}' is not writable; choose a folder you can write to."
        )
    try:  # a real probe: os.access says yes to root on read-only file systems
        fd, probe = tempfile.mkstemp(prefix=".psdnet_probe_", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise PSDNetInputError(
            f"Output '{out}': cannot create files in folder '{folder}' ({exc.strerror}); choose a "
            "folder you can write to."
        ) from None
    if os.path.isdir(out):
        raise PSDNetInputError(f"Output '{out}' is a folder; give a file name ending in .tif.")
    for p in inputs:
        if os.path.abspath(p) == out:
            raise PSDNetInputError(
                f"Output '{out}' is also an input; choose another output file name."
            )
    if os.path.exists(out) and not os.access(out, os.W_OK):
        raise PSDNetInputError(f"Output '{out}' exists and is read-only; choose another name.")
    return out


def output_paths(out: str) -> list[str]:
    """The output file and the side-cars GDAL/QGIS may create beside it."""
    return [out, out + ".aux.xml", out + ".ovr", out + ".msk"]


def remove_output(out: str) -> None:
    """Delete a (partial) output and its side-cars; never raises."""
    for p in output_paths(out):
        with contextlib.suppress(OSError):
            if os.path.exists(p):
                os.remove(p)


def create_output(out: str, inputs: RasterInputs, dtype: int, nodata: float | None,
                  descriptions: list[str] | None = None) -> gdal.Dataset:
    """Create the tiled, DEFLATE-compressed output GeoTIFF on the PAN grid.

    Args:
        out: output path (validated by :func:`check_output`).
        inputs: the validated inputs (grid, band descriptions).
        dtype: GDAL data type of the output.
        nodata: nodata value set on every band (None: none).
        descriptions: band descriptions where the MS bands have none (the names read off a VRT's
            source files); None: the MS band descriptions.
    """
    remove_output(out)
    is_float = dtype in (gdal.GDT_Float32, gdal.GDT_Float64)
    opts = [
        "TILED=YES", f"BLOCKXSIZE={OUT_BLOCK}", f"BLOCKYSIZE={OUT_BLOCK}", "COMPRESS=DEFLATE",
        f"PREDICTOR={3 if is_float else 2}", "BIGTIFF=IF_SAFER",
        "INTERLEAVE=PIXEL",
    ]
    drv = gdal.GetDriverByName("GTiff")
    ds = drv.Create(out, inputs.width, inputs.height, inputs.bands, dtype, options=opts)
    ds.SetGeoTransform(inputs.geotransform)
    if inputs.crs_wkt:
        ds.SetProjection(inputs.crs_wkt)
    for b in range(inputs.bands):
        band = ds.GetRasterBand(b + 1)
        if nodata is not None:
            band.SetNoDataValue(nodata)
        if inputs.descriptions and inputs.descriptions[b]:
            band.SetDescription(inputs.descriptions[b])
        elif descriptions and b < len(descriptions) and descriptions[b]:
            band.SetDescription(descriptions[b])
    return ds


def dtype_range(dtype: int) -> tuple[float, float] | None:
    """(min, max) representable by an integer GDAL type, None for floats."""
    np_type = gdal.GetDataTypeName(dtype).lower()
    table = {"byte": np.uint8, "uint16": np.uint16, "int16": np.int16, "uint32": np.uint32,
             "int32": np.int32, "int8": np.int8, "uint64": np.uint64, "int64": np.int64}
    if np_type in table:
        info = np.iinfo(table[np_type])
        return float(info.min), float(info.max)
    return None


def numpy_dtype(dtype: int) -> np.dtype:
    """numpy dtype of a GDAL data type."""
    from osgeo import gdal_array

    return np.dtype(gdal_array.GDALTypeCodeToNumericTypeCode(dtype))


class StripWriter:
    """Writes finished output rows one whole block row at a time.

    Rows arrive as strips of the tile stride, in physical float32 values. Each is converted
    (clip/round/nodata) block row by block row into one staging buffer of :data:`OUT_BLOCK`
    rows in the output type, which is written when full. Writing only whole block rows
    (except the last) means every compressed block is written exactly once, so the file does
    not grow with rewritten blocks and the GDAL cache stays small; converting into the one
    buffer means the writer holds ``C x OUT_BLOCK x W`` output values, whatever the strip
    height (no converted copy of a whole strip).
    """

    def __init__(self, ds: gdal.Dataset, dtype: int, nodata: float | None) -> None:
        self.ds = ds
        self.dtype = dtype
        self.nodata = nodata
        self.np_dtype = numpy_dtype(dtype)
        self.range = dtype_range(dtype)
        self.limits = self._limits()  # the clip range of every add()
        self.row = 0  # next output row to write
        self._buf: np.ndarray | None = None  # (C, OUT_BLOCK, W) in the output type
        self._filled = 0  # rows of _buf holding converted values

    def _limits(self) -> tuple[float, float] | None:
        """The clip range of an integer output, kept off the nodata value so that valid pixels
        are not masked by readers."""
        if self.range is None:
            return None
        lo, hi = self.range
        if self.nodata is not None:
            if self.nodata <= lo:
                lo = self.nodata + 1
            elif self.nodata >= hi:
                hi = self.nodata - 1
        return lo, hi

    def add(self, phys: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Convert and queue finished rows; writes every complete block row.

        Args:
            phys: (C, n, W) blended physical values; modified in place (the engine passes rows
                of its accumulator that it discards next).
            valid: (n, W) validity, None when all valid.
        """
        limits = self.limits
        n = phys.shape[1]
        if self._buf is None:
            self._buf = np.empty((phys.shape[0], OUT_BLOCK, phys.shape[2]), dtype=self.np_dtype)
        i = 0
        while i < n:
            k = min(n - i, OUT_BLOCK - self._filled)
            chunk = phys[:, i:i + k]
            if limits is not None:
                np.rint(chunk, out=chunk)
                np.clip(chunk, *limits, out=chunk)
            if valid is not None and self.nodata is not None:
                chunk[:, ~valid[i:i + k]] = self.nodata
            self._buf[:, self._filled:self._filled + k] = chunk
            self._filled += k
            i += k
            if self._filled == OUT_BLOCK:
                self._write(self._buf)
                self._filled = 0

    def _write(self, data: np.ndarray) -> None:
        self.ds.WriteArray(np.ascontiguousarray(data), 0, self.row)
        self.row += data.shape[1]

    def close(self) -> None:
        """Write what is left and flush GDAL's cache (raises on write errors, e.g. full disk)."""
        if self._buf is not None and self._filled:
            self._write(self._buf[:, :self._filled])
        self._filled = 0
        self.ds.FlushCache()


def resolve_dtype(out_dtype: Any, ms_dtype: int) -> int:
    """GDAL type of the output: the MS type for None, else ``out_dtype`` by name or numpy type.

    Raises:
        PSDNetInputError: a type the output cannot have.
    """
    if out_dtype is None:
        return ms_dtype
    name = str(np.dtype(out_dtype).name) if not isinstance(out_dtype, str) else out_dtype.lower()
    if name not in _OUT_TYPES:
        raise PSDNetInputError(
            f"out_dtype {out_dtype!r} is not supported; use None (same as MS) or one of "
            f"{sorted(_OUT_TYPES)}."
        )
    return _OUT_TYPES[name]


def output_nodata(inputs: RasterInputs, dtype: int) -> float | None:
    """MS nodata, else PAN nodata if representable, else the type minimum/NaN when needed."""
    if not inputs.has_nodata:
        return None
    rng = dtype_range(dtype)
    for v in (inputs.ms_nodata, inputs.pan_nodata):
        if v is None or not np.isfinite(v):
            continue
        if rng is None or rng[0] <= v <= rng[1]:
            return float(v)
    return float(rng[0]) if rng is not None else float("nan")


def write_error(out: str, exc: BaseException) -> PSDNetOutputError:
    """The error of a failed output write, which is nearly always a lack of space.

    The input was read and the output created, so a full disk, a quota or a file size limit
    is left (GDAL's messages vary: "No space left", "File too large", "Failed to read
    directory" when the TIFF directory could not be written).
    """
    return PSDNetOutputError(
        f"Output '{out}' could not be written ({first_line(exc)}): the disk is probably full; free disk "
        "space or choose another output folder. The partial file was removed."
    )


def check_complete(out: str) -> None:
    """Raise the write error when the closed GeoTIFF ``out`` is shorter than its own blocks say.

    GDAL 3.10 (Debian 13) reports a failed write of the last blocks (a full disk, a quota, a
    file size limit) only on stderr, through libtiff, and the run would end as a success with
    a truncated, unreadable file. Every block's offset and byte count are in the TIFF
    directory, so the check reads no pixels.
    """
    size = os.path.getsize(out)
    ds = gdal.Open(out)
    try:
        band_count = 1 if ds.GetMetadataItem("INTERLEAVE", "IMAGE_STRUCTURE") == "PIXEL" else ds.RasterCount
        for b in range(1, band_count + 1):
            band = ds.GetRasterBand(b)
            bx, by = band.GetBlockSize()
            for y in range(-(-ds.RasterYSize // by)):
                for x in range(-(-ds.RasterXSize // bx)):
                    offset = int(band.GetMetadataItem(f"BLOCK_OFFSET_{x}_{y}", "TIFF") or 0)
                    count = int(band.GetMetadataItem(f"BLOCK_SIZE_{x}_{y}", "TIFF") or 0)
                    if offset <= 0 or offset + count > size:
                        raise write_error(out, RuntimeError(
                            f"block {x},{y} of band {b} ends at byte {offset + count}, the file at {size}"))
    finally:
        ds = None

