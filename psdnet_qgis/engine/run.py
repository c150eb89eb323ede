"""The tiled pansharpening runner: the one numeric path for every entry point.

QGIS Processing, the CLI (``python -m psdnet_qgis``), benchmarks and scripts all call
:func:`pansharpen`, which runs these steps:

1. **resolve** the inputs (``engine.raster.open_inputs``), the output path and type
   (``engine.output``) and the tiling (``core.tiling.resolve_tiling``); every bad input
   raises :class:`PSDNetInputError` before any pixel is processed;
2. **choose the predictor**: the PSDNet model (``model.predictor.TorchPredictor``) or a
   classical method (``engine.classical_predictor``), with global normalisation statistics
   from one decimated read of each input (never per tile: per-tile statistics would make
   neighbouring tiles disagree and show seams; the same holds for the coefficients of gsa /
   mtf_glp_hpm); with ``adapt_seconds`` a copy of the model is first fine-tuned on crops of the
   scene (``engine.adaptation``) and used when held-out crops say it is better;
3. **plan** the tiles of the MS working grid (``core.tiling.plan_tiles``) and log the plan;
4. **write**: each tile is read with a context margin (reflection-padded past the grid
   edge), run in batches through the predictor, margin cropped, blended with
   ``core.tiling.tile_weights`` into a row-strip accumulator; finished rows are converted
   (clip/round/nodata) and written block row by block row to a tiled, DEFLATE-compressed
   GeoTIFF; on error or cancellation the partial output is removed;
5. **report**: a :class:`PansharpenReport`.

Memory is bounded by one strip of tiles (``tile * ratio`` PAN rows x output width) plus
one batch of model activations, whatever the raster size.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np
from osgeo import gdal

from psdnet_qgis.core import mtf
from psdnet_qgis.core.radiometry import Normalizer
from psdnet_qgis.core.tiling import Tile, plan_tiles, resolve_tiling, tile_weights
from psdnet_qgis.engine import mixed, output
from psdnet_qgis.engine.adaptation import PROGRESS_END, SpanFeedback, adapt_step, tile_feedback
from psdnet_qgis.engine.classical_predictor import ClassicalPredictor, resolve_sensor
from psdnet_qgis.engine.feedback import Feedback, as_feedback
from psdnet_qgis.engine.gdalerr import clear_frames_below, closing_errors, first_line, gdal_errors
from psdnet_qgis.engine.memory import keep_freed_memory
from psdnet_qgis.engine.mixed import DEFAULT_OTHER
from psdnet_qgis.engine.raster import RasterInputs, open_inputs
from psdnet_qgis.errors import PSDNetCanceled, PSDNetInputError

METHODS = ("psdnet", "exp", "brovey", "gsa", "mtf_glp_hpm", "mtf_glp_fs", "bdsd_pc")


@dataclass(frozen=True)
class PansharpenReport:
    """What a :func:`pansharpen` run did (sizes in PAN px unless stated).

    Attributes:
        out: absolute output path.
        method: "psdnet" or the classical method.
        model: model name ("custom" for an unnamed module; the method for classical runs).
        model_version: the bundled model's version (None when unknown).
        device: device, threads and precision line of the predictor.
        ratio: PAN/MS ratio.
        tiles: number of tiles.
        tile, overlap, margin: tile side, overlap and context margin in MS px.
        batch_size: tiles per predictor call.
        threads: CPU threads used.
        width, height, bands: output size.
        dtype: GDAL name of the output type.
        nodata: output nodata value (None: none set).
        ms_warped: True when the MS was read through a warped VRT.
        seconds: wall time of the run.
        mpx_per_s: output megapixels per second (None for a zero-time run).
        rgb: 0-based true-colour band indices from the model metadata (None: unknown).
        normalizer: the global normalisation statistics (``Normalizer.to_dict()``).
        adaptation: what scene adaptation did (``model.adapt.AdaptResult`` fields plus the
            crop side and gains; None when ``adapt_seconds`` was 0).
        band_methods: with more MS bands than the model's, the 1-based output bands each
            method made (``{"psdnet_vhr4": [2, 3, 5, 7], "mtf_glp_fs": [1, 4, 6, 8]}``); else None.
    """

    out: str
    method: str
    model: str
    model_version: str | None
    device: str
    ratio: int
    tiles: int
    tile: int
    overlap: int
    margin: int
    batch_size: int
    threads: int
    width: int
    height: int
    bands: int
    dtype: str
    nodata: float | None
    ms_warped: bool
    seconds: float
    mpx_per_s: float | None
    rgb: list[int] | None
    normalizer: dict[str, Any]
    adaptation: dict[str, Any] | None = None
    band_methods: dict[str, list[int]] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The report as a plain dict (field order), e.g. for JSON output."""
        return dataclasses.asdict(self)


