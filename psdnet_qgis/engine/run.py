"""The tiled pansharpening runner: the one numeric path for every entry point.

QGIS Processing, the CLI (``python -m psdnet_qgis``), benchmarks and scripts all call
:func:`pansharpen`. The flow:

1. validate inputs and output (``engine.raster``), choose the model/method — every bad
   input raises :class:`PSDNetInputError` before any pixel is processed;
2. global normalisation statistics from one decimated read of each input (never per tile:
   per-tile statistics would make neighbouring tiles disagree and show seams); the same
   holds for the coefficients of gsa / mtf_glp_hpm (``ClassicalPredictor.from_inputs``);
3. tiles of the MS working grid (``core.tiling.plan_tiles``), each read with a context
   margin (reflection-padded past the grid edge), run in batches through the predictor,
   margin cropped, blended with ``core.tiling.tile_weights`` into a row-strip accumulator;
4. finished rows converted (clip/round/nodata) and written block-row by block-row to a
   tiled, DEFLATE-compressed GeoTIFF; on error or cancellation the partial output is removed.

Memory is bounded by one strip of tiles (``tile * ratio`` PAN rows x output width) plus
one batch of model activations, whatever the raster size.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
import time
import traceback
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from psdnet_qgis.engine import raster
from psdnet_qgis.engine.feedback import Feedback, as_feedback
from psdnet_qgis.errors import PSDNetCanceled, PSDNetInputError

logger = logging.getLogger("psdnet_qgis.engine")

METHODS = ("psdnet", "exp", "brovey", "gsa", "mtf_glp_hpm")
#: PSDNet tile side *including* the context margins, in PAN px. Measured on the 2-core
#: AVX512-BF16 CPU (scripts/bench_speed.py, /tmp profiling): 128 MS px (512 PAN px) is the
#: fastest per pixel (larger tiles fall out of cache, smaller ones waste more on margins).
PSDNET_TILE_PAN = 512
#: PSDNet context margin in MS px (>= 4): tiled-vs-whole differences are already at the
#: float-noise level with 4 (see tests/engine/test_engine_run.py), more only costs time.
PSDNET_MARGIN = 4
#: PSDNet pads its input to a multiple of this many MS px (model/psdnet.py PAD_MULTIPLE).
PSDNET_PAD = 8
#: Classical methods are cheap per pixel: big tiles (their statistics are global, see
#: ClassicalPredictor.from_inputs, so the tile size no longer changes the result).
CLASSICAL_TILE_PAN = 1024
#: Context margin of classical methods in MS px: the 41-tap MTF filter of mtf_glp_hpm
#: reaches 20 PAN px (5 MS px at r = 4) and the bicubic 2 MS px more.
CLASSICAL_MARGIN = 8
#: Default tile overlap in PAN px (blending ramp length).
OVERLAP_PAN = 32
#: Back-compat alias: the largest default margin.
CONTEXT_MARGIN = CLASSICAL_MARGIN


#: PSDNet tiles may grow this many MS px past the nominal tile when that needs fewer pixels
#: computed in all (peak memory measured at 136 + 2 x 4 MS px: 1.23 GB, as at 128 + 2 x 4).
PSDNET_TILE_GROW = 16


def _cheapest_split(size: int, tile: int, overlap: int, margin: int) -> int:
    """Tiles along an axis of ``size`` MS px that compute the fewest pixels (PSDNet).

    Each tile computes its core plus ``2 * margin`` rounded up to a multiple of
    :data:`PSDNET_PAD`; tiles are at most ``tile + PSDNET_TILE_GROW``. Ties: fewer tiles.
    """
    t_max = tile + PSDNET_TILE_GROW
    n_lo = max(1, -(-(size - overlap) // (t_max - overlap)))
    best_n, best_cost = n_lo, None
    for n in range(n_lo, n_lo + 4):
        t = -(-(size - overlap) // n) + overlap
        cost = n * (-(-(t + 2 * margin) // PSDNET_PAD) * PSDNET_PAD)
        if best_cost is None or cost < best_cost:
            best_n, best_cost = n, cost
    return best_n


def default_tile(ratio: int, method: str = "psdnet", ms_shape: tuple[int, int] | None = None
                 ) -> tuple[int, int, int]:
    """Default (tile, overlap, margin) in MS px.

    The nominal tile (:data:`PSDNET_TILE_PAN` minus margins; 120 MS px at r = 4, overlap 8,
    margin 4) is then adapted to the raster so the tiles split it evenly: with a fixed tile
    the clamped last tile can recompute almost a whole tile (a 256 MS px raster would take
    3 x 3 tiles of 120 instead of 2 x 2 of 132).
    For PSDNet the number of tiles per axis is the one that computes the fewest padded
    pixels (:func:`_cheapest_split`; tiles up to :data:`PSDNET_TILE_GROW` MS px larger than
    nominal): a 1024 MS px axis takes 8 tiles of 136 (8 x 144 px computed with margins and
    padding) instead of 9 of 128 (9 x 136 px), 11 % fewer pixels in 2-D.

    Args:
        ratio: PAN/MS ratio.
        method: "psdnet" or a classical method.
        ms_shape: (height, width) of the MS working grid, for the adaptation.
    """
    if method == "psdnet":
        margin = PSDNET_MARGIN
        tile = max(16, PSDNET_TILE_PAN // ratio - 2 * margin)
    else:
        margin = CLASSICAL_MARGIN
        tile = max(16, CLASSICAL_TILE_PAN // ratio - 2 * margin)
    overlap = max(2, min(tile // 4, OVERLAP_PAN // ratio))
    if ms_shape is not None:
        sizes = []
        for size in ms_shape:
            if size <= tile:
                sizes.append(size)
                continue
            n = max(1, round((size - overlap) / (tile - overlap)))
            if method == "psdnet":
                n = _cheapest_split(size, tile, overlap, margin)
            sizes.append(-(-(size - overlap) // n) + overlap)
        tile = max(max(sizes), 2 * overlap)
        if method == "psdnet":
            # PSDNet pads every tile (with margins) to a multiple of 8 MS px and computes the
            # padding anyway: grow the tile into it instead (more overlap, same cost).
            tile = -(-(tile + 2 * margin) // PSDNET_PAD) * PSDNET_PAD - 2 * margin
        tile = min(tile, max(ms_shape))
        overlap = min(overlap, tile // 2)  # small rasters: one tile, the overlap is moot
    return int(tile), int(overlap), int(margin)


#: Classical statistics windows (when the global sample is decimated): up to this many a side...
FIT_WINDOWS = 8
#: ...of this many MS px each (plus :data:`CLASSICAL_MARGIN` of context on every side).
FIT_WINDOW = 32


class ClassicalPredictor:
    """Predictor-like adapter around a ``core.classical`` method.

    Takes and returns normalised arrays like ``TorchPredictor.predict`` so classical methods
    run through exactly the same tiling, padding, blending and writing as the network.
    Methods with image statistics (gsa, mtf_glp_hpm) get them once per raster
    (:meth:`from_inputs`, ``stats``) and only apply them per tile: per-tile statistics made
    neighbouring tiles disagree by up to several band std (seams).
    """

    def __init__(self, method: str, normalizer: Any, ratio: int, sensor_max: float | None = None,
                 stats: Any = None) -> None:
        from psdnet_qgis.core import classical

        self.method = method
        self.fn: Callable[..., np.ndarray] = getattr(classical, method)
        self.normalizer = normalizer
        self.ratio = ratio
        #: Global coefficients (``classical.fit``); None for exp/brovey, or per tile (seams).
        self.stats = stats
        self.device_report = "cpu (numpy)"
        self.batch_size = 1

    @classmethod
    def from_inputs(cls, method: str, normalizer: Any, inputs: raster.RasterInputs,
                    sample: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                    margin: int = CLASSICAL_MARGIN) -> "ClassicalPredictor":
        """Fit the method's global statistics once for the raster, then return the predictor.

        The global sample (``inputs.read_sample()``, read once for the Normalizer) is used as
        is when it holds the whole raster at full resolution (then the result equals the
        one-call method on the whole image). Otherwise it is decimated by nearest neighbour:
        its PAN keeps all its (aliased) high frequencies and is not co-registered pixel for
        pixel with the MS, so it cannot give GSA's MTF-degraded-PAN regression nor HPM's
        low-pass PAN std. Those statistics then come from a grid of at most
        ``FIT_WINDOWS x FIT_WINDOWS`` full-resolution windows of ``FIT_WINDOW`` MS px (with a
        context margin that is filtered but not counted), read here: a few percent of the
        raster, not a second pass over it.

        Args:
            method: classical method name.
            normalizer: the raster's global Normalizer (fills nodata like the tiles do).
            inputs: opened inputs.
            sample: ``inputs.read_sample()`` result (ms, pan, ms_valid, pan_valid).
            margin: context margin of the windows in MS px.
        """
        from psdnet_qgis.core import classical

        r = inputs.ratio
        if method not in classical.FITTED:
            return cls(method, normalizer, r)
        s_ms, s_pan, s_mv, s_pv = sample
        fill_ms = normalizer.ms_mean.astype(np.float32)
        fill_pan = np.float32(normalizer.pan_mean)

        def prepared(ms_w: np.ndarray, ms_v: np.ndarray, pan_w: np.ndarray, pan_v: np.ndarray,
                     counted: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            ms_w, pan_w = ms_w.copy(), pan_w.copy()
            ms_w[:, ~ms_v] = fill_ms[:, None]
            pan_w[:, ~pan_v] = fill_pan
            h, w = ms_v.shape
            valid = counted & ms_v & pan_v.reshape(h, r, w, r).all(axis=(1, 3))
            return ms_w, pan_w, valid

        full = (s_ms.shape[1:] == (inputs.ms_height, inputs.ms_width)
                and s_pan.shape[1:] == (inputs.height, inputs.width))
        ms_l: list[np.ndarray]
        pan_l: list[np.ndarray]
        val_l: list[np.ndarray]
        if full:
            a, b, v = prepared(s_ms, s_mv, s_pan, s_pv, np.ones_like(s_mv))
            ms_l, pan_l, val_l = [a], [b], [v]
            where = "the whole raster"
        else:
            ms_l, pan_l, val_l = [], [], []
            m = int(margin)
            for r0 in _window_starts(inputs.ms_height):
                for c0 in _window_starts(inputs.ms_width):
                    hh, ww = min(FIT_WINDOW, inputs.ms_height), min(FIT_WINDOW, inputs.ms_width)
                    try:
                        ms_w, ms_v = inputs.read_ms(r0 - m, c0 - m, hh + 2 * m, ww + 2 * m)
                        pan_w, pan_v = inputs.read_pan((r0 - m) * r, (c0 - m) * r, (hh + 2 * m) * r,
                                                       (ww + 2 * m) * r)
                    except RuntimeError as exc:
                        raise PSDNetInputError(
                            f"Inputs '{inputs.pan_path}' / '{inputs.ms_path}': read failed at MS row "
                            f"{r0}, col {c0} ({raster._first_line(exc)}); the file is damaged: copy it again."
                        ) from None
                    counted = np.zeros(ms_v.shape, dtype=bool)
                    counted[m:m + hh, m:m + ww] = True  # margins: filter context only
                    a, b, v = prepared(ms_w, ms_v, pan_w, pan_v, counted)
                    if v.any():
                        ms_l.append(a)
                        pan_l.append(b)
                        val_l.append(v)
            if not ms_l:
                raise PSDNetInputError(
                    f"Inputs '{inputs.pan_path}' / '{inputs.ms_path}': no valid pixel in the "
                    f"statistics windows of {method}; check the nodata values, or use method 'psdnet', "
                    "'brovey' or 'exp'."
                )
            where = f"{len(ms_l)} full-resolution windows of {FIT_WINDOW} MS px"
        stats = classical.fit(method, ms_l, pan_l, r, valid=val_l)
        logger.info("%s statistics from %s: %s", method, where, stats.to_dict())
        return cls(method, normalizer, r, stats=stats)

    def predict(self, ms: np.ndarray, pan: np.ndarray) -> np.ndarray:
        """(B, C, h, w), (B, 1, H, W) normalised -> (B, C, H, W) normalised float32."""
        from psdnet_qgis.core import classical

        out = []
        for b in range(ms.shape[0]):
            ms_p = self.normalizer.denorm_ms(ms[b])
            pan_p = self.normalizer.denorm_pan(pan[b])
            if self.stats is None:
                fused = self.fn(ms_p, pan_p, self.ratio)
            else:
                fused = classical.apply(self.method, ms_p, pan_p, self.ratio, self.stats)
            out.append(self.normalizer.norm_ms(np.asarray(fused, dtype=np.float32)))
        return np.stack(out)


def _window_starts(size: int) -> list[int]:
    """Origins of up to FIT_WINDOWS evenly spread windows of FIT_WINDOW px along one axis."""
    win = min(FIT_WINDOW, size)
    n = max(1, min(FIT_WINDOWS, size // win))
    return sorted({min(max(int(round((k + 0.5) * size / n - win / 2)), 0), size - win) for k in range(n)})


def _resolve_dtype(out_dtype: Any, ms_dtype: int) -> int:
    from osgeo import gdal

    if out_dtype is None:
        return ms_dtype
    name = str(np.dtype(out_dtype).name) if not isinstance(out_dtype, str) else out_dtype.lower()
    table = {"float32": gdal.GDT_Float32, "float64": gdal.GDT_Float64, "uint16": gdal.GDT_UInt16,
             "uint8": gdal.GDT_Byte, "byte": gdal.GDT_Byte, "int16": gdal.GDT_Int16,
             "uint32": gdal.GDT_UInt32, "int32": gdal.GDT_Int32}
    if name not in table:
        raise PSDNetInputError(
            f"out_dtype {out_dtype!r} is not supported; use None (same as MS) or one of "
            f"{sorted(table)}."
        )
    return table[name]


def _output_nodata(inputs: raster.RasterInputs, dtype: int) -> float | None:
    """MS nodata, else PAN nodata if representable, else the type minimum/NaN when needed."""
    if not inputs.has_nodata:
        return None
    rng = raster.dtype_range(dtype)
    for v in (inputs.ms_nodata, inputs.pan_nodata):
        if v is None or not np.isfinite(v):
            continue
        if rng is None or rng[0] <= v <= rng[1]:
            return float(v)
    return float(rng[0]) if rng is not None else float("nan")


def _load_model(model: Any, bands: int, ratio: int, inputs: raster.RasterInputs) -> tuple[Any, dict]:
    """Resolve ``model`` ("auto" | name | path | nn.Module) -> (module, meta).

    Registry lookup (no torch) first, so "no bundled model for 4 bands at ratio 2" is reported
    before torch is even imported.
    """
    if hasattr(model, "forward") and hasattr(model, "parameters"):  # an nn.Module instance
        meta = {"name": getattr(model, "name", type(model).__name__), "bands": getattr(model, "bands", bands),
                "ratio": getattr(model, "ratio", ratio)}
        mod = model
    else:
        from psdnet_qgis.core import registry

        if model in (None, "", "auto"):
            info = registry.auto_select(bands, ratio)  # raises PSDNetInputError with the fix
            target = getattr(info, "path", None) or info.name
        else:
            target = os.fspath(model)
        from psdnet_qgis.model.weights import load_model

        mod, meta = load_model(target)
        meta = dict(meta) if isinstance(meta, dict) else dict(vars(meta))
    m_bands, m_ratio = meta.get("bands"), meta.get("ratio")
    if m_bands is not None and int(m_bands) != bands:
        raise PSDNetInputError(
            f"Model '{meta.get('name')}' was trained for {m_bands} bands but MS input "
            f"'{inputs.ms_path}' has {bands}: choose a model for {bands} bands (see "
            "`python -m psdnet_qgis models`) or a classical method."
        )
    if m_ratio is not None and int(m_ratio) != ratio:
        raise PSDNetInputError(
            f"Model '{meta.get('name')}' was trained for ratio {m_ratio} but the inputs have "
            f"ratio {ratio}: choose a model for ratio {ratio} or a classical method."
        )
    return mod, meta


def auto_precision(device: Any) -> str:
    """"bf16" on CPUs with native bf16 (AVX512-BF16/AMX) or on CUDA with bf16, else "fp32".

    On the CPU, "bf16" runs the fused bf16 copy of the network (``model/fastcpu.py``: weights
    converted once, oneDNN convolutions with fused PReLU/add, channels padded to 32). Measured
    on the 2-core AVX512-BF16/AMX CPU, one 144 MS px tile, 1 thread: fused bf16 1.75 CPU s vs
    bf16 autocast 2.62 s (fp32 eager is ~3x the fused time). Output difference bf16 vs fp32
    (bundled vhr4 model, 136 MS px random-normal tile): max 0.023, mean 0.002 band std, i.e.
    well under 1 DN mean on 11-bit data. ``lms`` (bicubic) and the outputs stay fp32, so a
    zero-residual model is still exact. Pass ``precision="fp32"`` for reference runs.
    """
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    try:
        ok = bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        ok = False
    return "bf16" if ok else "fp32"


def _threads() -> int:
    try:
        import torch

        return int(torch.get_num_threads())
    except Exception:  # noqa: BLE001 - reporting only
        return int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))


def pansharpen(
    pan: str,
    ms: str,
    out: str,
    *,
    method: str = "psdnet",
    model: Any = "auto",
    device: str = "auto",
    tile: int | None = None,
    overlap: int | None = None,
    pan_band: int = 1,
    out_dtype: Any = None,
    feedback: Any = None,
    batch_size: int | None = None,
    margin: int | None = None,
    precision: str = "auto",
) -> dict:
    """Pansharpen ``ms`` with ``pan`` into the GeoTIFF ``out`` on the PAN grid.

    Args:
        pan: panchromatic raster path (1 band, or several with ``pan_band``).
        ms: multispectral raster path (C >= 2 bands), any grid/CRS overlapping ``pan``.
        out: output GeoTIFF path (C bands, PAN pixel size, PAN/MS footprint intersection).
        method: "psdnet" or a classical method: "exp", "brovey", "gsa", "mtf_glp_hpm".
        model: "auto" (bundled model for the band count and ratio), a bundled model name,
            a weights path, or a ``torch.nn.Module`` taking normalised (ms, pan).
        device: "auto" | "cpu" | "cuda" (PSDNet only).
        tile, overlap: tile side and overlap in MS px (default :func:`default_tile`).
        pan_band: 1-based band of ``pan`` used as PAN.
        out_dtype: None (same as the MS, clipped and rounded) or e.g. "float32".
        feedback: object with ``info(str)``, ``progress(percent)``, ``is_canceled()``
            (and optionally ``warning(str)``), see :mod:`psdnet_qgis.engine.feedback`.
        batch_size: tiles per predictor call (default: predictor's choice; 1 for classical).
        margin: context margin in MS px around each tile (default: :data:`PSDNET_MARGIN` for
            PSDNet, :data:`CLASSICAL_MARGIN` for classical methods).
        precision: PSDNet arithmetic: "auto" (:func:`auto_precision`), "fp32", "bf16", "fp16".

    Returns:
        Report dict: out, method, model, device, ratio, tiles, tile, overlap, margin,
        batch_size, threads, width, height, bands, dtype, ms_warped, seconds, mpx_per_s, rgb.

    Raises:
        PSDNetInputError: bad input/output/model (before any work), or a write failure.
        PSDNetCanceled: ``feedback.is_canceled()`` became true; nothing is left on disk.
    """
    from osgeo import gdal

    from psdnet_qgis.core.radiometry import Normalizer
    from psdnet_qgis.core.tiling import plan_tiles, tile_weights

    fb: Feedback = as_feedback(feedback)
    t_start = time.perf_counter()
    if method not in METHODS:
        raise PSDNetInputError(f"method {method!r} is unknown; use one of {', '.join(METHODS)}.")

    with raster.gdal_errors():
        inputs = raster.open_inputs(pan, ms, pan_band)
        try:
            out_abs = raster.check_output(out, [inputs.pan_path, inputs.ms_path])
            dtype = _resolve_dtype(out_dtype, inputs.ms_dtype)
            r, C = inputs.ratio, inputs.bands
            d_tile, d_overlap, d_margin = default_tile(
                r, method, None if tile else (inputs.ms_height, inputs.ms_width))
            tile = int(tile) if tile else d_tile
            if overlap is None:
                overlap = d_overlap if tile == d_tile else max(0, min(tile // 4, OVERLAP_PAN // r))
            overlap = int(overlap)
            if tile < 8:
                raise PSDNetInputError(f"tile={tile} MS px is too small; use a tile of at least 8 MS px.")
            if not 0 <= overlap <= tile // 2:
                raise PSDNetInputError(
                    f"overlap={overlap} MS px must be between 0 and tile // 2 = {tile // 2}; "
                    f"use e.g. {tile // 8}."
                )
            margin = d_margin if margin is None else int(margin)
            if margin < 4:
                raise PSDNetInputError(f"margin={margin} MS px is too small; use at least 4.")

            meta: dict = {}
            net = None
            if method == "psdnet":
                net, meta = _load_model(model, C, r, inputs)

            # Global statistics, once per raster, from a decimated read.
            try:
                s_ms, s_pan, s_mv, s_pv = inputs.read_sample()
            except RuntimeError as exc:
                raise PSDNetInputError(
                    f"Inputs '{inputs.pan_path}' / '{inputs.ms_path}' cannot be read "
                    f"({raster._first_line(exc)}): truncated or corrupt file; copy it again."
                ) from None
            if not s_pv.any():
                raise PSDNetInputError(
                    f"PAN input '{inputs.pan_path}' is entirely nodata over the area shared with "
                    "the MS: check its nodata value or choose another PAN."
                )
            if not s_mv.any():
                raise PSDNetInputError(
                    f"MS input '{inputs.ms_path}' is entirely nodata over the area shared with "
                    "the PAN: check its nodata value or choose another MS."
                )
            # The model's own normalisation (its metadata); classical methods use zscore4.
            normalizer = Normalizer.from_arrays(
                s_ms, s_pan, s_mv, s_pv, method=str(meta.get("normalisation", "zscore4")))

            if method == "psdnet":
                from psdnet_qgis.model.predictor import TorchPredictor, resolve_device

                dev = resolve_device(device)
                if batch_size is None and dev.type == "cpu":
                    batch_size = 1  # measured: batch 1 is fastest per pixel on CPU, and smallest
                prec = auto_precision(dev) if precision in (None, "", "auto") else precision
                predictor = TorchPredictor(net, meta, device=dev, batch_size=batch_size,
                                           precision=prec, log=fb.info)
                bs = int(getattr(predictor, "batch_size", None) or batch_size or 1)
                model_name = str(meta.get("name", "custom"))
            else:
                # gsa / mtf_glp_hpm statistics: once per raster, from the same sample read
                predictor = ClassicalPredictor.from_inputs(method, normalizer, inputs,
                                                           (s_ms, s_pan, s_mv, s_pv), margin)
                bs = int(batch_size or 1)
                model_name = method
            del s_ms, s_pan, s_mv, s_pv
            device_report = str(getattr(predictor, "device_report", device))
        except BaseException:
            inputs.close()
            raise

        tiles = sorted(plan_tiles(inputs.ms_height, inputs.ms_width, tile, overlap),
                       key=lambda t: (t.row, t.col))
        n_tiles = len(tiles)
        threads = int(getattr(predictor, "threads", 0) or (_threads() if method == "psdnet" else 1))
        fb.info(f"Inputs: PAN {inputs.pan_path} (band {inputs.pan_band}), MS {inputs.ms_path} "
                f"({C} bands), ratio {r}.")
        if inputs.ms_warped:
            fb.info(f"MS read through a GDAL warped VRT (cubic) onto the PAN-derived grid: "
                    f"{inputs.warp_reason}.")
        fb.info(f"Output: {inputs.width} x {inputs.height} px, {C} bands, "
                f"{gdal.GetDataTypeName(dtype)} -> {out_abs}")
        fb.info(f"Method: {method}; model: {model_name}; device: {device_report}; threads: {threads}")
        fb.info(f"Tile plan: {n_tiles} tiles of {min(tile, inputs.ms_height)} x "
                f"{min(tile, inputs.ms_width)} MS px, overlap {overlap}, context margin {margin}, "
                f"batch {bs}")
        fb.progress(2.0)

        nodata = _output_nodata(inputs, dtype)
        ds = None
        writer = None
        try:
            try:
                ds = raster.create_output(out_abs, inputs, dtype, nodata)
            except RuntimeError as exc:
                raise PSDNetInputError(
                    f"Output '{out_abs}' cannot be created ({raster._first_line(exc)}); check the "
                    "folder permissions and free disk space."
                ) from None
            writer = raster.StripWriter(ds, dtype, nodata)
            with keep_freed_memory() as trim_heap:
                _run_tiles(inputs, tiles, predictor, normalizer, tile_weights, writer, fb, bs, margin,
                           after_row=trim_heap)
            try:
                writer.close()
                ds.FlushCache()
            except RuntimeError as exc:
                raise _write_error(out_abs, exc) from None
            with raster.closing_errors() as errors:  # the TIFF directory is written here
                writer = ds = None
            if errors:
                raise _write_error(out_abs, RuntimeError(errors[0]))
        except BaseException as exc:
            # The frames of a failed write hold the dataset (GDAL's WriteArray(self=ds)): clear
            # them so that the file is closed here, quietly, before it is removed.
            _clear_frames_below(exc)
            with raster.closing_errors():
                writer = ds = None
            raster.remove_output(out_abs)
            raise
        finally:
            inputs.close()

    seconds = time.perf_counter() - t_start
    mpx = inputs.width * inputs.height / 1e6
    fb.progress(100.0)
    report = {
        "out": out_abs, "method": method, "model": model_name,
        "model_version": meta.get("version"), "device": device_report, "ratio": r,
        "tiles": n_tiles, "tile": tile, "overlap": overlap, "margin": margin, "batch_size": bs,
        "threads": threads, "width": inputs.width, "height": inputs.height, "bands": C,
        "dtype": gdal.GetDataTypeName(dtype), "nodata": nodata, "ms_warped": inputs.ms_warped,
        "seconds": round(seconds, 3), "mpx_per_s": round(mpx / seconds, 4) if seconds > 0 else None,
        "rgb": meta.get("rgb"), "normalizer": normalizer.to_dict(),
    }
    fb.info(f"Done in {seconds:.1f} s ({mpx:.2f} MPx, {report['mpx_per_s']} MPx/s).")
    return report


#: glibc ``mallopt`` parameters (malloc.h) and their defaults.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _GLIBC_DEFAULT = -1, -3, 128 * 1024
#: Threshold used while tiles run: buffers up to this size come from the heap and stay there.
#: 40 MB keeps most of the network's activations (16-60 MB each, mostly 20-25 MB, on a 144 MS
#: px tile) in the heap and sends the width-sized row buffers of big rasters (47 MB and more at
#: 10240 px) to mmap.
#: Measured at 10240 x 10240 PAN px: peak 1186 MB at 6.6 CPU s/MPx, against 1308 MB at the same
#: speed with a 1 GB threshold and a 64 MB GDAL cache.
_TILE_HEAP_BYTES = 40 << 20


@contextlib.contextmanager
def keep_freed_memory() -> Iterator[Callable[[], Any]]:
    """While tiles run, let glibc keep freed buffers for the next tile (Linux/glibc only).

    Every tile allocates and frees the same large activation buffers. By default glibc
    serves those with ``mmap`` and returns them to the kernel when freed, so every tile
    page-faults (and zeroes) all its memory again. Measured on the 2-core AVX512-BF16/AMX
    CPU, one 136 MS px bf16 tile, with every buffer kept (1 GB threshold): 1.55 -> 1.31 CPU
    s, page faults 639 k -> 217 k per run. Buffers up to :data:`_TILE_HEAP_BYTES` are kept.
    The defaults are restored and the free heap trimmed afterwards (``malloc_trim``), so a
    long-lived process such as QGIS gets its memory back. No-op elsewhere (macOS, Windows,
    musl).

    Yields a function that trims the heap (``malloc_trim``), called after every tile row:
    without it the width-sized row buffers (conversion, masks), freed between tiles of
    different sizes, fragmented the never-trimmed heap and the peak grew with the raster
    height (measured 1635 MB at 10240 x 10240 PAN px against 1182 MB at 1024).
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
    try:
        yield (lambda: libc.malloc_trim(0)) if libc is not None else (lambda: None)
    finally:
        if libc is not None:
            libc.mallopt(_M_MMAP_THRESHOLD, _GLIBC_DEFAULT)
            libc.mallopt(_M_TRIM_THRESHOLD, _GLIBC_DEFAULT)
            libc.malloc_trim(0)


def _clear_frames_below(exc: BaseException) -> None:
    """Drop the locals of the finished frames in ``exc``'s traceback and its context chain.

    The frame that handles ``exc`` (the first of its traceback) still runs and is skipped.
    """
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        tb = e.__traceback__
        traceback.clear_frames(tb.tb_next if tb is not None and e is exc else tb)
        e = e.__context__


def _write_error(out: str, exc: BaseException) -> PSDNetInputError:
    """The input was read and the output created, so a failed write is nearly always space:
    a full disk, a quota or a file size limit (GDAL's messages vary: "No space left",
    "File too large", "Failed to read directory" when the TIFF directory could not be written)."""
    msg = raster._first_line(exc)
    return PSDNetInputError(
        f"Output '{out}' could not be written ({msg}): the disk is probably full; free disk space or choose "
        "another output folder. The partial file was removed."
    )


def _run_tiles(inputs: raster.RasterInputs, tiles: Sequence[Any], predictor: Any, normalizer: Any,
               tile_weights: Callable[..., np.ndarray], writer: raster.StripWriter, fb: Feedback,
               batch_size: int, margin: int, after_row: Callable[[], Any] = lambda: None) -> None:
    """Predict every tile, blend into a row-strip accumulator, write finished rows.

    ``after_row`` runs after each tile row is written (the engine trims the heap there,
    see :func:`keep_freed_memory`).

    Tiles are processed one tile row at a time (batches never span two tile rows). Once a
    tile row is done, output rows above the next tile row's first PAN row receive no further
    contribution (the weights of a plan sum to 1): they are written, and the overlap rows
    are moved to the top of the fixed-size accumulator (``C x tile*r x W`` float32).
    """
    r, C, W, H = inputs.ratio, inputs.bands, inputs.width, inputs.height
    m, mp = margin, margin * r
    fill_ms = normalizer.ms_mean.astype(np.float32)[:, None]
    fill_pan = np.float32(normalizer.pan_mean)
    groups: list[list[Any]] = []
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
            ms_b, pan_b = [], []
            for t in batch:
                try:
                    ms_t, ms_v = inputs.read_ms(t.row - m, t.col - m, t.height + 2 * m, t.width + 2 * m)
                    pan_t, pan_v = inputs.read_pan((t.row - m) * r, (t.col - m) * r,
                                                   (t.height + 2 * m) * r, (t.width + 2 * m) * r)
                except RuntimeError as exc:
                    raise PSDNetInputError(
                        f"Inputs '{inputs.pan_path}' / '{inputs.ms_path}': read failed at MS row "
                        f"{t.row}, col {t.col} ({raster._first_line(exc)}); the file is damaged: "
                        "copy it again."
                    ) from None
                # nodata pixels -> the band mean (normalised 0.5): no wild values enter the model
                if not ms_v.all():
                    ms_t[:, ~ms_v] = np.broadcast_to(fill_ms, (C, int((~ms_v).sum())))
                if not pan_v.all():
                    pan_t[:, ~pan_v] = fill_pan
                ms_b.append(normalizer.norm_ms(ms_t))
                pan_b.append(normalizer.norm_pan(pan_t))
            pred = predictor.predict(np.stack(ms_b), np.stack(pan_b))
            del ms_b, pan_b
            for t, p in zip(batch, pred):
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
        data = writer.convert(acc[:, :k], valid, inplace=True)
        try:
            writer.add(data)
        except RuntimeError as exc:
            raise _write_error(writer.ds.GetDescription(), exc) from None
        keep = group[0].row * r + group[0].height * r - until  # overlap rows still open
        if keep > 0:
            acc[:, :keep] = acc[:, k:k + keep]
        acc[:, max(keep, 0):] = 0.0
        acc0 = until
        after_row()
