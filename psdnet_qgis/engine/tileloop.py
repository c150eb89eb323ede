"""Step 4 of ``engine.run.pansharpen``: the tiles through the predictor into the output GeoTIFF.

Each tile is read with a context margin (reflection-padded past the grid edge), run in
batches through the predictor, margin cropped, blended with ``core.tiling.tile_weights`` into
a row-strip accumulator; finished rows are converted (clip/round/nodata) and written block
row by block row (``engine.output.StripWriter``) to a tiled, DEFLATE-compressed GeoTIFF. On
error or cancellation the partial output is removed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from psdnet_qgis.core.radiometry import Normalizer
from psdnet_qgis.core.tiling import Tile, tile_weights
from psdnet_qgis.engine import output
from psdnet_qgis.engine.feedback import Feedback
from psdnet_qgis.engine.fusion import Fusion, Predictor
from psdnet_qgis.engine.gdalerr import clear_frames_below, closing_errors, first_line
from psdnet_qgis.engine.memory import keep_freed_memory
from psdnet_qgis.engine.raster import RasterInputs
from psdnet_qgis.errors import PSDNetCanceled, PSDNetInputError, PSDNetOutputError


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
        writer = output.StripWriter(ds, dtype, nodata)
        with keep_freed_memory() as trim_heap:
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


def run_tiles(inputs: RasterInputs, tiles: Sequence[Tile], predictor: Predictor, normalizer: Normalizer,
              writer: output.StripWriter, fb: Feedback, batch_size: int, margin: int,
              after_row: Callable[[], Any] = lambda: None) -> None:
    """Predict every tile, blend into a row-strip accumulator, write finished rows.

    ``after_row`` runs after each tile row is written (the engine trims the heap there,
    see :func:`psdnet_qgis.engine.memory.keep_freed_memory`).

    Tiles are processed one tile row at a time (batches never span two tile rows). Once a
    tile row is done, output rows above the next tile row's first PAN row receive no further
    contribution (the weights of a plan sum to 1): they are written, and the overlap rows
    are moved to the top of the fixed-size accumulator (``C x tile*r x W`` float32).
    """
    r, C, W, H = inputs.ratio, inputs.bands, inputs.width, inputs.height
    mp = margin * r
    groups: list[list[Tile]] = []
    for t in tiles:
        if groups and groups[-1][0].row == t.row:
            groups[-1].append(t)
        else:
            groups.append([t])
    acc = np.zeros((C, max(t.height for t in tiles) * r, W), dtype=np.float32)
    acc0 = 0  # output row held by acc[:, 0]
    n, done = len(tiles), 0
    weights_cache: dict[Any, np.ndarray] = {}

    for g, group in enumerate(groups):
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
                y0, x0 = t.row * r - acc0, t.col * r
                core *= wgt
                acc[:, y0:y0 + t.height * r, x0:x0 + t.width * r] += core
            done += len(batch)
            fb.progress(2.0 + 97.0 * done / n)
        # rows above the next tile row are final
        until = groups[g + 1][0].row * r if g + 1 < len(groups) else H
        k = until - acc0
        valid = inputs.valid_rows(acc0, k)
        try:
            writer.add(acc[:, :k], valid)
        except RuntimeError as exc:
            raise output.write_error(writer.ds.GetDescription(), exc) from None
        keep = group[0].row * r + group[0].height * r - until  # overlap rows still open
        if keep > 0:
            acc[:, :keep] = acc[:, k:k + keep]
        acc[:, max(keep, 0):] = 0.0
        acc0 = until
        after_row()


def read_batch(inputs: RasterInputs, batch: Sequence[Tile], margin: int, normalizer: Normalizer
                ) -> tuple[np.ndarray, np.ndarray]:
    """Normalised (B, C, h + 2m, w + 2m) MS and (B, 1, ...) PAN of a batch of tiles with margins.

    Nodata pixels get the band mean (normalised 0.5), so no wild values enter the model.
    """
    r, C, m = inputs.ratio, inputs.bands, margin
    fill_ms = normalizer.ms_mean.astype(np.float32)[:, None]
    fill_pan = np.float32(normalizer.pan_mean)
    ms_b, pan_b = [], []
    for t in batch:
        try:
            ms_t, ms_v = inputs.read_ms(t.row - m, t.col - m, t.height + 2 * m, t.width + 2 * m)
            pan_t, pan_v = inputs.read_pan((t.row - m) * r, (t.col - m) * r,
                                           (t.height + 2 * m) * r, (t.width + 2 * m) * r)
        except RuntimeError as exc:
            raise PSDNetInputError(
                f"Inputs '{inputs.pan_path}' / '{inputs.ms_path}': read failed at MS row "
                f"{t.row}, col {t.col} ({first_line(exc)}); the file is damaged: "
                "copy it again."
            ) from None
        if not ms_v.all():
            ms_t[:, ~ms_v] = np.broadcast_to(fill_ms, (C, int((~ms_v).sum())))
        if not pan_v.all():
            pan_t[:, ~pan_v] = fill_pan
        ms_b.append(normalizer.norm_ms(ms_t))
        pan_b.append(normalizer.norm_pan(pan_t))
    return np.stack(ms_b), np.stack(pan_b)