class Predictor(Protocol):
    """What the tile loop needs of a predictor (``TorchPredictor``, ``ClassicalPredictor``)."""

    batch_size: int
    device_report: str

    def predict(self, ms: np.ndarray, pan: np.ndarray) -> np.ndarray:
        """(B, C, h, w), (B, 1, H, W) normalised float32 -> (B, C, H, W) normalised float32."""
        ...


@dataclass(frozen=True)
class _Plan:
    """Resolved output and tiling of a run (tile, overlap, margin in MS px)."""

    out: str
    dtype: int
    tile: int
    overlap: int
    margin: int


class _Fusion(NamedTuple):
    """The chosen predictor and what the run reports about it."""

    predictor: Predictor
    normalizer: Normalizer
    meta: dict
    model_name: str
    batch_size: int
    device_report: str
    adaptation: dict | None = None
    band_methods: dict | None = None


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
    sensor: str | None = "auto",
    adapt_seconds: float = 0.0,
    adapt_options: dict[str, Any] | None = None,
    model_bands: Any = None,
    other_method: str = DEFAULT_OTHER,
) -> PansharpenReport:
    """Pansharpen ``ms`` with ``pan`` into the GeoTIFF ``out`` on the PAN grid.

    Args:
        pan: panchromatic raster path (1 band, or several with ``pan_band``).
        ms: multispectral raster path (C >= 2 bands), any grid/CRS overlapping ``pan``.
        out: output GeoTIFF path (C bands, PAN pixel size, PAN/MS footprint intersection).
        method: "psdnet" or a classical method: "exp", "brovey", "gsa", "mtf_glp_hpm",
            "mtf_glp_fs", "bdsd_pc".
        model: "auto" (bundled model for the band count and ratio), a bundled model name,
            a weights path, or a ``torch.nn.Module`` taking normalised (ms, pan).
        device: "auto" | "cpu" | "cuda" (PSDNet only).
        tile, overlap: tile side and overlap in MS px (default ``core.tiling.default_tile``).
        pan_band: 1-based band of ``pan`` used as PAN.
        out_dtype: None (same as the MS, clipped and rounded) or e.g. "float32".
        feedback: object with ``info(str)``, ``progress(percent)``, ``is_canceled()``
            (and optionally ``warning(str)``), see :mod:`psdnet_qgis.engine.feedback`.
        batch_size: tiles per predictor call (default: predictor's choice; 1 for classical).
        margin: context margin in MS px around each tile (default:
            ``core.tiling.PSDNET_MARGIN`` for PSDNet, ``CLASSICAL_MARGIN`` for classical
            methods).
        precision: PSDNet arithmetic: "auto" (``model.precision.auto_precision``), "fp32",
            "bf16", "fp16".
        sensor: MTF gains of the MTF-based steps (``core.mtf.SENSOR_CHOICES``): "auto" (what
            the MS or PAN metadata say, else the documented defaults), "unknown" (the
            defaults) or a sensor name; the log says which gains were used.
        adapt_seconds: PSDNet only: seconds of unsupervised fine-tuning of a copy of the
            model on crops of this scene before the tiles run (``engine.adaptation``;
            0 = off). The copy is used only when held-out crops say it is better.
        adapt_options: ``part`` / ``losses`` / ``lr`` of ``model.adapt.AdaptConfig``.
        model_bands: PSDNet with more MS bands than the model knows (an 8-band WorldView MS):
            the 1-based MS bands the network takes, in the model's band order ("2,3,5,7" or a
            sequence); None = from the band descriptions, else the WorldView 8-band order,
            checked on the pixels (``engine.mixed``).
        other_method: the classical method of the other bands (``engine.mixed.OTHER_METHODS``).

    Returns:
        The :class:`PansharpenReport` of the run (``to_dict()`` for JSON).

    Raises:
        PSDNetInputError: bad input/output/model (before any work), or a write failure.
        PSDNetCanceled: ``feedback.is_canceled()`` became true; nothing is left on disk.
    """
    fb: Feedback = as_feedback(feedback)
    t_start = time.perf_counter()
    if method not in METHODS:
        raise PSDNetInputError(f"method {method!r} is unknown; use one of {', '.join(METHODS)}.")

    with gdal_errors():
        inputs = open_inputs(pan, ms, pan_band)
        try:
            plan = _resolve_plan(inputs, out, method, out_dtype, tile, overlap, margin)
            sensor_name = _resolve_sensor(sensor, inputs, fb)
            fusion = _choose_predictor(inputs, method, model, device, batch_size, precision, plan.margin, fb,
                                       sensor_name, adapt_seconds, adapt_options, model_bands, other_method)
        except BaseException:
            inputs.close()
            raise

        tiles, threads = _plan_tiles(inputs, plan, fusion, method, fb)
        tile_fb = fb if fusion.adaptation is None else tile_feedback(fb)  # the bar after adaptation's span
        tile_fb.progress(2.0)
        nodata = output.output_nodata(inputs, plan.dtype)
        try:
            _write(inputs, plan, nodata, tiles, fusion, tile_fb)
        finally:
            inputs.close()

    seconds = time.perf_counter() - t_start
    fb.progress(100.0)
    report = _report(method, inputs, plan, fusion, len(tiles), threads, nodata, seconds)
    fb.info(f"Done in {seconds:.1f} s ({report.width * report.height / 1e6:.2f} MPx, "
            f"{report.mpx_per_s} MPx/s).")
    return report


