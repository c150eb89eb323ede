"""Step 2 of ``engine.run.pansharpen``: the model, the scene's statistics and the predictor.

:func:`scene_model` resolves the model (checked against the inputs before any pixel is read),
the sensor's MTF gains and the global normalisation statistics from one decimated read of
each input (never per tile: per-tile statistics would make neighbouring tiles disagree and
show seams). ``psdnet:adapt`` (``engine.adapt_scene``) starts from the same step, so the
weights it saves reproduce the adapted run. :func:`choose_predictor` builds the predictor the
tile loop calls: PSDNet (``model.predictor.TorchPredictor``, after scene adaptation when asked),
PSDNet on its bands plus a classical method on the others (``engine.mixed``), or a classical
method (``engine.classical_predictor``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np

from psdnet_qgis.core import mtf
from psdnet_qgis.core.options import AdaptOptions, ModelBands, ModelChoice
from psdnet_qgis.core.radiometry import Normalizer
from psdnet_qgis.core.registry import AUTO_CHOICES, ModelInfo
from psdnet_qgis.engine import mixed
from psdnet_qgis.engine.adaptation import AdaptReport, adapt_or_skip, skipped
from psdnet_qgis.engine.classical_predictor import ClassicalPredictor
from psdnet_qgis.engine.feedback import Feedback, QuietFeedback
from psdnet_qgis.engine.gdalerr import first_line
from psdnet_qgis.engine.memory import map_large_buffers
from psdnet_qgis.engine.mixed import DEFAULT_OTHER
from psdnet_qgis.engine.msbands import UNKNOWN, MSBandNames, identify
from psdnet_qgis.engine.progress import PROGRESS_END, SpanFeedback
from psdnet_qgis.engine.raster import RasterInputs
from psdnet_qgis.engine.sensor import SensorChoice, choose_sensor
from psdnet_qgis.errors import PSDNetInputError, PSDNetResourceError


class Predictor(Protocol):
    """What the tile loop needs of a predictor (``TorchPredictor``, ``ClassicalPredictor``)."""

    batch_size: int
    device_report: str

    def predict(self, ms: np.ndarray, pan: np.ndarray) -> np.ndarray:
        """(B, C, h, w), (B, 1, H, W) normalised float32 -> (B, C, H, W) normalised float32."""
        ...


class Fusion(NamedTuple):
    """The chosen predictor and what the run reports about it."""

    predictor: Predictor
    normalizer: Normalizer
    info: ModelInfo | None  # the model's metadata (None: a classical method, or a module given without any)
    #: the output's true-colour bands, 0-based MS band numbers (the model's ``rgb``, through the band
    #: plan where the network takes some of the MS bands); None: unknown (no model metadata)
    rgb: list[int] | None
    model_name: str
    batch_size: int
    device_report: str
    adaptation: AdaptReport | None = None
    band_methods: dict | None = None
    calibration: dict | None = None
    margin: int | None = None  # the tiles' context margin the predictor needs (None: the plan's)
    #: band descriptions for an output whose MS bands have none but were named otherwise (a VRT
    #: stack of Landsat band files); None: the MS's own descriptions
    descriptions: list[str] | None = None


class SceneModel(NamedTuple):
    """The model and what the scene says before any tile runs."""

    net: Any  # the torch module (None for a classical method)
    #: the model's metadata (None for a classical method, or a torch module given without any)
    info: ModelInfo | None
    sensor: str | None  # ``core.mtf.SENSORS`` name of the MTF gains (None = defaults)
    sample: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # ``read_sample``
    normalizer: Normalizer  # global statistics, in the model's normalisation
    band_plan: mixed.BandPlan | None = None  # as many bands as the model, to reorder for it (engine.mixed)
    band_names: MSBandNames = UNKNOWN  # what the MS bands are (``engine.msbands``; PSDNet runs only)

    @property
    def name(self) -> str:
        """The model's name (:func:`model_name`)."""
        return model_name(self.info, self.net)


