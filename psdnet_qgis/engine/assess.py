"""Quality assessment of a pansharpened raster (GDAL + numpy; never torch, never qgis).

Two protocols (see ``METRICS.md`` in the shared docs and :mod:`psdnet_qgis.core.metrics`):

* **Full resolution** (always): the fused raster against the PAN and MS it was made from:
  D_lambda, D_s, QNR and HQNR. No reference needed.
* **Reduced resolution** (only with a reference): the fused raster against a reference
  image on the same grid, usually the original MS of a Wald-protocol experiment where the
  fused image was made from MTF-degraded PAN and MS: Q2n, Q, SAM, ERGAS, SCC.

Geometry. The analysis grid is the engine's output grid (:func:`engine.raster.open_inputs`:
PAN pixels over the PAN/MS footprint intersection, MS working pixels of ``ratio`` PAN px a
side, the MS warped onto it when its own grid is not aligned). The fused raster and the
reference must have the PAN pixel size; they are read by georeference onto that grid
(straight windows when aligned, an in-memory cubic warp otherwise). The evaluated region
is the intersection of everything, snapped inwards to whole MS working pixels.

Validity. A pixel is unusable when any input is NaN or equal to its declared nodata there,
lies outside a warped input's footprint, or, for integer rasters without declared nodata,
when all its bands are 0 (the usual fill of image edges, e.g. SpaceNet tiles). Metrics are
computed on fully valid rectangles only (the metrics are block statistics; a fill value
inside a block would dominate them):

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
  differences of pooled Q values (see ``_window_stats``). So the sample is an unbiased
  estimate, and all blocks of an image together give its whole-image values (up to the
  MTF filters' block borders, ~1e-4). The sample (seed, block size, block count, pixel
  count) is reported with the results.

Q2n (and Khan's D_lambda inside HQNR) is computed on integer digital numbers, as the
toolbox does; float rasters holding reflectances (MS maximum <= 2) are scaled by 10000
first (``dn_scale``, reported).
"""

from __future__ import annotations

import html
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from osgeo import gdal

from ..errors import PSDNetCanceled, PSDNetInputError
from .feedback import as_feedback
from .raster import RasterInputs, open_raster, dataset_srs, gdal_errors, open_inputs, warp_onto_grid

LOG = logging.getLogger(__name__)

#: Largest region (PAN px) evaluated whole; larger ones are sampled by blocks. Whole-mode
#: peak memory is about 650 bytes per PAN px for 4 bands (the metrics work in float64), so
#: 1 MPx stays near 0.7 GB; a 1 MPx block sample of a large image needs under 0.2 GB and
#: about 2 s on one core.
DEFAULT_MAX_PIXELS = 1_048_576
#: Side of a sample block in PAN px (rounded down to a multiple of the ratio).
DEFAULT_BLOCK = 256
#: Seed of the block sample.
DEFAULT_SEED = 0
#: Block size of the Q-type metrics (px of the grid they are computed on).
Q_BLOCK = 32
#: Quicklook crop side in PAN px.
QUICKLOOK_SIDE = 384
#: Misregistration (PAN px, over the whole raster) below which a raster is read directly.
ALIGN_TOLERANCE_PX = 0.05
#: Accepted relative difference between the fused (or reference) and PAN pixel sizes.
PIXEL_TOLERANCE = 0.02

REDUCED_KEYS = ("Q2n", "Q", "SAM", "ERGAS", "SCC")
FULL_KEYS = ("D_lambda", "D_s", "QNR", "D_lambda_K", "HQNR")
METRIC_KEYS = REDUCED_KEYS + FULL_KEYS

#: key -> (label, better, ideal, protocol, one-line meaning)
METRIC_INFO: dict[str, tuple[str, str, str, str, str]] = {
    "Q2n": ("Q2n", "higher", "1", "reduced", "hypercomplex quality index (Q4 / Q8), 32 px blocks"),
    "Q": ("Q", "higher", "1", "reduced", "universal image quality index, mean over bands"),
    "SAM": ("SAM (degrees)", "lower", "0", "reduced", "mean spectral angle"),
    "ERGAS": ("ERGAS", "lower", "0", "reduced", "relative dimensionless global error, 100 / r scaling"),
    "SCC": ("SCC", "higher", "1", "reduced", "correlation of Sobel spatial details"),
    "D_lambda": ("D_lambda", "lower", "0", "full", "spectral distortion (inter-band Q change)"),
    "D_s": ("D_s", "lower", "0", "full", "spatial distortion (Q with PAN change across scales)"),
    "QNR": ("QNR", "higher", "1", "full", "(1 - D_lambda)(1 - D_s)"),
    "D_lambda_K": ("D_lambda (Khan)", "lower", "0", "full",
                   "1 - Q2n(MS, fused MTF-degraded to the MS scale)"),
    "HQNR": ("HQNR", "higher", "1", "full", "(1 - D_lambda Khan)(1 - D_s)"),
}