# ------------------------------------------------------------------------------ steps
def _resolve_plan(inputs: RasterInputs, out: str, method: str, out_dtype: Any, tile: int | None,
                  overlap: int | None, margin: int | None) -> _Plan:
    """Step 1: the checked output path and type, and the tiling (PSDNetInputError if bad)."""
    out_abs = output.check_output(out, [inputs.pan_path, inputs.ms_path])
    dtype = output.resolve_dtype(out_dtype, inputs.ms_dtype)
    tile, overlap, margin = resolve_tiling(inputs.ratio, method, (inputs.ms_height, inputs.ms_width),
                                           tile, overlap, margin)
    return _Plan(out_abs, dtype, tile, overlap, margin)


def _choose_predictor(inputs: RasterInputs, method: str, model: Any, device: str,
                      batch_size: int | None, precision: str, margin: int, fb: Feedback,
                      sensor: str | None = None, adapt_seconds: float = 0.0,
                      adapt_options: dict[str, Any] | None = None, model_bands: Any = None,
                      other_method: str = DEFAULT_OTHER) -> _Fusion:
    """Step 2: the model (checked before any pixel is read), the global statistics, the predictor.

    ``sensor``: the resolved ``core.mtf.SENSORS`` name (None = default gains) of the
    classical methods' MTF filters.
    """
    meta: dict = {}
    net = None
    if method == "psdnet":
        net, meta = _load_model(model, inputs, model_bands)
    sample = _read_sample(inputs)
    # The model's own normalisation (its metadata); classical methods use zscore4.
    normalizer = Normalizer.from_arrays(*sample, method=str(meta.get("normalisation", "zscore4")))
    if method == "psdnet" and int(meta.get("bands") or inputs.bands) < inputs.bands:
        return _mixed_fusion(inputs, net, meta, normalizer, sample, device, batch_size, precision, margin, fb,
                             sensor, adapt_seconds, model_bands, other_method)
    adaptation = None
    if adapt_seconds and method == "psdnet":
        net, adaptation = adapt_step(inputs, net, normalizer, adapt_seconds, SpanFeedback(fb, 0.0, PROGRESS_END),
                                     sensor=sensor, **(adapt_options or {}))
    elif adapt_seconds:
        fb.info(f"Adaptation applies to PSDNet only; {method} runs without it.")
    predictor: Predictor
    if method == "psdnet":
        predictor = _torch_predictor(net, meta, device, batch_size, precision, fb)
        bs = int(getattr(predictor, "batch_size", None) or batch_size or 1)
        model_name = str(meta.get("name", "custom"))
    else:
        # fitted methods' statistics: once per raster, from the same sample read
        predictor = ClassicalPredictor.from_inputs(method, normalizer, inputs, sample, margin, sensor=sensor)
        bs = int(batch_size or 1)
        model_name = method
    return _Fusion(predictor, normalizer, meta, model_name, bs,
                   str(getattr(predictor, "device_report", device)), adaptation)


