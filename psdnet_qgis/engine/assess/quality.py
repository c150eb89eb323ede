"""Quality assessment of a pansharpened raster (GDAL + numpy; never torch, never qgis).

Two protocols (see ``METRICS.md`` in the shared docs and :mod:`psdnet_qgis.core.metrics`):

* **Full resolution** (always): the fused raster against the PAN and MS it was made from:
  D_lambda, D_s, QNR and HQNR. No reference needed.
* **Reduced resolution** (only with a reference): the fused raster against a reference
  image on the same grid, usually the original MS of a Wald-protocol experiment where the
  fused image was made from MTF-degraded PAN and MS: Q2n, Q, SAM, ERGAS, SCC.

Geometry and validity: :mod:`psdnet_qgis.engine.assess.ongrid` (the engine's output grid; the
fused raster and the reference must have the PAN pixel size and are read by georeference
onto it). The evaluated region is the intersection of everything, snapped inwards to whole
MS working pixels. Metrics are computed on fully valid rectangles only (the metrics are
block statistics; a fill value inside a block would dominate them):

* **Whole mode** (region <= ``max_pixels`` PAN px): the whole region is read and trimmed to
  a fully valid rectangle by repeatedly dropping the border row or column (of MS working
  pixels) with the largest invalid fraction; the metrics are computed on that rectangle.
* **Sampled mode** (larger regions): the region is cut into blocks of ``block`` PAN px a
  side (a multiple of the ratio, so blocks are aligned to the MS working grid); the blocks
  are visited in an order shuffled by ``numpy.random.default_rng(seed)``, invalid ones are
  skipped, and the first ``max(1, max_pixels // block**2)`` fully valid blocks are
  evaluated (at most ``4 * n + 16`` blocks are read). Each block is read with one extra
  Q window (32 MS px) at its bottom and right, so it owns exactly the sliding Q windows
  whose top-left corner lies in it, and the blocks' statistics are pooled, weighted by
  their sample counts, *before* the metrics are formed: Q, Q2n, SAM, SCC are means;
  ERGAS uses pooled per-band errors and means; D_lambda and D_s take the absolute
  differences of pooled Q values (:mod:`psdnet_qgis.engine.assess.pooling`). So the sample is an unbiased
  estimate, and all blocks of an image together give its whole-image values (up to the
  MTF filters' block borders, ~1e-4). The sample (seed, block size, block count, pixel
  count) is reported with the results.

Q2n (and Khan's D_lambda inside HQNR) is computed on integer digital numbers, as the
toolbox does; float rasters holding reflectances (MS maximum <= 2) are scaled by 10000
first (``dn_scale``, reported).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from psdnet_qgis.core.resample import upsample_bicubic
from psdnet_qgis.engine.assess.ongrid import OnGrid, Window, WindowReader, is_integer_type, on_grid
from psdnet_qgis.engine.assess.pooling import Q_BLOCK, WindowStats, combine, window_stats
from psdnet_qgis.engine.assess.quicklook import write_quicklook
from psdnet_qgis.engine.assess.results import AssessInputs, AssessReport
from psdnet_qgis.engine.feedback import Feedback, FeedbackLike, as_feedback
from psdnet_qgis.engine.gdalerr import gdal_errors
from psdnet_qgis.engine.raster import RasterInputs, open_inputs
from psdnet_qgis.errors import PSDNetCanceled, PSDNetInputError

#: Largest region (PAN px) evaluated whole; larger ones are sampled by blocks. Whole-mode
#: peak memory is about 650 bytes per PAN px for 4 bands (the metrics work in float64), so
#: 1 MPx stays near 0.7 GB; a 1 MPx block sample of a large image needs under 0.2 GB and
#: about 2 s on one core.
DEFAULT_MAX_PIXELS = 1_048_576
#: Side of a sample block in PAN px (rounded down to a multiple of the ratio).
DEFAULT_BLOCK = 256
#: Seed of the block sample.
DEFAULT_SEED = 0
#: Quicklook crop side in PAN px.
QUICKLOOK_SIDE = 384
SAMPLINGS = ("auto", "whole", "blocks")


class _Sample(NamedTuple):
    """The evaluated windows of a region."""

    mode: str  # "whole" | "sampled"
    per_window: list[tuple[int, WindowStats]]  # (pixels, statistics) per window
    windows: list[tuple[int, int, int, int]]  # (row, col, height, width), PAN px
    first: Window  # shown in the quicklook


# ------------------------------------------------------------------------------ regions
def valid_rectangle(valid: np.ndarray) -> tuple[int, int, int, int] | None:
    """Largest-effort fully valid rectangle of a mask by peeling invalid border lines.

    Repeatedly removes the border row or column with the largest invalid fraction (ties:
    top, bottom, left, right) until none is invalid. Good for fill along image edges
    (straight or slanted); O((h + w) * max(h, w)).

    Args:
        valid: (h, w) bool.

    Returns:
        (r0, r1, c0, c1) half-open, or None when nothing valid is left.
    """
    bad = ~valid
    h, w = bad.shape
    r0, r1, c0, c1 = 0, h, 0, w
    row_bad = bad.sum(axis=1).astype(np.int64)
    col_bad = bad.sum(axis=0).astype(np.int64)
    while r0 < r1 and c0 < c1:
        if row_bad[r0:r1].sum() == 0:
            return r0, r1, c0, c1
        nr, nc = r1 - r0, c1 - c0
        cand = ((row_bad[r0] / nc, 0), (row_bad[r1 - 1] / nc, 1),
                (col_bad[c0] / nr, 2), (col_bad[c1 - 1] / nr, 3))
        side = max(cand, key=lambda t: (t[0], -t[1]))[1]
        if side == 0:
            col_bad[c0:c1] -= bad[r0, c0:c1]
            r0 += 1
        elif side == 1:
            col_bad[c0:c1] -= bad[r1 - 1, c0:c1]
            r1 -= 1
        elif side == 2:
            row_bad[r0:r1] -= bad[r0:r1, c0]
            c0 += 1
        else:
            row_bad[r0:r1] -= bad[r0:r1, c1 - 1]
            c1 -= 1
    return None


def _auto_dn_scale(inputs: RasterInputs) -> float:
    """10000 for float MS holding reflectances (valid maximum <= 2), else 1."""
    if is_integer_type(inputs.ms_dtype):
        return 1.0
    ms, _, valid, _ = inputs.read_sample(256)
    vals = ms[:, valid]
    return 10000.0 if vals.size and float(np.abs(vals).max()) <= 2.0 else 1.0


# ------------------------------------------------------------------------------ main entry
def assess(
    fused_path: str,
    pan_path: str,
    ms_path: str,
    reference_path: str | None = None,
    sensor: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    feedback: FeedbackLike | None = None,
    *,
    block: int = DEFAULT_BLOCK,
    seed: int = DEFAULT_SEED,
    pan_band: int = 1,
    quicklook_png: str | None = None,
    rgb: Sequence[int] | None = None,
    dn_scale: float | None = None,
    sampling: str = "auto",
) -> AssessReport:
    """Quality metrics of a pansharpened raster.

    Args:
        fused_path: the pansharpened raster (C bands, PAN pixel size, georeferenced).
        pan_path: the PAN it was made from.
        ms_path: the MS it was made from (C bands).
        reference_path: optional reference on the fused grid (C bands; e.g. the original MS
            of a reduced-resolution experiment). Enables Q2n, Q, SAM, ERGAS and SCC.
        sensor: sensor name for the MTF gains of HQNR (``core.mtf.gnyq_for``; None = unknown).
        max_pixels: largest region (PAN px) evaluated whole; larger ones are sampled.
        feedback: ``engine.feedback`` style object (info / progress / is_canceled).
        block: sample block side in PAN px (rounded down to a multiple of the ratio).
        seed: seed of the block sample.
        pan_band: 1-based PAN band.
        quicklook_png: when given, a PNG (MS bicubic-upsampled | fused | PAN) is written there.
        rgb: 0-based band indices shown as red, green, blue in the quicklook; default
            (2, 1, 0) (the project's Blue, Green, Red[, NIR] order) for >= 3 bands.
        dn_scale: factor bringing values to integer digital numbers for Q2n / HQNR; None =
            10000 for float MS whose maximum is <= 2 (reflectances), else 1.
        sampling: "auto" (whole up to ``max_pixels``, else blocks), "whole" or "blocks"
            (blocks even for small images: up to ``max_pixels`` px of them).

    Returns:
        The :class:`~psdnet_qgis.engine.assess.results.AssessReport` (``metrics``: key -> float |
        None for every ``METRIC_KEYS`` key; ``mode`` "whole" | "sampled"; ``windows``: (row, col,
        height, width) in PAN px of the output grid; ...); ``to_dict()`` gives the plain dict of
        the JSON / CSV / HTML writers.

    Raises:
        PSDNetInputError: unusable inputs (the message names the input and the fix).
        PSDNetCanceled: cancelled through ``feedback``.
    """
    fb = as_feedback(feedback)
    t0 = time.perf_counter()
    if max_pixels < 1:
        raise PSDNetInputError(f"max_pixels={max_pixels}: give a positive number of PAN pixels.")
    notes: set[str] = set()
    with gdal_errors():
        inputs = open_inputs(pan_path, ms_path, pan_band)
        try:
            if dn_scale is None:
                dn_scale = _auto_dn_scale(inputs)
            return _assess(inputs, fused_path, reference_path, sensor, max_pixels, block, seed,
                           quicklook_png, rgb, float(dn_scale), sampling, fb, notes, t0)
        finally:
            inputs.close()


def _assess(inputs: RasterInputs, fused_path: str, reference_path: str | None, sensor: str | None,
            max_pixels: int, block: int, seed: int, quicklook_png: str | None,
            rgb: Sequence[int] | None, dn_scale: float, sampling: str, fb: Feedback, notes: set[str],
            t0: float) -> AssessReport:
    """:func:`assess` on opened inputs: place the rasters, evaluate the region, pool, report."""
    r = inputs.ratio
    fused = on_grid(os.fspath(fused_path), "Fused", inputs, inputs.bands)
    ref = on_grid(os.fspath(reference_path), "Reference", inputs, inputs.bands) \
        if reference_path else None
    if inputs.ms_warped:
        notes.add(f"MS read through a cubic warp onto the PAN grid ({inputs.warp_reason})")
    for g in (fused, ref):
        if g is not None and g.warped:
            notes.add(f"{g.name.lower()} raster read through a cubic warp onto the PAN grid "
                      "(it is not on the PAN's pixel grid)")
    region = _region(inputs, fused, ref, fused_path)
    r0, r1, c0, c1 = region
    reader = WindowReader(inputs, fused, ref)
    region_pixels = (r1 - r0) * (c1 - c0)
    fb.info(f"Assessing {inputs.bands} bands, ratio {r}, region {c1 - c0} x {r1 - r0} PAN px"
            + (" with a reference" if ref is not None else " without reference (full resolution only)"))

    # blocks hold whole MS working pixels and at least one 32 px Q block at the MS scale
    b = max(block // r * r, Q_BLOCK * r)
    if sampling not in SAMPLINGS:
        raise PSDNetInputError(f"sampling={sampling!r}: use 'auto', 'whole' or 'blocks'.")
    stats = (sensor, dn_scale, notes)
    if sampling == "whole" or (sampling == "auto" and region_pixels <= max_pixels):
        sample = _evaluate_whole(reader, region, stats, fused_path, ref is not None, fb)
    else:
        sample = _evaluate_blocks(reader, region, b, max_pixels, seed, stats, fused_path, fb)

    metrics = combine(sample.per_window, r)
    sampled = sum(n for n, _ in sample.per_window)
    ql = None
    if quicklook_png:
        ql = _quicklook(sample.first, os.fspath(quicklook_png), r, rgb)
    if ref is None:
        notes.add("no reference: reduced-resolution metrics (Q2n, Q, SAM, ERGAS, SCC) not computed")
    fb.progress(100)
    sampled_mode = sample.mode == "sampled"
    return AssessReport(
        metrics=metrics,
        ratio=r,
        bands=inputs.bands,
        sensor=sensor or "unknown",
        mode=sample.mode,
        sampled_pixels=int(sampled),
        region_pixels=int(region_pixels),
        windows=tuple(sample.windows),
        block=b if sampled_mode else None,
        seed=seed if sampled_mode else None,
        max_pixels=int(max_pixels),
        dn_scale=dn_scale,
        inputs=AssessInputs(fused=os.fspath(fused_path), pan=inputs.pan_path, ms=inputs.ms_path,
                            reference=os.fspath(reference_path) if reference_path else None),
        notes=tuple(sorted(notes)),
        quicklook=ql,
        seconds=time.perf_counter() - t0,
    )


def _region(inputs: RasterInputs, fused: OnGrid, ref: OnGrid | None, fused_path: str
            ) -> tuple[int, int, int, int]:
    """Evaluated region (row0, row1, col0, col1) in PAN px: what every raster covers, snapped
    inwards to whole MS working pixels."""
    r = inputs.ratio
    r0, r1, c0, c1 = 0, inputs.height, 0, inputs.width
    for g in (fused, ref):
        if g is not None:
            a0, a1, b0, b1 = g.covered(inputs.width, inputs.height)
            r0, r1, c0, c1 = max(r0, a0), min(r1, a1), max(c0, b0), min(c1, b1)
    r0, c0 = -(-r0 // r) * r, -(-c0 // r) * r
    r1, c1 = r1 // r * r, c1 // r * r
    if r1 - r0 < r or c1 - c0 < r:
        raise PSDNetInputError(
            f"Fused input '{fused_path}' does not overlap the PAN / MS intersection: give the "
            "pansharpened result of these PAN and MS inputs.")
    return r0, r1, c0, c1


def _evaluate_whole(reader: WindowReader, region: tuple[int, int, int, int],
                    stats: tuple[str | None, float, set[str]], fused_path: str, with_ref: bool,
                    fb: Feedback) -> _Sample:
    """Whole mode: the region read at once, trimmed to a fully valid rectangle."""
    r = reader.r
    r0, r1, c0, c1 = region
    sensor, dn_scale, notes = stats
    win = reader.read(r0, c0, r1 - r0, c1 - c0)
    fb.progress(30)
    rect = valid_rectangle(win.valid)
    if rect is None:
        raise PSDNetInputError(
            f"Fused input '{fused_path}': no pixel where the fused, PAN, MS"
            + (" and reference" if with_ref else "")
            + " images are all valid (not nodata): check that the inputs belong together.")
    a0, a1, b0, b1 = rect
    if (a1 - a0, b1 - b0) != win.valid.shape:
        notes.add(f"no-data border trimmed: evaluated {(b1 - b0) * r} x {(a1 - a0) * r} of "
                  f"{c1 - c0} x {r1 - r0} PAN px")
    win = win.crop(a0, a1, b0, b1, r)
    n = win.fused.shape[1] * win.fused.shape[2]
    per_window = [(n, window_stats(win, r, sensor, dn_scale, notes))]
    fb.progress(90)
    return _Sample("whole", per_window, [(win.row, win.col, win.fused.shape[1], win.fused.shape[2])], win)


def _evaluate_blocks(reader: WindowReader, region: tuple[int, int, int, int], b: int, max_pixels: int,
                     seed: int, stats: tuple[str | None, float, set[str]], fused_path: str,
                     fb: Feedback) -> _Sample:
    """Sampled mode: fully valid blocks of ``b`` PAN px, visited in a seeded random order."""
    r = reader.r
    r0, r1, c0, c1 = region
    sensor, dn_scale, notes = stats
    region_pixels = (r1 - r0) * (c1 - c0)
    bh, bw = min(b, r1 - r0), min(b, c1 - c0)
    cands = [(y, x) for y in range(r0, r1 - bh + 1, bh) for x in range(c0, c1 - bw + 1, bw)]
    order = np.random.default_rng(seed).permutation(len(cands))
    target = max(1, max_pixels // (bh * bw))
    budget = 4 * target + 16
    ext = Q_BLOCK * r
    fb.info(f"Region of {region_pixels} px: sampling up to {target} valid blocks of "
            f"{bw} x {bh} PAN px out of {len(cands)} (seed {seed})")
    per_window: list[tuple[int, WindowStats]] = []
    windows: list[tuple[int, int, int, int]] = []
    first: Window | None = None
    read = 0
    for idx in order:
        if len(per_window) >= target or read >= budget:
            break
        if fb.is_canceled():
            raise PSDNetCanceled("assessment cancelled")
        y, x = cands[int(idx)]
        # extended by one Q window at the MS scale where the region allows (owned windows)
        eh, ew = min(ext, r1 - y - bh), min(ext, c1 - x - bw)
        win = reader.read(y, x, bh + eh, bw + ew)
        win.core_h, win.core_w = bh, bw
        read += 1
        if not win.valid.all():
            continue
        per_window.append((bh * bw, window_stats(win, r, sensor, dn_scale, notes)))
        windows.append((y, x, bh, bw))
        first = first or win
        fb.progress(5 + 85 * len(per_window) / target)
    if first is None:
        raise PSDNetInputError(
            f"Fused input '{fused_path}': none of {read} sampled {bw} x {bh} px blocks is free "
            "of no-data; raise max_pixels to evaluate the image whole, or check the inputs.")
    if len(per_window) < target:
        notes.add(f"only {len(per_window)} of the {target} wanted blocks were fully valid "
                  f"among the {read} read")
    return _Sample("sampled", per_window, windows, first)


# ------------------------------------------------------------------------------ quicklook
def _quicklook(win: Window, path: str, ratio: int, rgb: Sequence[int] | None = None) -> str:
    """PNG of MS (bicubic upsampled) | fused | PAN over a central crop of ``win``.

    Drawn by :func:`engine.assess.quicklook.write_quicklook` (MS and fused share one stretch).

    Returns:
        The PNG path.
    """
    c = win.fused.shape[0]
    h, w = win.core
    side = max(ratio, QUICKLOOK_SIDE // ratio * ratio)
    ch, cw = min(h, side), min(w, side)
    y0 = (h - ch) // 2 // ratio * ratio
    x0 = (w - cw) // 2 // ratio * ratio
    ms = win.ms[:, y0 // ratio:(y0 + ch) // ratio, x0 // ratio:(x0 + cw) // ratio]
    lms = upsample_bicubic(ms.astype(np.float32), ratio)
    if rgb is None:
        rgb = (2, 1, 0) if c >= 3 else (0, 0, 0)
    idx = tuple(int(i) if 0 <= int(i) < c else 0 for i in rgb)
    write_quicklook(path, lms, win.fused[:, y0:y0 + ch, x0:x0 + cw], win.pan[:, y0:y0 + ch, x0:x0 + cw],
                    rgb=idx)  # type: ignore[arg-type]
    return os.fspath(path)


__all__ = [
    "AssessReport", "assess", "valid_rectangle", "DEFAULT_MAX_PIXELS", "DEFAULT_BLOCK", "DEFAULT_SEED",
]