# ------------------------------------------------------------------------------ grids
@dataclass
class _OnGrid:
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


def _is_integer(dtype: int) -> bool:
    return dtype not in (gdal.GDT_Float32, gdal.GDT_Float64) and not gdal.DataTypeIsComplex(dtype)


def _validity(arr: np.ndarray, nodata: float | None, zero_fill: bool) -> np.ndarray:
    """(C, H, W) -> (H, W) bool: finite, not nodata in any band, not all-zero fill."""
    valid = np.isfinite(arr).all(axis=0)
    if nodata is not None:
        valid &= ~(arr == np.float32(nodata)).any(axis=0)
    if zero_fill:
        valid &= (arr != 0).any(axis=0)
    return valid


def _on_grid(path: str, name: str, inputs: RasterInputs, bands: int) -> _OnGrid:
    """Open ``path`` and place it on the output grid of ``inputs`` (PSDNetInputError if it can't)."""
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
    zero_fill = nodata is None and _is_integer(band1.DataType)
    if same_crs and north_up:
        for size, ref, axis in ((gt[1], pan_px, "x"), (-gt[5], pan_py, "y")):
            if abs(size / ref - 1.0) > PIXEL_TOLERANCE:
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
            return _OnGrid(name, ds, -int(round(ox)), -int(round(oy)), bands, nodata, 0, zero_fill,
                           False)
    # Not on the grid: warp onto it (cubic), alpha band = footprint.
    vrt = warp_onto_grid(ds, name, path, (out_gt[0], out_gt[3], pan_px, pan_py),
                         inputs.width, inputs.height, pan_srs, nodata)
    return _OnGrid(name, vrt, 0, 0, bands, nodata, vrt.RasterCount, zero_fill, True)