def _mixed_fusion(inputs: RasterInputs, net: Any, meta: dict, normalizer: Normalizer, sample: tuple,
                  device: str, batch_size: int | None, precision: str, margin: int, fb: Feedback,
                  sensor: str | None, adapt_seconds: float, model_bands: Any, other_method: str) -> _Fusion:
    """Step 2 with more MS bands than the model's: the network on its bands, ``other_method`` on the rest."""
    if other_method not in mixed.OTHER_METHODS:
        raise PSDNetInputError(f"Other-bands method {other_method!r} is unknown; use one of "
                               f"{', '.join(mixed.OTHER_METHODS)}.")
    name = str(meta.get("name", "custom"))
    names = list(meta.get("band_names") or [])
    if len(names) != int(meta.get("bands") or 0):
        raise PSDNetInputError(
            f"Model '{name}' has {meta.get('bands')} bands but no band names in its metadata, so its bands "
            f"cannot be found among the {inputs.bands} of MS input '{inputs.ms_path}': give the MS with "
            "exactly the model's bands, or choose a classical method.")
    s_ms, s_pan, s_mv, s_pv = sample
    plan = mixed.plan_bands(name, names, inputs.bands, inputs.descriptions, inputs.ms_path, model_bands,
                            s_ms, s_mv)
    if adapt_seconds:
        fb.info("Adaptation is not available when the MS has more bands than the model; it runs without.")
    idx = np.asarray(plan.network)
    net_norm = Normalizer.from_arrays(s_ms[idx], s_pan, s_mv, s_pv,
                                      method=str(meta.get("normalisation", "zscore4")))
    network = _torch_predictor(net, meta, device, batch_size, precision, fb)
    classical_pred = ClassicalPredictor.from_inputs(other_method, normalizer, inputs, sample, margin, sensor=sensor)
    predictor = mixed.MixedPredictor(network, classical_pred, plan, normalizer, net_norm)
    fb.info(plan.describe(name, other_method, inputs.bands))
    if plan.check is not None and plan.check.verdict == "inconclusive":
        fb.warning(f"The band order of MS input '{inputs.ms_path}' could not be confirmed on the pixels "
                   f"({plan.check.reason}); if the fused colours look wrong, set Model bands (--model-bands).")
    rest = [b + 1 for b in range(inputs.bands) if b not in plan.network]
    meta = dict(meta)
    if meta.get("rgb") is not None:
        meta["rgb"] = [plan.network[i] for i in meta["rgb"]]  # true colour in MS band numbers
    return _Fusion(predictor, normalizer, meta, name, predictor.batch_size, predictor.device_report,
                   None, {name: [b + 1 for b in plan.network], other_method: rest})


def _resolve_sensor(sensor: str | None, inputs: RasterInputs, fb: Feedback) -> str | None:
    """The ``core.mtf.SENSORS`` name of the run's MTF gains (None = defaults), logged with its origin."""
    name, how = resolve_sensor(sensor, inputs)
    origin = {"metadata": "from the input metadata", "chosen": "as chosen",
              "default": "no sensor given or found in the metadata"}[how]
    fb.info(f"Sensor: {name or 'unknown'} ({origin}); {mtf.describe_gains(name, inputs.bands)}.")
    return name