def model_name(info: ModelInfo | None, net: Any) -> str:
    """The model's name: its metadata's, else the torch module's own ``name`` or its class name."""
    return info.name if info is not None else str(getattr(net, "name", type(net).__name__))


def true_colour(info: ModelInfo | None, network_bands: Sequence[int] | None = None) -> list[int] | None:
    """The output's true-colour bands (0-based MS band numbers) from the model's ``rgb``, through
    ``network_bands`` (the MS band of each model band) where the network takes some of the MS
    bands; None (unknown) without metadata or without three of them."""
    if info is None or len(info.rgb) != 3:
        return None
    return [network_bands[i] for i in info.rgb] if network_bands is not None else list(info.rgb)


def scene_model(inputs: RasterInputs, method: str, model: ModelChoice, sensor: str | None, fb: Feedback,
                model_bands: ModelBands = None) -> SceneModel:
    """The sensor (logged), the model (PSDNet only) and the global statistics of the scene.

    The model's own normalisation (its metadata) is used; classical methods use zscore4. PSDNet:
    the MS band names (``engine.msbands``: band descriptions, Landsat band numbers of the
    descriptions or of a VRT's source files) choose Auto's model and the network's bands.
    """
    choice = log_sensor(sensor, inputs, fb)
    known = UNKNOWN
    if method == "psdnet":
        known = identify(inputs.descriptions, inputs.bands, inputs.ms_path, choice.label)
    net, info = resolve_model(model, inputs, model_bands, known) if method == "psdnet" else (None, None)
    sample = read_sample(inputs)
    normalizer = Normalizer.from_arrays(*sample, method=info.normalisation if info is not None else "zscore4")
    plan = mixed.order_plan(info, inputs, sample, model_bands, fb, known) if info is not None else None
    return SceneModel(net, info, choice.name, sample, normalizer, plan, known)


def choose_predictor(inputs: RasterInputs, scene: SceneModel, method: str, device: str,
                     batch_size: int | None, precision: str, margin: int, fb: Feedback,
                     adapt_seconds: float = 0.0, adapt_options: AdaptOptions | None = None,
                     model_bands: ModelBands = None, other_method: str = DEFAULT_OTHER,
                     calibrate: bool = False) -> Fusion:
    """The predictor of the run: PSDNet (adapted to the scene first with ``adapt_seconds``),
    PSDNet on its bands plus a classical method on the others, or a classical method; PSDNet
    calibrated on the scene with ``calibrate`` (``engine.calibration``)."""
    judge = None
    if calibrate and adapt_seconds and method == "psdnet":
        judge = CalibratedJudge(inputs, scene, device, batch_size, precision, fb)  # fits nothing until called
    fusion = _choose(inputs, scene, method, device, batch_size, precision, margin, fb, adapt_seconds,
                     adapt_options, model_bands, other_method, judge)
    known = scene.band_names
    if known.source == "files" and known.names and not any(inputs.descriptions):
        fusion = fusion._replace(descriptions=list(known.names))
    if not calibrate or method != "psdnet":
        return fusion
    from psdnet_qgis.engine.calibration import calibrated

    net_bands = None
    if fusion.band_methods is not None:
        net_bands = [b - 1 for b in fusion.band_methods[fusion.model_name]]
    with map_large_buffers():  # engine.memory: no holes left in the heap the tiles start with
        predictor, report = calibrated(inputs, fusion.predictor, fusion.normalizer, scene.sample, margin,
                                       scene.sensor, fb, net_bands, fusion.model_name, _band_names(scene, inputs),
                                       other_method, judge.fit_of_kept(fusion.adaptation) if judge else None)
    return fusion._replace(predictor=predictor, calibration=report,
                           device_report=str(getattr(predictor, "device_report", fusion.device_report)),
                           margin=getattr(predictor, "margin", None))


