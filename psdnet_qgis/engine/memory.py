"""Heap tuning of the tile loop (glibc ``mallopt`` / ``malloc_trim``; a no-op elsewhere)."""

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
    libc = None
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
            if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
                libc = None
        except OSError:
            libc = None
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
