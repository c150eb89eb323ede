"""Heap tuning of the set-up and the tile loop (glibc ``mallopt`` / ``malloc_trim``; a no-op elsewhere)."""

from __future__ import annotations

import contextlib
import ctypes
import sys
from collections.abc import Callable, Iterator
from typing import Any

#: glibc ``mallopt`` parameters (malloc.h) and their defaults.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _GLIBC_DEFAULT = -1, -3, 128 * 1024
#: Threshold used while tiles run: buffers up to this size come from the heap and stay there.
#: 40 MB keeps the network's activations (at most 35 MB on a 144 MS px tile: the full model's
#: whole-tile maps; its stage-1 pieces 10-19 MB) in the heap and sends the width-sized row
#: buffers of big rasters to mmap: a lower peak than a 1 GB threshold at the same speed.
_TILE_HEAP_BYTES = 40 << 20
#: Threshold while the scene is read and the calibration runs (:func:`map_large_buffers`).
_SETUP_MMAP_BYTES = 64 << 10


def _glibc() -> Any:
    """glibc with ``mallopt`` and ``malloc_trim``, else None (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


#: The thresholds set by :func:`mmap_threshold` blocks now open, innermost last.
_THRESHOLDS: list[int] = []


@contextlib.contextmanager
def mmap_threshold(nbytes: int) -> Iterator[None]:
    """Inside the block, glibc serves buffers over ``nbytes`` with a memory map of their own,
    returned to the kernel when freed, and smaller ones from the heap (``mallopt``; a no-op
    without glibc). After it, the enclosing block's threshold, else glibc's default (128 kB,
    fixed: glibc's own threshold follows the largest buffer freed, up to 32 MB)."""
    libc = _glibc()
    if libc is None:
        yield
        return
    libc.mallopt(_M_MMAP_THRESHOLD, int(nbytes))
    _THRESHOLDS.append(int(nbytes))
    try:
        yield
    finally:
        _THRESHOLDS.pop()
        libc.mallopt(_M_MMAP_THRESHOLD, _THRESHOLDS[-1] if _THRESHOLDS else _GLIBC_DEFAULT)


def map_large_buffers() -> contextlib.AbstractContextManager[None]:
    """Before the tiles (the scene's sample, the calibration): buffers over 64 kB get a memory map
    of their own (:func:`mmap_threshold`), so that what the set-up frees leaves no holes in the
    heap the tiles then use.

    With glibc's default threshold (it follows the largest buffer freed so far, up to 32 MB),
    the set-up's buffers (the calibration's windows, their statistics and network predictions,
    GDAL's cached blocks of the windows read all over the scene: tens of MB on a big scene, a
    few on a small one) came from the heap, and the long-lived objects made meanwhile sat above
    them: the heap the tiles started with had 74 MB free inside it at 105 MPx (21 MB at 1 MPx),
    and the tile rows, spreading their buffers over it, peaked about 40 MB higher with the same
    memory in use. The cost is page faults: about 150 000 more at 1 MPx (a few tenths of a
    second), mostly the network's buffers on the calibration windows (kept in the heap, they
    left 51 MB of holes at 105 MPx).
    """
    return mmap_threshold(_SETUP_MMAP_BYTES)


@contextlib.contextmanager
def keep_freed_memory() -> Iterator[Callable[[], Any]]:
    """While tiles run, let glibc keep freed buffers for the next tile (Linux/glibc only).

    Every tile allocates and frees the same large activation buffers. By default glibc
    serves those with ``mmap`` and returns them to the kernel when freed, so every tile
    page-faults (and zeroes) all its memory again (docs/BENCHMARKS.md, "Speed and memory").
    Buffers up to :data:`_TILE_HEAP_BYTES` are kept. The defaults are restored and the free heap trimmed
    afterwards (``malloc_trim``), so a long-lived process such as QGIS gets its memory back.
    No-op elsewhere (macOS, Windows, musl).

    Yields a function that trims the heap (``malloc_trim``), called after every tile row:
    without it the width-sized row buffers (conversion, masks), freed between tiles of
    different sizes, fragment the never-trimmed heap and the peak grows with the raster
    height.
    """
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, _TILE_HEAP_BYTES)
        libc.mallopt(_M_TRIM_THRESHOLD, _TILE_HEAP_BYTES)
        libc.malloc_trim(0)  # what the calibration and the set-up freed: not under the tiles' peak
    try:
        yield (lambda: libc.malloc_trim(0)) if libc is not None else (lambda: None)
    finally:
        if libc is not None:
            libc.mallopt(_M_MMAP_THRESHOLD, _GLIBC_DEFAULT)
            libc.mallopt(_M_TRIM_THRESHOLD, _GLIBC_DEFAULT)
            libc.malloc_trim(0)