class CalibratedJudge:
    """Adaptation's whole-scene check for a calibrated run (``engine.adaptation.scene_check``):
    each network judged as the run would calibrate it on this scene (nothing logged).

    ``fits`` keeps the calibrations in the order the networks were judged (the original, then
    the adapted copy), so that the run reuses the kept network's instead of fitting it again.
    """

    def __init__(self, inputs: RasterInputs, scene: SceneModel, device: str, batch_size: int | None,
                 precision: str, fb: Feedback) -> None:
        from psdnet_qgis.engine.calibration import check_calibration

        self._quiet = QuietFeedback(fb)
        self._args = (scene.name, device, batch_size, precision)
        self._calibrate = check_calibration(inputs, scene.normalizer, scene.sample, scene.sensor, self._quiet,
                                            _band_names(scene, inputs), scene.name)
        self.fits: list[Any] = []

    def __call__(self, candidate: Any) -> Any:
        name, device, batch_size, precision = self._args
        judged = self._calibrate(torch_predictor(candidate, name, device, batch_size, precision, self._quiet))
        self.fits.append(judged[0].calibration if judged is not None else None)
        return judged

    def fit_of_kept(self, adaptation: AdaptReport | None) -> Any:
        """The calibration of the network the adaptation kept, when the check fitted both (else None)."""
        if adaptation is None or len(self.fits) != 2:
            return None
        return self.fits[1] if adaptation.kept else self.fits[0]


def _band_names(scene: SceneModel, inputs: RasterInputs) -> list[str] | None:
    """The MS band names the calibration goes by (the MS's, else the model's), None when unknown."""
    names = scene.band_names.names or (list(scene.info.band_names) if scene.info is not None else None)
    return list(names) if names is not None and len(names) == inputs.bands else None


def _choose(inputs: RasterInputs, scene: SceneModel, method: str, device: str, batch_size: int | None,
            precision: str, margin: int, fb: Feedback, adapt_seconds: float, adapt_options: AdaptOptions | None,
            model_bands: ModelBands, other_method: str, judge: CalibratedJudge | None = None) -> Fusion:
    """:func:`choose_predictor` before calibration (``judge``, a calibrated run's: adaptation's
    check judges the networks calibrated, as the run will use them)."""
    net, info, sensor, normalizer = scene.net, scene.info, scene.sensor, scene.normalizer
    if method == "psdnet" and ((info.bands if info is not None else inputs.bands) < inputs.bands
                               or scene.band_plan is not None):
        return mixed_fusion(inputs, scene, device, batch_size, precision, margin, fb, adapt_seconds,
                            model_bands, other_method)
    adaptation = None
    if adapt_seconds and method == "psdnet":
        net, adaptation = adapt_or_skip(inputs, net, normalizer, adapt_seconds, SpanFeedback(fb, 0.0, PROGRESS_END),
                                        sensor=sensor, options=adapt_options, judge=judge)
    elif adapt_seconds:
        fb.info(f"Adaptation applies to PSDNet only; {method} runs without it.")
    predictor: Predictor
    if method == "psdnet":
        name = scene.name
        predictor = torch_predictor(net, name, device, batch_size, precision, fb)
        bs = int(getattr(predictor, "batch_size", None) or batch_size or 1)
    else:
        # fitted methods' statistics: once per raster, from the same sample read
        predictor = ClassicalPredictor.from_inputs(method, normalizer, inputs, scene.sample, margin,
                                                   sensor=sensor)
        bs = int(batch_size or 1)
        name = method
    return Fusion(predictor, normalizer, info, true_colour(info), name, bs,
                  str(getattr(predictor, "device_report", device)), adaptation)


