"""The tiled pansharpening runner: the one numeric path for every entry point.

QGIS Processing, the CLI (``python -m psdnet_qgis``), benchmarks and scripts all call
:func:`pansharpen`, which runs these steps:

1. **resolve** the inputs (``engine.raster.open_inputs``), the output path and type
   (``engine.output``) and the tiling (``core.tiling.resolve_tiling``); every bad input
   raises :class:`PSDNetInputError` before any pixel is processed;
2. **choose the predictor** (``engine.fusion``): the model, the sensor's gains and the global
   normalisation statistics of the scene, then PSDNet (adapted to the scene first with
   ``adapt_seconds``), PSDNet plus a classical method for the bands the model lacks, or a
   classical method;
3. **plan** the tiles of the MS working grid (``core.tiling.plan_tiles``) and log the plan;
4. **write** (``engine.tileloop``): the tiles through the predictor, blended into a block
   accumulator, each GeoTIFF block written as soon as it is finished; on error or cancellation the
   partial output is removed;
5. **report**: a :class:`PansharpenReport`.

Memory is bounded by one batch of model activations, one tile of open float32 columns, the
float32 seam rows shared with the next tile row (the overlap, ``C x overlap * ratio x width``)
and the output blocks cut by the finished region's edge (under ``C x 256 x width`` in the output
type, plus a tile), whatever the raster height.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from numpy.typing import DTypeLike
from osgeo import gdal

from psdnet_qgis.core.options import AdaptChoice, AdaptOptions, ModelBands, ModelChoice, RunOptions, run_methods
from psdnet_qgis.core.tiling import Tile, plan_tiles, resolve_tiling
from psdnet_qgis.engine import output
from psdnet_qgis.engine.feedback import Feedback, FeedbackLike, as_feedback
from psdnet_qgis.engine.fusion import Fusion, Predictor, choose_predictor, scene_model
from psdnet_qgis.engine.gdalerr import gdal_errors
from psdnet_qgis.engine.memory import map_large_buffers
from psdnet_qgis.engine.mixed import DEFAULT_OTHER
from psdnet_qgis.engine.progress import tile_feedback
from psdnet_qgis.engine.raster import RasterInputs, open_inputs
from psdnet_qgis.engine.tileloop import write_output

#: Every ``method`` of :func:`pansharpen`: the network, then the classical methods (``core.classical``).
METHODS = run_methods()


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
        adaptation: what scene adaptation did (``engine.adaptation.AdaptReport.to_dict()``:
            ``model.adapt.AdaptResult`` fields plus the crop side, gains and the whole-scene check's
            metrics; ``{"skipped": True, "reason": ...}`` when it could not run; None when
            ``adapt_seconds`` was 0).
        band_methods: with more MS bands than the model's, the 1-based output bands each
            method made (``{"psdnet_vhr4": [2, 3, 5, 7], "mtf_glp_fs": [1, 4, 6, 8]}``); else None.
        calibration: the per-scene calibration (``core.calibration.Calibration.to_dict()``:
            candidates, weights per band, reduced-resolution ERGAS / SAM of each candidate and
            of the calibrated result, and its seconds); None when off or skipped.
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
    calibration: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The report as a plain dict (field order), e.g. for JSON output."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class _Plan:
    """Resolved output and tiling of a run (tile, overlap, margin in MS px)."""

    out: str
    dtype: int
    tile: int
    overlap: int
    margin: int


def pansharpen(
    pan: str,
    ms: str,
    out: str,
    *,
    method: str = "psdnet",
    model: ModelChoice = "auto",
    device: str = "auto",
    tile: int | None = None,
    overlap: int | None = None,
    pan_band: int = 1,
    out_dtype: DTypeLike = None,
    feedback: FeedbackLike | None = None,
    batch_size: int | None = None,
    margin: int | None = None,
    precision: str = "auto",
    sensor: str | None = "auto",
    adapt_seconds: float = 0.0,
    adapt_options: AdaptChoice = None,
    model_bands: ModelBands = None,
    other_method: str = DEFAULT_OTHER,
    calibrate: bool = True,
) -> PansharpenReport:
    """Pansharpen ``ms`` with ``pan`` into the GeoTIFF ``out`` on the PAN grid.

    Args:
        pan: panchromatic raster path (1 band, or several with ``pan_band``).
        ms: multispectral raster path (C >= 2 bands), any grid/CRS overlapping ``pan``.
        out: output GeoTIFF path (C bands, PAN pixel size, PAN/MS footprint intersection).
        method: "psdnet" or a classical method: "exp", "brovey", "gsa", "mtf_glp_hpm",
            "mtf_glp_fs", "bdsd_pc".
        model: "auto" (bundled model for the MS band names, else the band count, and the ratio:
            ``engine.mixed.auto_model``), a bundled model name, a weights path, a
            ``core.registry.ModelInfo``, or a ``torch.nn.Module`` taking normalised (ms, pan).
        device: PSDNet only: one of ``core.options.DEVICES`` ("auto", "cuda", "cpu") or "cuda:N".
        tile, overlap: tile side and overlap in MS px (default ``core.tiling.default_tile``).
        pan_band: 1-based band of ``pan`` used as PAN.
        out_dtype: None (same as the MS, clipped and rounded), a type name such as "float32", or a
            numpy type (``engine.output.resolve_dtype``).
        feedback: object with ``info(str)``, ``progress(percent)``, ``is_canceled()``
            (and optionally ``warning(str)``), see :mod:`psdnet_qgis.engine.feedback`.
        batch_size: tiles per predictor call (default: predictor's choice; 1 for classical).
        margin: context margin in MS px around each tile (default:
            ``core.tiling.PSDNET_MARGIN`` for PSDNet, ``CLASSICAL_MARGIN`` for classical
            methods).
        precision: PSDNet arithmetic, one of ``core.options.PRECISIONS``: "auto"
            (``model.precision.auto_precision``), "fp32", "bf16", "fp16".
        sensor: MTF gains of the MTF-based steps (``core.mtf.SENSOR_CHOICES``): "auto" (what
            the MS or PAN metadata say, else the documented defaults), "unknown" (the
            defaults) or a sensor name; the log says which gains were used.
        adapt_seconds: PSDNet only: seconds of unsupervised fine-tuning of a copy of the
            model on crops of this scene before the tiles run (``engine.adaptation``;
            0 = off). The copy is used only when held-out crops say it is better.
        adapt_options: how adaptation fine-tunes: a ``core.options.AdaptOptions`` (part, losses,
            lr, spatial_weight, max_steps; None = its defaults), or a plain dict of those fields
            (``{"losses": "wald"}``, as before it existed), converted once here.
        model_bands: PSDNet with more MS bands than the model knows (an 8-band WorldView MS,
            Landsat bands 1-7): the 1-based MS bands the network takes, in the model's band order
            ("2,3,5,7" or a sequence); None = from the names ``engine.msbands`` finds (band
            descriptions; for Landsat, band numbers of the descriptions or of a VRT's source
            files), else the WorldView 8-band order, checked on the pixels (``engine.mixed``).
        other_method: the classical method of the other bands (``engine.mixed.OTHER_METHODS``).
        calibrate: PSDNet only: fit, on the scene degraded by the ratio, per-band non-negative
            weights of the network's and the classical candidates' detail and apply them in
            every tile (``engine.calibration``); False = the network's output as it comes.

    Returns:
        The :class:`PansharpenReport` of the run (``to_dict()`` for JSON).

    Raises:
        PSDNetInputError: bad input/output/model or an option not in its list
            (``core.options.RunOptions.validate``), before any work.
        PSDNetOutputError: the output cannot be created or written (full disk); removed.
        PSDNetResourceError: CUDA out of memory even on a small piece of a tile, or torch
            missing for PSDNet.
        PSDNetCanceled: ``feedback.is_canceled()`` became true; nothing is left on disk.
    """
    fb: Feedback = as_feedback(feedback)
    t_start = time.perf_counter()
    adapt = AdaptOptions.of(adapt_options)
    RunOptions(method=method, model=model, device=device, tile=tile, overlap=overlap, pan_band=pan_band,
               out_dtype=out_dtype, batch_size=batch_size, margin=margin, precision=precision, sensor=sensor,
               adapt_seconds=adapt_seconds, adapt_options=adapt, model_bands=model_bands,
               other_method=other_method, calibrate=calibrate).validate()

    with gdal_errors():
        inputs = open_inputs(pan, ms, pan_band)
        try:
            plan = _resolve_plan(inputs, out, method, out_dtype, tile, overlap, margin)
            with map_large_buffers():  # engine.memory: the heap the tiles start with does not grow with the scene
                scene = scene_model(inputs, method, model, sensor, fb, model_bands)
            fusion = choose_predictor(inputs, scene, method, device, batch_size, precision, plan.margin, fb,
                                      adapt_seconds, adapt, model_bands, other_method, calibrate)
            if fusion.margin and fusion.margin != plan.margin:  # calibrated: the classical methods' context
                plan = dataclasses.replace(plan, margin=fusion.margin)
            # the decimated sample (up to 1024 px a side: about 22 MB for a 4-band MS) is not needed
            # by the tiles: released here, it is not under the tile loop's peak
            del scene
        except BaseException:
            inputs.close()
            raise

        tiles, threads = _plan_tiles(inputs, plan, fusion, method, fb)
        tile_fb = fb if fusion.adaptation is None else tile_feedback(fb)  # the bar after adaptation's span
        tile_fb.progress(2.0)
        nodata = output.output_nodata(inputs, plan.dtype)
        try:
            write_output(inputs, plan.out, plan.dtype, nodata, tiles, fusion, plan.margin, tile_fb)
        finally:
            inputs.close()

    seconds = time.perf_counter() - t_start
    fb.progress(100.0)
    report = _report(method, inputs, plan, fusion, len(tiles), threads, nodata, seconds)
    fb.info(f"Done in {seconds:.1f} s ({report.width * report.height / 1e6:.2f} MPx, "
            f"{report.mpx_per_s} MPx/s).")
    return report


# ------------------------------------------------------------------------------ steps
def _resolve_plan(inputs: RasterInputs, out: str, method: str, out_dtype: DTypeLike, tile: int | None,
                  overlap: int | None, margin: int | None) -> _Plan:
    """Step 1: the checked output path and type, and the tiling (PSDNetInputError if bad)."""
    out_abs = output.check_output(out, [inputs.pan_path, inputs.ms_path])
    dtype = output.resolve_dtype(out_dtype, inputs.ms_dtype)
    tile, overlap, margin = resolve_tiling(inputs.ratio, method, (inputs.ms_height, inputs.ms_width),
                                           tile, overlap, margin)
    return _Plan(out_abs, dtype, tile, overlap, margin)


def _threads(predictor: Predictor, method: str) -> int:
    """CPU threads of the run: the predictor's, else torch's for PSDNet, else 1."""
    n = int(getattr(predictor, "threads", 0) or 0)
    if n:
        return n
    if method != "psdnet":
        return 1
    from psdnet_qgis.model.precision import torch_threads

    return torch_threads()


def _plan_tiles(inputs: RasterInputs, plan: _Plan, fusion: Fusion, method: str, fb: Feedback
                ) -> tuple[list[Tile], int]:
    """Step 3: the tiles in row-major order and the thread count, logged with the inputs."""
    tiles = sorted(plan_tiles(inputs.ms_height, inputs.ms_width, plan.tile, plan.overlap),
                   key=lambda t: (t.row, t.col))
    threads = _threads(fusion.predictor, method)
    _log_plan(fb, inputs, plan, fusion, method, len(tiles), threads)
    return tiles, threads


def _log_plan(fb: Feedback, inputs: RasterInputs, plan: _Plan, fusion: Fusion, method: str,
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


def _report(method: str, inputs: RasterInputs, plan: _Plan, fusion: Fusion, n_tiles: int, threads: int,
            nodata: float | None, seconds: float) -> PansharpenReport:
    """Step 5: the run's :class:`PansharpenReport`."""
    mpx = inputs.width * inputs.height / 1e6
    return PansharpenReport(
        out=plan.out, method=method, model=fusion.model_name,
        model_version=fusion.info.version if fusion.info is not None else None,
        device=fusion.device_report, ratio=inputs.ratio,
        tiles=n_tiles, tile=plan.tile, overlap=plan.overlap, margin=plan.margin,
        batch_size=fusion.batch_size, threads=threads, width=inputs.width, height=inputs.height,
        bands=inputs.bands, dtype=gdal.GetDataTypeName(plan.dtype), nodata=nodata,
        ms_warped=inputs.ms_warped, seconds=round(seconds, 3),
        mpx_per_s=round(mpx / seconds, 4) if seconds > 0 else None,
        rgb=fusion.rgb, normalizer=fusion.normalizer.to_dict(),
        adaptation=fusion.adaptation.to_dict() if fusion.adaptation is not None else None,
        band_methods=fusion.band_methods, calibration=fusion.calibration,
    )

