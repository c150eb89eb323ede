"""Step 4 of ``engine.run.pansharpen``: the tiles through the predictor into the output GeoTIFF.

Each tile is read with a context margin (reflection-padded past the grid edge), run in
batches through the predictor, margin cropped, blended with ``core.tiling.tile_weights`` into
a block accumulator (one tile of open columns plus the seam rows shared with the next tile
row); finished rectangles are converted (clip/round/nodata) and written block by block, as
each GeoTIFF block is complete (``engine.output.BlockWriter``), to a tiled, DEFLATE-compressed
GeoTIFF. On
error or cancellation the partial output is removed.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from psdnet_qgis.core.radiometry import Normalizer
from psdnet_qgis.core.tiling import Tile, tile_weights
from psdnet_qgis.engine import output
from psdnet_qgis.engine.feedback import Feedback
from psdnet_qgis.engine.fusion import Fusion, Predictor
from psdnet_qgis.engine.gdalerr import block_cache, clear_frames_below, closing_errors, first_line
from psdnet_qgis.engine.memory import keep_freed_memory
from psdnet_qgis.engine.raster import RasterInputs
from psdnet_qgis.errors import PSDNetCanceled, PSDNetOutputError


def write_output(inputs: RasterInputs, out: str, dtype: int, nodata: float | None, tiles: Sequence[Tile],
                 fusion: Fusion, margin: int, fb: Feedback) -> None:
    """Create the output ``out`` (GDAL type ``dtype``), run every tile into it, close it and check
    that it is complete; remove it on any error or cancellation."""
    ds = None
    writer = None
    try:
        try:
            ds = output.create_output(out, inputs, dtype, nodata, fusion.descriptions)
        except RuntimeError as exc:
            raise PSDNetOutputError(
                f"Output '{out}' cannot be created ({first_line(exc)}); check the "
                "folder permissions and free disk space."
            ) from None
        writer = output.BlockWriter(ds, dtype, nodata)
        with block_cache(tile_cache_bytes(inputs, tiles, margin)), keep_freed_memory() as trim_heap:
            run_tiles(inputs, tiles, fusion.predictor, fusion.normalizer, writer, fb,
                      fusion.batch_size, margin, after_row=trim_heap)
        try:
            writer.close()
            ds.FlushCache()
        except RuntimeError as exc:
            raise output.write_error(out, exc) from None
        with closing_errors() as errors:  # the TIFF directory is written here
            writer = ds = None
        if errors:
            raise output.write_error(out, RuntimeError(errors[0]))
        output.check_complete(out)
    except BaseException as exc:
        # The frames of a failed write hold the dataset: clear them so that the file is
        # closed here, quietly, before it is removed.
        clear_frames_below(exc)
        with closing_errors():
            writer = ds = None
        output.remove_output(out)
        raise


#: Bounds of the GDAL block cache while tiles run (bytes).
CACHE_MIN, CACHE_MAX = 4 << 20, 32 << 20


def tile_cache_bytes(inputs: RasterInputs, tiles: Sequence[Tile], margin: int) -> int:
    """The block cache for the tile loop: the input blocks of one tile row, with a quarter to
    spare, within :data:`CACHE_MIN` and :data:`CACHE_MAX`. A cache as big as GDAL allows fills
    up with blocks of rows already done and, allocated between the tiles' buffers, keeps the
    heap from shrinking: at 16 MPx a 32 MB cache cost 24 MB more peak memory than this one."""
    rows = max((t.height for t in tiles), default=1) + 2 * margin
    cols = max((t.width for t in tiles), default=1) + 2 * margin
    return int(min(CACHE_MAX, max(CACHE_MIN, 1.25 * inputs.tile_row_cache_bytes(rows, cols))))


def run_tiles(inputs: RasterInputs, tiles: Sequence[Tile], predictor: Predictor, normalizer: Normalizer,
              writer: output.BlockWriter, fb: Feedback, batch_size: int, margin: int,
              after_row: Callable[[], Any] = lambda: None) -> None:
    """Predict every tile, blend into a block accumulator, write blocks as they are finished.

    ``after_row`` runs after each tile row is done (the engine trims the heap there,
    see :func:`psdnet_qgis.engine.memory.keep_freed_memory`).

    Tiles run one tile row at a time, left to right (batches never span two tile rows); the
    weights of a plan sum to 1, so a pixel is final once every tile covering it is done:

    * columns left of the next tile's first column get nothing more from this tile row:
      their rows above the next tile row's first PAN row are final and go to the writer,
      which writes each GeoTIFF block once it is complete (:class:`~psdnet_qgis.engine.output.
      BlockWriter`); their rows below (the seam with the next tile row) move to a seam buffer;
    * the seam buffer (``C x seam rows x W`` float32, the overlap only) starts the next tile
      row's sums, so each pixel is summed in the same order as by a whole-raster accumulator
      (earlier tile row first, then left to right): the output is bit-identical to it.

    Held in float32: one tile of open columns (``C x tile*r x tile*r``) and two seam buffers;
    the writer holds the blocks cut by the finished region's edge. Nothing is ``tile * r`` rows
    by the raster width.
    """
    r, C, W, H = inputs.ratio, inputs.bands, inputs.width, inputs.height
    mp = margin * r
    groups: list[list[Tile]] = []
    for t in tiles:
        if groups and groups[-1][0].row == t.row:
            groups[-1].append(t)
        else:
            groups.append([t])
    band = _TileRowBand(C, max(t.height for t in tiles) * r, max(t.width for t in tiles) * r, W)
    n, done = len(tiles), 0
    weights_cache: dict[Any, np.ndarray] = {}

    def emit(y0: int, x0: int, phys: np.ndarray) -> None:
        try:
            writer.add(phys, y0, x0, inputs.valid_window(y0, x0, phys.shape[1], phys.shape[2]))
        except RuntimeError as exc:
            raise output.write_error(writer.ds.GetDescription(), exc) from None

    for g, group in enumerate(groups):
        until = groups[g + 1][0].row * r if g + 1 < len(groups) else H  # first row of the next tile row
        band.start(group[0].row * r, max(t.height for t in group) * r, until)
        # a tile row has at most 3 kinds of tile (left edge, inner, right edge): keeping the
        # weights of every kind of the plan (up to 9 tiles' worth) grew with the tile count
        weights_cache.clear()
        for start in range(0, len(group), batch_size):
            if fb.is_canceled():
                raise PSDNetCanceled("Cancelled by the user; the partial output was removed.")
            batch = group[start:start + batch_size]
            pred = predictor.predict(*read_batch(inputs, batch, margin, normalizer))
            for t, p in zip(batch, pred, strict=False):
                core = normalizer.denorm_ms(p[:, mp:mp + t.height * r, mp:mp + t.width * r])
                key = (t.height, t.width, t.top, t.bottom, t.left, t.right, getattr(t, "blend", None))
                wgt = weights_cache.get(key)
                if wgt is None:
                    wgt = weights_cache[key] = tile_weights(t, r)
                core *= wgt
                band.add(t.row * r, t.col * r, core, emit)
            done += len(batch)
            fb.progress(2.0 + 97.0 * done / n)
        band.finish(emit)
        after_row()


class _TileRowBand:
    """The open part of the output while one tile row runs (float32 sums, PAN px).

    ``win`` holds output columns ``[c0, c0 + tile width)`` of the tile row's rows
    ``[y0, y0 + tile height)``; ``seam`` the sums of the previous tile row over the rows it
    shares with this one, ``seam_next`` those of this row for the next (full width, overlap
    rows only).
    """

    def __init__(self, bands: int, height: int, width: int, raster_width: int) -> None:
        self.win = np.zeros((bands, height, width), np.float32)
        self.W = raster_width
        self.seam: np.ndarray = np.zeros((bands, 0, raster_width), np.float32)
        self.seam_next: np.ndarray = self.seam
        #: the two seam buffers, reused row after row (see :func:`_outside_heap`): the one under
        #: ``seam``, the one under ``seam_next``
        self._seam_buf: np.ndarray | None = None
        self._next_buf: np.ndarray | None = None
        self.y0 = self.rows = self.until = self.c0 = self.lo = 0

    def start(self, y0: int, rows: int, until: int) -> None:
        """Open the tile row of rows ``[y0, y0 + rows)``; rows from ``until`` on are shared
        with the next tile row."""
        if self.seam_next.shape[1] and y0 != self.until:
            raise ValueError(f"tile row at PAN row {y0} does not start where the previous one's seam "
                             f"does ({self.until})")
        free = self._seam_buf  # under the seam of the row before the previous one: done with
        self.seam, self._seam_buf = self.seam_next, self._next_buf  # the previous row's seam, rows [y0, y0 + seam rows)
        keep = max(0, y0 + rows - until)
        if keep > self.win.shape[1]:
            raise ValueError("tile row seam taller than a tile")
        if keep:
            if free is None or free.shape[1] < keep:
                free = _outside_heap((self.win.shape[0], keep, self.W))
            self.seam_next = free[:, :keep]
            self.seam_next.fill(0.0)
        else:
            self.seam_next = np.zeros((self.win.shape[0], 0, self.W), np.float32)
        self._next_buf = free
        self.y0, self.rows, self.until = y0, rows, until
        self.c0 = self.lo = 0
        self._load(0, self.win.shape[2])

    def _load(self, first: int, count: int) -> None:
        """(Re)start window columns ``[first, first + count)`` from the seam (zero below it)."""
        win = self.win
        win[:, :, first:first + count] = 0.0
        s = self.seam.shape[1]
        x0 = self.c0 + first
        x1 = min(self.W, x0 + count)
        if s and x1 > x0:
            win[:, :s, first:first + x1 - x0] = self.seam[:, :, x0:x1]

    def _emit(self, x1: int, emit: Callable[[int, int, np.ndarray], None]) -> None:
        """Hand over window columns ``[lo, x1)``: final rows to ``emit``, seam rows to ``seam_next``."""
        x0 = self.lo
        if x1 <= x0:
            return
        a, b = x0 - self.c0, x1 - self.c0
        k = self.until - self.y0  # final rows of the window
        self.seam_next[:, :, x0:x1] = self.win[:, k:k + self.seam_next.shape[1], a:b]
        emit(self.y0, x0, self.win[:, :k, a:b])
        self.lo = x1

    def add(self, y: int, x: int, core: np.ndarray, emit: Callable[[int, int, np.ndarray], None]) -> None:
        """Add a weighted tile ``core`` (C, h, w) at output px (y, x); columns left of ``x`` are
        final (tiles of a row come left to right) and are handed over first."""
        if y != self.y0 or x < self.lo:
            raise ValueError(f"tile at PAN ({y}, {x}) out of order (tile row at {self.y0}, next column {self.lo})")
        self._emit(x, emit)
        w = self.win.shape[2]
        shift = x - self.c0
        if shift:
            if shift < w:
                self.win[:, :, :w - shift] = self.win[:, :, shift:].copy()
            self.c0 = x
            self._load(max(0, w - shift), min(w, shift))
        h, cw = core.shape[1:]
        self.win[:, :h, :cw] += core

    def finish(self, emit: Callable[[int, int, np.ndarray], None]) -> None:
        """Hand over every column left (the tile row is done)."""
        self._emit(self.W, emit)


def _outside_heap(shape: tuple[int, ...]) -> np.ndarray:
    """A zeroed float32 array in an anonymous memory map of its own, out of the heap.

    The seam rows are as wide as the raster (``C x overlap * ratio x W``: 5 MB at 10240 px).
    Allocated from the heap at every tile row, as they were, they landed among the tiles'
    buffers that the heap keeps while tiles run (``engine.memory``), and the peak of the tile
    rows grew with the raster width; two maps, reused row after row, stay out of it.
    """
    n = int(np.prod(shape))
    if n == 0:
        return np.zeros(shape, np.float32)
    return np.frombuffer(mmap.mmap(-1, n * 4), np.float32).reshape(shape)


def read_batch(inputs: RasterInputs, batch: Sequence[Tile], margin: int, normalizer: Normalizer
                ) -> tuple[np.ndarray, np.ndarray]:
    """Normalised (B, C, h + 2m, w + 2m) MS and (B, 1, ...) PAN of a batch of tiles with margins.

    Nodata pixels get the band mean (normalised 0.5), so no wild values enter the model.
    """
    C, m = inputs.bands, margin
    fill_ms = normalizer.ms_mean.astype(np.float32)[:, None]
    fill_pan = np.float32(normalizer.pan_mean)
    ms_b, pan_b = [], []
    for t in batch:
        ms_t, ms_v, pan_t, pan_v = inputs.read_tile(t.row, t.col, t.height, t.width, m)
        if not ms_v.all():
            ms_t[:, ~ms_v] = np.broadcast_to(fill_ms, (C, int((~ms_v).sum())))
        if not pan_v.all():
            pan_t[:, ~pan_v] = fill_pan
        ms_b.append(normalizer.norm_ms(ms_t))
        pan_b.append(normalizer.norm_pan(pan_t))
    return np.stack(ms_b), np.stack(pan_b)