def mixed_fusion(inputs: RasterInputs, scene: SceneModel, device: str, batch_size: int | None,
                 precision: str, margin: int, fb: Feedback, adapt_seconds: float, model_bands: ModelBands,
                 other_method: str) -> Fusion:
    """More MS bands than the model's: the network on its bands, ``other_method`` on the rest."""
    net, info, normalizer, sample = scene.net, scene.info, scene.normalizer, scene.sample
    if other_method not in mixed.OTHER_METHODS:
        raise PSDNetInputError(f"Other-bands method {other_method!r} is unknown; use one of "
                               f"{', '.join(mixed.OTHER_METHODS)}.")
    name = scene.name
    if info is None or len(info.band_names) != info.bands:
        n_model = info.bands if info is not None else inputs.bands
        raise PSDNetInputError(
            f"Model '{name}' has {n_model} bands but no band names in its metadata, so its bands "
            f"cannot be found among the {inputs.bands} of MS input '{inputs.ms_path}': give the MS with "
            "exactly the model's bands, or choose a classical method.")
    s_ms, s_pan, s_mv, s_pv = sample
    plan = scene.band_plan or mixed.plan_bands(name, list(info.band_names), inputs.bands, scene.band_names,
                                               inputs.ms_path, model_bands, s_ms, s_mv)
    adaptation = None
    if adapt_seconds:
        why = (f"model '{name}' takes bands {', '.join(str(b + 1) for b in plan.network)} of MS input "
               f"'{inputs.ms_path}' ({inputs.bands} bands), and adaptation needs the MS in the model's bands "
               "and order; write those bands to a file of their own to adapt.")
        adaptation = skipped(adapt_seconds, why, SpanFeedback(fb, 0.0, PROGRESS_END))
    idx = np.asarray(plan.network)
    net_norm = Normalizer.from_arrays(s_ms[idx], s_pan, s_mv, s_pv, method=info.normalisation)
    network = torch_predictor(net, name, device, batch_size, precision, fb)
    classical_pred = ClassicalPredictor.from_inputs(other_method, normalizer, inputs, sample, margin,
                                                    sensor=scene.sensor)
    predictor = mixed.MixedPredictor(network, classical_pred, plan, normalizer, net_norm)
    fb.info(plan.describe(name, other_method, inputs.bands))
    if plan.check is not None and plan.check.verdict == "inconclusive":
        fb.warning(f"The band order of MS input '{inputs.ms_path}' could not be confirmed on the pixels "
                   f"({plan.check.reason}); if the fused colours look wrong, set Model bands (--model-bands).")
    rest = [b + 1 for b in range(inputs.bands) if b not in plan.network]
    methods = {name: [b + 1 for b in plan.network], **({other_method: rest} if rest else {})}
    return Fusion(predictor, normalizer, info, true_colour(info, plan.network), name, predictor.batch_size,
                  predictor.device_report, adaptation, methods)


def log_sensor(sensor: str | None, inputs: RasterInputs, fb: Feedback) -> SensorChoice:
    """The run's sensor (``name``: the ``core.mtf.SENSORS`` name of its MTF gains, None = defaults;
    ``label``: what it is, e.g. "Landsat 7 ETM+"), logged with its origin (the metadata item, the
    MTL file or the Landsat file name it came from)."""
    found = choose_sensor(sensor, inputs)
    fb.info(f"Sensor: {found.label} ({found.origin}); {mtf.describe_gains(found.name, inputs.bands)}.")
    return found


def read_sample(inputs: RasterInputs) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
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


def torch_missing(exc: ImportError) -> PSDNetResourceError:
    """The error of a PSDNet run where torch cannot be imported (missing or a broken install)."""
    return PSDNetResourceError(
        f"Method psdnet: torch cannot be imported ({exc}); install PyTorch for this Python "
        "(README, 'Making torch importable by QGIS') or choose a classical method."
    )


