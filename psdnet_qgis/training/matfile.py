"""The one MATLAB file format training reads: a numeric array from a level-5 MAT-file.

The FuseBox Landsat 7 pairs (``training.scenes``, ``grid="mat4"``) are MATLAB 5 files holding one
real numeric matrix each, zlib-compressed. This reader covers exactly that (little-endian, real
numeric classes, compressed or not) with the standard library and numpy, so training does not
need scipy; anything else (cells, structs, sparse or complex arrays, MATLAB 7.3 HDF5 files) is
refused with the file's name.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from psdnet_qgis.errors import PSDNetInputError

_MATRIX, _COMPRESSED = 14, 15
#: MAT-file data types of numeric data (miINT8 ... miUINT64) and their numpy types.
_DTYPES = {1: "i1", 2: "u1", 3: "<i2", 4: "<u2", 5: "<i4", 6: "<u4", 7: "<f4", 9: "<f8",
           12: "<i8", 13: "<u8"}
#: Array classes that hold plain numbers (mxDOUBLE_CLASS ... mxUINT64_CLASS).
_NUMERIC_CLASSES = range(6, 16)
_COMPLEX_FLAG = 0x0800


def _elements(buf: bytes) -> Iterator[tuple[int, bytes]]:
    """(data type, data) of each element of ``buf``, the small-element form included."""
    pos = 0
    while pos + 8 <= len(buf):
        typ, n = struct.unpack_from("<II", buf, pos)
        if typ >> 16:  # small data element: size in the tag's upper half, data in its last 4 bytes
            n, typ = typ >> 16, typ & 0xFFFF
            yield typ, buf[pos + 4:pos + 4 + n]
            pos += 8
            continue
        yield typ, buf[pos + 8:pos + 8 + n]
        pos += 8 + n + (0 if typ == _COMPRESSED else -n % 8)


def _matrix(data: bytes, path: Path) -> tuple[str, np.ndarray]:
    """(name, array) of one miMATRIX element."""
    parts = list(_elements(data))
    if len(parts) < 4:
        raise PSDNetInputError(f"{path}: a MATLAB matrix with {len(parts)} parts; expected flags, size, name, data")
    (_, flags), (_, dims), (_, name), (typ, real) = parts[:4]
    flag, = struct.unpack_from("<I", flags)
    if (flag & 0xFF) not in _NUMERIC_CLASSES or flag & _COMPLEX_FLAG or typ not in _DTYPES:
        raise PSDNetInputError(f"{path}: only real numeric MATLAB arrays are read (class {flag & 0xFF}, "
                               f"data type {typ}); save the array as a plain numeric matrix")
    shape = tuple(int(d) for d in np.frombuffer(dims, "<i4"))
    return name.decode("ascii"), np.frombuffer(real, _DTYPES[typ]).reshape(shape, order="F")


def read_mat_array(path: str | Path, name: str) -> np.ndarray:
    """The numeric array ``name`` of a MATLAB level-5 MAT-file, in MATLAB's shape.

    Raises:
        PSDNetInputError: not a little-endian level-5 MAT-file, an array that is not real and
            numeric, or no array of that name (the message lists the names found).
    """
    path = Path(path)
    raw = path.read_bytes()
    if len(raw) < 128 or raw[126:128] != b"IM" or raw[:6] != b"MATLAB":
        raise PSDNetInputError(f"{path}: not a little-endian MATLAB 5 MAT-file (MATLAB 7.3 files are HDF5: "
                               "save with -v7 or earlier)")
    found = []
    for typ, data in _elements(raw[128:]):
        if typ == _COMPRESSED:
            typ, data = next(_elements(zlib.decompress(data)))
        if typ != _MATRIX:
            continue
        key, arr = _matrix(data, path)
        if key == name:
            return arr
        found.append(key)
    raise PSDNetInputError(f"{path}: no array {name!r} (found: {', '.join(found) or 'none'})")
