"""The engine's output GeoTIFF: path checks, creation, block-row writing, cleanup (GDAL + numpy).

The output is a tiled, DEFLATE-compressed GeoTIFF on the PAN grid of the inputs
(:class:`~psdnet_qgis.engine.raster.RasterInputs`), every block written once, as soon as it
is complete (:class:`BlockWriter`); a failed or cancelled run removes it with its side-cars
(:func:`remove_output`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import DTypeLike
from osgeo import gdal

from psdnet_qgis.engine.gdalerr import first_line
from psdnet_qgis.errors import PSDNetInputError, PSDNetOutputError

if TYPE_CHECKING:
    from psdnet_qgis.engine.raster import RasterInputs

#: Output GeoTIFF block size (PAN px); the writer writes whole blocks only.
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
    table: dict[str, type[np.integer]] = {
        "byte": np.uint8, "uint16": np.uint16, "int16": np.int16, "uint32": np.uint32,
        "int32": np.int32, "int8": np.int8, "uint64": np.uint64, "int64": np.int64}
    if np_type in table:
        info = np.iinfo(table[np_type])
        return float(info.min), float(info.max)
    return None


def numpy_dtype(dtype: int) -> np.dtype:
    """numpy dtype of a GDAL data type."""
    from osgeo import gdal_array

    return np.dtype(gdal_array.GDALTypeCodeToNumericTypeCode(dtype))


class BlockWriter:
    """Writes finished rectangles of the output as whole GeoTIFF blocks, each block exactly once.

    The tile loop hands over rectangles whose values are final (every tile that covers them is
    done), in physical float32 values. Each is converted (clip/round/nodata) and copied into the
    :data:`OUT_BLOCK` x :data:`OUT_BLOCK` blocks it touches; a block is written to the dataset as
    soon as all its pixels have arrived, and its staging buffer dropped. So the writer holds only
    the blocks that straddle a boundary of the finished region (the block row cut by the next
    tile row's first PAN row, the block column cut by the next tile's first column): at most
    ``C x (OUT_BLOCK - 1) x W`` values in the output type, never a converted copy of a strip.
    Every compressed block is written once and whole, so the file does not grow with rewritten
    blocks. Rectangles must not overlap (each output pixel is handed over once).
    """

    def __init__(self, ds: gdal.Dataset, dtype: int, nodata: float | None) -> None:
        self.ds = ds
        self.dtype = dtype
        self.nodata = nodata
        self.np_dtype = numpy_dtype(dtype)
        self.range = dtype_range(dtype)
        self.limits = self._limits()  # the clip range of every add()
        self.width, self.height = ds.RasterXSize, ds.RasterYSize
        #: (block row, block col) -> [staging buffer (C, bh, bw) in the output type, pixels filled]
        self._pending: dict[tuple[int, int], list[Any]] = {}
        self.blocks_written = 0

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

    @property
    def pending_bytes(self) -> int:
        """Bytes held in staging buffers of incomplete blocks."""
        return sum(e[0].nbytes for e in self._pending.values())

    def add(self, phys: np.ndarray, row0: int, col0: int, valid: np.ndarray | None = None) -> None:
        """Convert a finished rectangle and write every block it completes.

        Args:
            phys: (C, n, m) blended physical values of output px [row0, row0+n) x
                [col0, col0+m); modified in place (the engine passes a view of its
                accumulator that it discards next).
            row0, col0: top-left output pixel of the rectangle.
            valid: (n, m) validity, None when all valid.
        """
        n, m = phys.shape[1:]
        if n == 0 or m == 0:
            return
        limits = self.limits
        if limits is not None:
            np.rint(phys, out=phys)
            np.clip(phys, *limits, out=phys)
        if valid is not None and self.nodata is not None:
            phys[:, ~valid] = self.nodata
        bs = OUT_BLOCK
        for k in range(row0 // bs, (row0 + n - 1) // bs + 1):
            y0, y1 = max(row0, k * bs), min(row0 + n, (k + 1) * bs)
            bh = min(bs, self.height - k * bs)
            for j in range(col0 // bs, (col0 + m - 1) // bs + 1):
                x0, x1 = max(col0, j * bs), min(col0 + m, (j + 1) * bs)
                bw = min(bs, self.width - j * bs)
                part = phys[:, y0 - row0:y1 - row0, x0 - col0:x1 - col0]
                if (y1 - y0, x1 - x0) == (bh, bw):  # a whole block: no staging
                    self._write(part.astype(self.np_dtype), k, j)
                    continue
                entry = self._pending.get((k, j))
                if entry is None:
                    entry = self._pending[(k, j)] = [np.empty((phys.shape[0], bh, bw), self.np_dtype), 0]
                entry[0][:, y0 - k * bs:y1 - k * bs, x0 - j * bs:x1 - j * bs] = part
                entry[1] += (y1 - y0) * (x1 - x0)
                if entry[1] == bh * bw:
                    del self._pending[(k, j)]
                    self._write(entry[0], k, j)

    def _write(self, data: np.ndarray, k: int, j: int) -> None:
        self.ds.WriteArray(np.ascontiguousarray(data), j * OUT_BLOCK, k * OUT_BLOCK)
        self.blocks_written += 1

    def close(self) -> None:
        """Flush GDAL's cache (raises on write errors, e.g. full disk).

        Raises:
            ValueError: some block never received all its pixels (a tile plan that does not
                cover the output: a bug, not a user error).
        """
        if self._pending:
            (k, j), (_, filled) = next(iter(self._pending.items()))
            raise ValueError(f"BlockWriter: {len(self._pending)} output blocks incomplete, e.g. block "
                             f"row {k}, column {j} ({filled} px filled); the tiles do not cover the output")
        self.ds.FlushCache()


def resolve_dtype(out_dtype: DTypeLike, ms_dtype: int) -> int:
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