def _read_sample(inputs: RasterInputs) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The decimated global sample (``RasterInputs.read_sample``), checked for valid pixels."""
    try:
        s_ms, s_pan, s_mv, s_pv = inputs.read_sample()
    except RuntimeError as exc:
        raise PSDNetInputError(
            f"Inputs '{inputs.pan_path}' / '{inputs.ms_path}' cannot be read "
            f"({first_line(exc)}): truncated or corrupt file; copy it again."
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
    return s_ms, s_pan, s_mv, s_pv


def _torch_predictor(net: Any, meta: dict, device: str, batch_size: int | None, precision: str,
                     fb: Feedback) -> Predictor:
    """The PSDNet predictor on the resolved device, in the resolved precision (imports torch)."""
    from psdnet_qgis.model.precision import auto_precision
    from psdnet_qgis.model.predictor import TorchPredictor, resolve_device

    dev = resolve_device(device)
    if batch_size is None and dev.type == "cpu":
        batch_size = 1  # batch 1 is the fastest per pixel on the CPU, and the smallest
    prec = auto_precision(dev) if precision in (None, "", "auto") else precision
    return TorchPredictor(net, meta, device=dev, batch_size=batch_size, precision=prec, log=fb.info)


def _threads(predictor: Predictor, method: str) -> int:
    """CPU threads of the run: the predictor's, else torch's for PSDNet, else 1."""
    n = int(getattr(predictor, "threads", 0) or 0)
    if n:
        return n
    if method != "psdnet":
        return 1
    from psdnet_qgis.model.precision import torch_threads

    return torch_threads()


def _plan_tiles(inputs: RasterInputs, plan: _Plan, fusion: _Fusion, method: str, fb: Feedback
                ) -> tuple[list[Tile], int]:
    """Step 3: the tiles in row-major order and the thread count, logged with the inputs."""
    tiles = sorted(plan_tiles(inputs.ms_height, inputs.ms_width, plan.tile, plan.overlap),
                   key=lambda t: (t.row, t.col))
    threads = _threads(fusion.predictor, method)
    _log_plan(fb, inputs, plan, fusion, method, len(tiles), threads)
    return tiles, threads


def _log_plan(fb: Feedback, inputs: RasterInputs, plan: _Plan, fusion: _Fusion, method: str,
              n_tiles: int, threads: int) -> None:
    """What is about to run, one feedback line each."""
    fb.info(f"Inputs: PAN {inputs.pan_path} (band {inputs.pan_band}), MS {inputs.ms_path} "
            f"({inputs.bands} bands), ratio {inputs.ratio}.")
    if inputs.ms_warped:
        fb.info(f"MS read through a GDAL warped VRT (cubic) onto the PAN-derived grid: "
                f"{inputs.warp_reason}.")
    fb.info(f"Output: {inputs.width} x {inputs.height} px, {inputs.bands} bands, "
            f"{gdal.GetDataTypeName(plan.dtype)} -> {plan.out}")
    fb.info(f"Method: {method}; model: {fusion.model_name}; device: {fusion.device_report}; "
            f"threads: {threads}")
    fb.info(f"Tile plan: {n_tiles} tiles of {min(plan.tile, inputs.ms_height)} x "
            f"{min(plan.tile, inputs.ms_width)} MS px, overlap {plan.overlap}, context margin "
            f"{plan.margin}, batch {fusion.batch_size}")


def _write(inputs: RasterInputs, plan: _Plan, nodata: float | None, tiles: Sequence[Tile],
           fusion: _Fusion, fb: Feedback) -> None:
    """Step 4: create the output, run every tile into it, close it; remove it on any error."""
    ds = None
    writer = None
    try:
        try:
            ds = output.create_output(plan.out, inputs, plan.dtype, nodata)
        except RuntimeError as exc:
            raise PSDNetInputError(
                f"Output '{plan.out}' cannot be created ({first_line(exc)}); check the "
                "folder permissions and free disk space."
            ) from None
        writer = output.StripWriter(ds, plan.dtype, nodata)
        with keep_freed_memory() as trim_heap:
            _run_tiles(inputs, tiles, fusion.predictor, fusion.normalizer, writer, fb,
                       fusion.batch_size, plan.margin, after_row=trim_heap)
        try:
            writer.close()
            ds.FlushCache()
        except RuntimeError as exc:
            raise output.write_error(plan.out, exc) from None
        with closing_errors() as errors:  # the TIFF directory is written here
            writer = ds = None
        if errors:
            raise output.write_error(plan.out, RuntimeError(errors[0]))
        output.check_complete(plan.out)
    except BaseException as exc:
        # The frames of a failed write hold the dataset: clear them so that the file is
        # closed here, quietly, before it is removed.
        clear_frames_below(exc)
        with closing_errors():
            writer = ds = None
        output.remove_output(plan.out)
        raise


def _report(method: str, inputs: RasterInputs, plan: _Plan, fusion: _Fusion, n_tiles: int, threads: int,
            nodata: float | None, seconds: float) -> PansharpenReport:
    """Step 5: the run's :class:`PansharpenReport`."""
    mpx = inputs.width * inputs.height / 1e6
    return PansharpenReport(
        out=plan.out, method=method, model=fusion.model_name,
        model_version=fusion.meta.get("version"), device=fusion.device_report, ratio=inputs.ratio,
        tiles=n_tiles, tile=plan.tile, overlap=plan.overlap, margin=plan.margin,
        batch_size=fusion.batch_size, threads=threads, width=inputs.width, height=inputs.height,
        bands=inputs.bands, dtype=gdal.GetDataTypeName(plan.dtype), nodata=nodata,
        ms_warped=inputs.ms_warped, seconds=round(seconds, 3),
        mpx_per_s=round(mpx / seconds, 4) if seconds > 0 else None,
        rgb=fusion.meta.get("rgb"), normalizer=fusion.normalizer.to_dict(), adaptation=fusion.adaptation,
        band_methods=fusion.band_methods,
    )