# ------------------------------------------------------------------------------ reading
@dataclass
class _Window:
    """Aligned data of one evaluated rectangle (PAN px; multiples of the ratio).

    The arrays may extend past the rectangle the window *owns* (``core``, its top-left
    ``core_h x core_w`` part) at the bottom and right: the sliding 32 px Q windows whose
    top-left corner lies in the core are then all complete (see ``_window_stats``).
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


class _Reader:
    """Reads aligned fused / PAN / MS / reference windows of the output grid."""

    def __init__(self, inputs: RasterInputs, fused: _OnGrid, ref: _OnGrid | None) -> None:
        self.inputs = inputs
        self.fused = fused
        self.ref = ref
        self.r = inputs.ratio
        band = inputs.pan_ds.GetRasterBand(inputs.pan_band)
        self.pan_zero_fill = inputs.pan_nodata is None and _is_integer(band.DataType)
        self.ms_zero_fill = inputs.ms_nodata is None and _is_integer(inputs.ms_dtype) \
            and not inputs.ms_warped

    def read(self, row: int, col: int, rows: int, cols: int) -> _Window:
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
        return _Window(row, col, fused, pan, ms, ref, valid)


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


# ------------------------------------------------------------------------------ metrics
# Per-window statistics are combined *before* the non-linear parts of the metrics are
# taken: D_lambda and D_s are absolute differences of Q averages, ERGAS a square root of
# pooled errors. Averaging per-block D_lambda values instead would add up the blocks'
# random deviations (mean |x| >= |mean x|): measured on Landsat 8 Pamplona, 0.031 from
# sixteen 256 px blocks against 0.010 for the whole image.
#
# The sliding-window Q terms are evaluated over the windows whose top-left corner lies in
# the block ("owned" windows), read from a block extended by 31 px at the bottom and right
# on each grid. A tiling of blocks therefore owns every window of the image exactly once,
# so the sample mean of Q is unbiased; without the extension, the windows straddling block
# borders (60 % of the MS-scale windows for 64 MS px blocks) are lost and the sample
# estimate drifted by 0.02-0.03 in D_lambda / D_s on the test scenes.
# With one window (whole mode) the results equal core.metrics' bundles.
def _owned(a: np.ndarray, core_h: int, core_w: int) -> np.ndarray:
    """Crop (..., H, W) to the windows of side Q_BLOCK with a top-left corner in the core."""
    return a[..., :core_h + Q_BLOCK - 1, :core_w + Q_BLOCK - 1]


def _n_windows(a: np.ndarray) -> int:
    """Number of sliding Q windows (side Q_BLOCK, clamped like core.metrics) of (..., H, W)."""
    h, w = a.shape[-2:]
    k = min(Q_BLOCK, h, w)
    return (h - k + 1) * (w - k + 1)


def _n_blocks(a: np.ndarray) -> int:
    """Number of Q2n blocks (side and shift Q_BLOCK, last one mirror-padded) of (..., H, W)."""
    h, w = a.shape[-2:]
    return -(-h // Q_BLOCK) * -(-w // Q_BLOCK)


def _window_stats(win: _Window, ratio: int, sensor: str | None, dn_scale: float,
                  notes: set[str]) -> dict[str, tuple[Any, int]]:
    """Statistics of one fully valid window: key -> (mean value, number of samples it averages).

    Values are scalars or per-band / per-pair arrays; the sample counts (pixels, sliding
    windows or Q2n blocks) weight them when windows are combined.
    """
    from ..core import metrics, mtf  # numpy only

    ch, cw = win.core
    mh, mw = ch // ratio, cw // ratio
    f_ext = win.fused.astype(np.float64)
    f = f_ext[:, :ch, :cw]
    c = f.shape[0]
    npx = ch * cw
    out: dict[str, tuple[Any, int]] = {}
    if win.ref is not None:
        ref_ext = win.ref.astype(np.float64)
        ref = ref_ext[:, :ch, :cw]
        fq, rq = _owned(f_ext, ch, cw), _owned(ref_ext, ch, cw)
        out["Q2n"] = (metrics.q2n(f, ref, dn_scale=dn_scale), _n_blocks(f))
        out["Q"] = (metrics.q_index(fq, rq), _n_windows(fq))
        out["SAM"] = (metrics.sam(f, ref), npx)
        out["SCC"] = (metrics.scc(f, ref), npx)
        out["mse"] = (((f - ref) ** 2).mean(axis=(1, 2)), npx)  # (C,) pooled into ERGAS
        out["mu"] = (ref.mean(axis=(1, 2)), npx)
    if min(win.ms.shape[-2:]) < Q_BLOCK:
        # D_lambda / D_s compare Q on 32 px windows of the MS scale: undefined below that.
        notes.add(f"full-resolution metrics need at least {Q_BLOCK} x {Q_BLOCK} valid MS pixels; "
                  f"a window had {win.ms.shape[2]} x {win.ms.shape[1]}, so D_lambda, D_s, QNR and "
                  "HQNR were not computed there")
        return out
    ms_q = _owned(win.ms.astype(np.float64), mh, mw)
    fq = _owned(f_ext, ch, cw)
    pan_ext = win.pan.astype(np.float64)
    pq = _owned(pan_ext, ch, cw)[0]
    gains = mtf.gnyq_for(sensor, c)
    pan_low = _owned(mtf.degrade(pan_ext, gains.pan, ratio).astype(np.float64), mh, mw)[0]
    pairs = [(i, j) for i in range(c) for j in range(i + 1, c)]
    n_f, n_m = _n_windows(fq), _n_windows(ms_q)
    out["q_f_pairs"] = (np.array([metrics.q_index(fq[i], fq[j]) for i, j in pairs]), n_f)
    out["q_ms_pairs"] = (np.array([metrics.q_index(ms_q[i], ms_q[j]) for i, j in pairs]), n_m)
    out["q_f_pan"] = (np.array([metrics.q_index(fq[b], pq) for b in range(c)]), n_f)
    out["q_ms_panlow"] = (np.array([metrics.q_index(ms_q[b], pan_low) for b in range(c)]), n_m)
    ms_core = win.ms[:, :mh, :mw].astype(np.float64)
    out["q2n_khan"] = (metrics.q2n(mtf.degrade(f, gains.ms, ratio), ms_core, dn_scale=dn_scale),
                       _n_blocks(ms_core))
    return out


def _combine(per_window: list[tuple[int, dict[str, tuple[Any, int]]]], ratio: int
             ) -> dict[str, float | None]:
    """Sample-count-weighted means of the window statistics, then the metrics (None when absent)."""
    def mean(key: str) -> Any:
        vals = [st[key] for _, st in per_window if key in st]
        if not vals:
            return None
        total = float(sum(n for _, n in vals))
        return sum(n * np.asarray(v, dtype=np.float64) for v, n in vals) / total

    out: dict[str, float | None] = {k: None for k in METRIC_KEYS}
    for key in ("Q2n", "Q", "SAM", "SCC"):
        v = mean(key)
        out[key] = None if v is None else float(v)
    mse, mu = mean("mse"), mean("mu")
    if mse is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            out["ERGAS"] = float(100.0 / ratio * np.sqrt(np.mean(mse / mu ** 2)))
    qf, qm = mean("q_f_pairs"), mean("q_ms_pairs")
    if qf is not None:
        d_lambda = float(np.mean(np.abs(qf - qm))) if qf.size else 0.0
        d_s = float(np.mean(np.abs(mean("q_f_pan") - mean("q_ms_panlow"))))
        d_k = 1.0 - float(mean("q2n_khan"))
        out.update({"D_lambda": d_lambda, "D_s": d_s, "QNR": (1 - d_lambda) * (1 - d_s),
                    "D_lambda_K": d_k, "HQNR": (1 - d_k) * (1 - d_s)})
    # undefined values (e.g. ERGAS of a reference band with zero mean) are reported as None
    return {k: (v if v is None or np.isfinite(v) else None) for k, v in out.items()}


def _auto_dn_scale(inputs: RasterInputs) -> float:
    """10000 for float MS holding reflectances (valid maximum <= 2), else 1."""
    if _is_integer(inputs.ms_dtype):
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
    feedback: Any = None,
    *,
    block: int = DEFAULT_BLOCK,
    seed: int = DEFAULT_SEED,
    pan_band: int = 1,
    quicklook_png: str | None = None,
    rgb: Sequence[int] | None = None,
    dn_scale: float | None = None,
    sampling: str = "auto",
) -> dict[str, Any]:
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
        ``{"metrics": {key: float | None for METRIC_KEYS}, "ratio", "bands", "sensor",
        "mode": "whole" | "sampled", "sampled_pixels", "region_pixels", "windows": [(row, col,
        height, width) in PAN px of the output grid], "block", "seed", "max_pixels", "dn_scale",
        "inputs": {...}, "notes": [...], "quicklook": path | None, "seconds"}``.

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
            rgb: Sequence[int] | None, dn_scale: float, sampling: str, fb: Any, notes: set[str],
            t0: float) -> dict[str, Any]:
    r = inputs.ratio
    fused = _on_grid(os.fspath(fused_path), "Fused", inputs, inputs.bands)
    ref = _on_grid(os.fspath(reference_path), "Reference", inputs, inputs.bands) \
        if reference_path else None
    if inputs.ms_warped:
        notes.add(f"MS read through a cubic warp onto the PAN grid ({inputs.warp_reason})")
    for g in (fused, ref):
        if g is not None and g.warped:
            notes.add(f"{g.name.lower()} raster read through a cubic warp onto the PAN grid "
                      "(it is not on the PAN's pixel grid)")
    # evaluated region: intersection of what every raster covers, snapped to MS pixels
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
    reader = _Reader(inputs, fused, ref)
    region_pixels = (r1 - r0) * (c1 - c0)
    fb.info(f"Assessing {inputs.bands} bands, ratio {r}, region {c1 - c0} x {r1 - r0} PAN px"
            + (" with a reference" if ref is not None else " without reference (full resolution only)"))

    per_window: list[tuple[int, dict[str, tuple[Any, int]]]] = []
    windows: list[tuple[int, int, int, int]] = []
    first: _Window | None = None
    # blocks hold whole MS working pixels and at least one 32 px Q block at the MS scale
    b = max(block // r * r, Q_BLOCK * r)
    if sampling not in ("auto", "whole", "blocks"):
        raise PSDNetInputError(f"sampling={sampling!r}: use 'auto', 'whole' or 'blocks'.")
    if sampling == "whole" or (sampling == "auto" and region_pixels <= max_pixels):
        mode = "whole"
        win = reader.read(r0, c0, r1 - r0, c1 - c0)
        fb.progress(30)
        rect = valid_rectangle(win.valid)
        if rect is None:
            raise PSDNetInputError(
                f"Fused input '{fused_path}': no pixel where the fused, PAN, MS"
                + (" and reference" if ref is not None else "")
                + " images are all valid (not nodata): check that the inputs belong together.")
        a0, a1, b0, b1 = rect
        if (a1 - a0, b1 - b0) != win.valid.shape:
            notes.add(f"no-data border trimmed: evaluated {(b1 - b0) * r} x {(a1 - a0) * r} of "
                      f"{c1 - c0} x {r1 - r0} PAN px")
        win = _Window(r0 + a0 * r, c0 + b0 * r,
                      win.fused[:, a0 * r:a1 * r, b0 * r:b1 * r], win.pan[:, a0 * r:a1 * r, b0 * r:b1 * r],
                      win.ms[:, a0:a1, b0:b1],
                      None if win.ref is None else win.ref[:, a0 * r:a1 * r, b0 * r:b1 * r],
                      win.valid[a0:a1, b0:b1])
        n = win.fused.shape[1] * win.fused.shape[2]
        per_window.append((n, _window_stats(win, r, sensor, dn_scale, notes)))
        windows.append((win.row, win.col, win.fused.shape[1], win.fused.shape[2]))
        first = win
        fb.progress(90)
    else:
        mode = "sampled"
        bh, bw = min(b, r1 - r0), min(b, c1 - c0)
        cands = [(y, x) for y in range(r0, r1 - bh + 1, bh) for x in range(c0, c1 - bw + 1, bw)]
        order = np.random.default_rng(seed).permutation(len(cands))
        target = max(1, max_pixels // (bh * bw))
        budget = 4 * target + 16
        ext = Q_BLOCK * r
        fb.info(f"Region of {region_pixels} px: sampling up to {target} valid blocks of "
                f"{bw} x {bh} PAN px out of {len(cands)} (seed {seed})")
        read = 0
        for idx in order:
            if len(per_window) >= target or read >= budget:
                break
            if fb.is_canceled():
                raise PSDNetCanceled("assessment cancelled")
            y, x = cands[int(idx)]
            # extended by one Q window at the MS scale where the region allows (see _owned)
            eh, ew = min(ext, r1 - y - bh), min(ext, c1 - x - bw)
            win = reader.read(y, x, bh + eh, bw + ew)
            win.core_h, win.core_w = bh, bw
            read += 1
            if not win.valid.all():
                continue
            per_window.append((bh * bw, _window_stats(win, r, sensor, dn_scale, notes)))
            windows.append((y, x, bh, bw))
            first = first or win
            fb.progress(5 + 85 * len(per_window) / target)
        if not per_window:
            raise PSDNetInputError(
                f"Fused input '{fused_path}': none of {read} sampled {bw} x {bh} px blocks is free "
                "of no-data; raise max_pixels to evaluate the image whole, or check the inputs.")
        if len(per_window) < target:
            notes.add(f"only {len(per_window)} of the {target} wanted blocks were fully valid "
                      f"among the {read} read")

    metrics = _combine(per_window, r)
    sampled = sum(n for n, _ in per_window)
    ql = None
    if quicklook_png and first is not None:
        ql = _quicklook(first, os.fspath(quicklook_png), r, rgb)
    if ref is None:
        notes.add("no reference: reduced-resolution metrics (Q2n, Q, SAM, ERGAS, SCC) not computed")
    fb.progress(100)
    return {
        "metrics": metrics,
        "ratio": r,
        "bands": inputs.bands,
        "sensor": sensor or "unknown",
        "mode": mode,
        "sampled_pixels": int(sampled),
        "region_pixels": int(region_pixels),
        "windows": windows,
        "block": b if mode == "sampled" else None,
        "seed": seed if mode == "sampled" else None,
        "max_pixels": int(max_pixels),
        "dn_scale": dn_scale,
        "inputs": {"fused": os.fspath(fused_path), "pan": inputs.pan_path, "ms": inputs.ms_path,
                   "reference": os.fspath(reference_path) if reference_path else None},
        "notes": sorted(notes),
        "quicklook": ql,
        "seconds": time.perf_counter() - t0,
    }


# ------------------------------------------------------------------------------ quicklook
def _quicklook(win: _Window, path: str, ratio: int, rgb: Sequence[int] | None = None) -> str:
    """PNG of MS (bicubic upsampled) | fused | PAN over a central crop of ``win``.

    Drawn by :func:`engine.quicklook.write_quicklook` (MS and fused share one stretch).

    Returns:
        The PNG path.
    """
    from ..core.resample import upsample_bicubic
    from .quicklook import write_quicklook

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


# ------------------------------------------------------------------------------ HTML
def _fmt(v: float | None) -> str:
    return "&ndash;" if v is None else f"{v:.4f}"


def write_html_report(results: dict[str, Any], path: str, quicklook_png: str | None = None) -> str:
    """Self-describing HTML report: the metric table, the sample, notes and the quicklook.

    Args:
        results: the dict returned by :func:`assess`.
        path: the .html file to write.
        quicklook_png: PNG to show (default ``results["quicklook"]``); linked relative to the
            HTML file when it lies in the same folder.

    Returns:
        The HTML path.
    """
    path = os.fspath(path)
    esc = html.escape
    m = results.get("metrics", {})
    rows = []
    for key in METRIC_KEYS:
        label, better, ideal, protocol, meaning = METRIC_INFO[key]
        rows.append(
            f"<tr><td>{esc(label)}</td><td class='num'>{_fmt(m.get(key))}</td><td>{ideal}</td>"
            f"<td>{better}</td><td>{protocol} resolution</td><td>{esc(meaning)}</td></tr>")
    inp = results.get("inputs", {})
    info = [
        ("Fused", inp.get("fused")), ("PAN", inp.get("pan")), ("MS", inp.get("ms")),
        ("Reference", inp.get("reference") or "none (full-resolution metrics only)"),
        ("Sensor (MTF gains)", results.get("sensor")), ("Bands", results.get("bands")),
        ("PAN / MS ratio", results.get("ratio")),
    ]
    if results.get("mode") == "sampled":
        sample = (f"{len(results.get('windows', []))} blocks of {results.get('block')} x "
                  f"{results.get('block')} PAN px drawn with seed {results.get('seed')}: "
                  f"{results.get('sampled_pixels')} of {results.get('region_pixels')} px")
    else:
        sample = (f"whole image: {results.get('sampled_pixels')} of "
                  f"{results.get('region_pixels')} px (no-data border excluded)")
    info.append(("Evaluated pixels", sample))
    info.append(("Time", f"{results.get('seconds', 0.0):.1f} s"))
    info_rows = "".join(f"<tr><th>{esc(str(k))}</th><td>{esc(str(v))}</td></tr>" for k, v in info)
    notes = "".join(f"<li>{esc(n)}</li>" for n in results.get("notes", []))
    ql = quicklook_png or results.get("quicklook")
    img = ""
    if ql:
        src = os.path.basename(ql) if os.path.dirname(os.path.abspath(ql)) == \
            os.path.dirname(os.path.abspath(path)) else "file://" + os.path.abspath(ql)
        img = (f"<h2>Quicklook</h2><p>MS upsampled (bicubic) | fused | PAN, same stretch for the "
               f"first two.</p><img src='{esc(src)}' alt='quicklook'>")
    doc = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Pansharpening quality</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; margin-bottom: 1em; }}
td, th {{ border: 1px solid #bbb; padding: 3px 8px; text-align: left; }}
td.num {{ text-align: right; font-family: monospace; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>Pansharpening quality</h1>
<table class="metrics"><tr><th>Metric</th><th>Value</th><th>Ideal</th><th>Better</th>
<th>Protocol</th><th>Meaning</th></tr>
{''.join(rows)}
</table>
<p>Reduced-resolution metrics compare the fused image with the reference; full-resolution
ones compare it with the PAN and MS it was made from (no reference). Definitions: Vivone et
al.'s pansharpening toolbox conventions (Q and Q2n on 32 x 32 blocks, ERGAS with 100 / r).</p>
<h2>Inputs and sample</h2>
<table>{info_rows}</table>
{f'<h2>Notes</h2><ul>{notes}</ul>' if notes else ''}
{img}
</body></html>
"""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(doc)
    return path


__all__ = [
    "assess", "write_html_report", "valid_rectangle", "METRIC_KEYS", "REDUCED_KEYS", "FULL_KEYS",
    "METRIC_INFO", "DEFAULT_MAX_PIXELS", "DEFAULT_BLOCK", "DEFAULT_SEED",
]
