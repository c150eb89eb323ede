"""GDAL error handling shared by the engine's readers and writers (GDAL only).

GDAL reports errors through global state (exceptions on/off, the block cache) and, when a
dataset is destroyed, through destructors that cannot raise. These helpers make both
behave inside the engine and restore the host application's (QGIS's) settings after.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Iterator
from typing import Any

from osgeo import gdal


@contextlib.contextmanager
def gdal_errors(cache_bytes: int | None = 32 * 2**20) -> Iterator[None]:
    """Run a block with GDAL exceptions on and a bounded block cache; restore both after.

    GDAL's default cache is 5 % of RAM and grows with the raster being written; bounding it
    keeps the engine's peak memory independent of the raster size. 32 MB holds the PAN blocks
    of one 10240 px wide tile row (about 20 MB); output blocks are written once, whole. Both
    settings are global, so they are restored for the host application (QGIS).
    """
    prev_exc = gdal.GetUseExceptions()
    prev_cache = gdal.GetCacheMax()
    gdal.UseExceptions()
    if cache_bytes is not None:
        gdal.SetCacheMax(int(cache_bytes))
    try:
        yield
    finally:
        if cache_bytes is not None:
            gdal.SetCacheMax(prev_cache)
        if not prev_exc:
            gdal.DontUseExceptions()


@contextlib.contextmanager
def block_cache(cache_bytes: int) -> Iterator[None]:
    """GDAL's block cache bounded to ``cache_bytes`` inside the block (blocks beyond it are
    dropped at once); the previous bound after."""
    prev = gdal.GetCacheMax()
    gdal.SetCacheMax(int(cache_bytes))
    try:
        yield
    finally:
        gdal.SetCacheMax(prev)


@contextlib.contextmanager
def closing_errors() -> Iterator[list[str]]:
    """Close datasets inside this block (drop the last reference) and collect their errors.

    GDAL writes the last blocks and the TIFF directory when a dataset is destroyed. If that
    fails (disk full), the Python bindings cannot raise from the destructor: they print
    "Exception ignored in: delete_Dataset" and the file is left truncated. Those errors are
    collected here instead (through ``sys.unraisablehook``; ``gdal.DontUseExceptions`` cannot
    be called while QGIS's error handlers are installed); the caller decides what to do.
    Other unraisable exceptions go to the previous hook.
    """
    errors: list[str] = []
    prev = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if getattr(unraisable.object, "__name__", "") == "delete_Dataset":
            errors.append(str(unraisable.exc_value))
        else:
            prev(unraisable)

    sys.unraisablehook = hook
    try:
        yield errors
    finally:
        sys.unraisablehook = prev


def clear_frames_below(exc: BaseException) -> None:
    """Drop the locals of the finished frames in ``exc``'s traceback and its context chain.

    The frames of a failed write hold the dataset (GDAL's ``WriteArray(self=ds)``): clearing
    them lets the caller close the file itself, quietly, before removing it. The frame that
    handles ``exc`` (the first of its traceback) still runs and is skipped.
    """
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        tb = e.__traceback__
        traceback.clear_frames(tb.tb_next if tb is not None and e is exc else tb)
        e = e.__context__


def first_line(exc: BaseException) -> str:
    """First line of an exception's message (GDAL's can run over several), or its type name."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