def torch_predictor(net: Any, name: str | None, device: str, batch_size: int | None, precision: str,
                    fb: Feedback) -> Predictor:
    """The PSDNet predictor of the model ``name`` on the resolved device, in the resolved precision
    (imports torch)."""
    try:
        from psdnet_qgis.model.precision import precision_choice
        from psdnet_qgis.model.predictor import TorchPredictor, resolve_device
    except ImportError as exc:
        raise torch_missing(exc) from None

    dev = resolve_device(device)
    if batch_size is None and dev.type == "cpu":
        batch_size = 1  # batch 1 is the fastest per pixel on the CPU, and the smallest
    prec = precision
    if precision in (None, "", "auto"):
        width = getattr(net, "width", None)
        prec, why = precision_choice(dev, name, int(width) if isinstance(width, int) else None)
        fb.info(f"Precision auto: {why}.")
    return TorchPredictor(net, name, device=dev, batch_size=batch_size, precision=prec, log=fb.info)


def resolve_model(model: ModelChoice, inputs: RasterInputs, model_bands: ModelBands = None,
                  known: MSBandNames = UNKNOWN) -> tuple[Any, ModelInfo | None]:
    """Resolve ``model`` ("auto" | name | path | ``ModelInfo`` | nn.Module) -> (module, its metadata).

    The registry is read once: Auto's choice (a ``ModelInfo``) is loaded as found, a name or
    path is looked up by ``model.weights.load_model``. Registry lookup (no torch) first, so
    "no bundled model for these bands at ratio 2" is reported before torch is even imported. A
    model with fewer bands than the MS is accepted when it names its bands (``engine.mixed``
    finds them in the MS); Auto picks the bundled model by the MS band names (``known``) and the
    ratio: the one with the most bands the MS holds (``engine.mixed.auto_model``), by band count
    when the names are unknown. The metadata is ``model.weights.load_model``'s ``ModelInfo``; for an
    nn.Module, the one a caller that loads a model once for many scenes (``engine.batch``) kept in its
    ``psdnet_meta``, else None (the module's own ``name``, ``bands`` and ``ratio`` are checked).
    """
    bands, ratio = inputs.bands, inputs.ratio
    info: ModelInfo | None
    if hasattr(model, "forward") and hasattr(model, "parameters"):  # an nn.Module instance
        kept = getattr(model, "psdnet_meta", None)
        info = kept if isinstance(kept, ModelInfo) else None
        mod = model
    else:
        target: str | ModelInfo
        if isinstance(model, ModelInfo):
            target = model
        elif model in (None, "", *AUTO_CHOICES):
            info = mixed.auto_model(bands, ratio, known, model_bands, model == "auto_fast")
            if info is None:
                raise PSDNetInputError(mixed.no_model_message(bands, ratio, known, inputs.ms_path))
            target = info  # loaded as found: the registry is not read again
        else:
            target = os.fspath(model)
        try:
            from psdnet_qgis.model.weights import load_model
        except ImportError as exc:
            raise torch_missing(exc) from None

        mod, info = load_model(target)
    name = model_name(info, mod)
    base = getattr(mod, "base", "bicubic")
    if base != "bicubic":
        raise PSDNetInputError(
            f"Model '{name}' adds its residual to a classical fusion ({base}), a study model of "
            "scripts/base_study.py that the tiled engine cannot run: choose a bundled model "
            "(`python -m psdnet_qgis models`) or a classical method."
        )
    if info is not None:
        m_bands, m_ratio = info.bands, info.ratio
    else:
        m_bands, m_ratio = getattr(mod, "bands", bands), getattr(mod, "ratio", ratio)
    if m_bands is not None and int(m_bands) < bands and info is not None and info.band_names:
        pass  # more MS bands than the model's: engine.mixed
    elif m_bands is not None and int(m_bands) != bands:
        raise PSDNetInputError(
            f"Model '{name}' was trained for {m_bands} bands but MS input "
            f"'{inputs.ms_path}' has {bands}: choose a model for {bands} bands (see "
            "`python -m psdnet_qgis models`) or a classical method."
        )
    if m_ratio is not None and int(m_ratio) != ratio:
        raise PSDNetInputError(
            f"Model '{name}' was trained for ratio {m_ratio} but the inputs have "
            f"ratio {ratio}: choose a model for ratio {ratio} or a classical method."
        )
    return mod, info