def _load_model(model: Any, inputs: RasterInputs, model_bands: Any = None) -> tuple[Any, dict]:
    """Resolve ``model`` ("auto" | name | path | nn.Module) -> (module, meta).

    Registry lookup (no torch) first, so "no bundled model for 4 bands at ratio 2" is reported
    before torch is even imported. A model with fewer bands than the MS is accepted when it
    names its bands (``engine.mixed`` finds them in the MS); Auto then picks the bundled model
    with the most bands the MS holds.
    """
    bands, ratio = inputs.bands, inputs.ratio
    if hasattr(model, "forward") and hasattr(model, "parameters"):  # an nn.Module instance
        meta = {"name": getattr(model, "name", type(model).__name__), "bands": getattr(model, "bands", bands),
                "ratio": getattr(model, "ratio", ratio)}
        # weights.load_model's metadata (normalisation, rgb, ...), kept by a caller that loads a
        # model once for many scenes (engine.batch)
        meta.update(getattr(model, "psdnet_meta", None) or {})
        mod = model
    else:
        from psdnet_qgis.core import registry

        if model in (None, "", *registry.AUTO_CHOICES):
            fast = model == "auto_fast"
            try:
                info = registry.auto_select(bands, ratio, fast=fast)
            except PSDNetInputError:  # the message has the fix; a model for some of the bands?
                info = mixed.auto_model(bands, ratio, inputs.descriptions, model_bands, fast)
                if info is None:
                    raise
            target = getattr(info, "path", None) or info.name
        else:
            target = os.fspath(model)
        from psdnet_qgis.model.weights import load_model

        mod, meta = load_model(target)
        meta = dict(meta) if isinstance(meta, dict) else dict(vars(meta))
    m_bands, m_ratio = meta.get("bands"), meta.get("ratio")
    if m_bands is not None and int(m_bands) < bands and meta.get("band_names"):
        pass  # more MS bands than the model's: engine.mixed
    elif m_bands is not None and int(m_bands) != bands:
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


def _run_tiles(inputs: RasterInputs, tiles: Sequence[Tile], predictor: Predictor, normalizer: Normalizer,
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
            pred = predictor.predict(*_read_batch(inputs, batch, margin, normalizer))
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
        data = writer.convert(acc[:, :k], valid, inplace=True)
        try:
            writer.add(data)
        except RuntimeError as exc:
            raise output.write_error(writer.ds.GetDescription(), exc) from None
        keep = group[0].row * r + group[0].height * r - until  # overlap rows still open
        if keep > 0:
            acc[:, :keep] = acc[:, k:k + keep]
        acc[:, max(keep, 0):] = 0.0
        acc0 = until
        after_row()


def _read_batch(inputs: RasterInputs, batch: Sequence[Tile], margin: int, normalizer: Normalizer
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
