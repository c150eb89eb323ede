"""Per-scene calibration of a PSDNet run (``pansharpen(..., calibrate=True)``, the default).

Before the tiles run, the user's own PAN and MS are degraded by the ratio (Wald protocol, with
the sensor's MTF: ``core.wald.degrade_pair``) on windows spread over the scene; the network
and the classical candidates (:data:`CANDIDATES`, fitted on the same degraded windows) fuse
them, and ``core.calibration`` fits, per band, the non-negative weights of each candidate's
detail that best give back the real MS. :class:`CalibratedPredictor` applies those weights at
full scale in every tile, so every tile (and a whole-image run) sees the same coefficients.

Cost: the network on the sample windows (at most :data:`BUDGET` of the run's output pixels,
at least one window), plus the classical candidates per tile (numpy, a few percent of the
network's time). The log and ``PansharpenReport.calibration`` give the weights and the
reduced-resolution ERGAS / SAM of every candidate and of the calibrated result.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from psdnet_qgis.core import bands as bandnames
from psdnet_qgis.core import classical, mtf
from psdnet_qgis.core.calibration import Calibration, CalibrationFit, cross_fitted
from psdnet_qgis.core.radiometry import Normalizer
from psdnet_qgis.core.resample import upsample_bicubic
from psdnet_qgis.core.tiling import CLASSICAL_MARGIN, PSDNET_MARGIN
from psdnet_qgis.core.wald import consistent, degrade_pair
from psdnet_qgis.engine.classical_predictor import ClassicalPredictor, StatsWindows, statistics_windows
from psdnet_qgis.engine.feedback import Feedback
from psdnet_qgis.engine.raster import RasterInputs
from psdnet_qgis.errors import PSDNetCanceled

#: Classical candidates whose detail the calibration may combine with the network's: MTF-GLP-FS
#: (regression gains), MTF-GLP-HPM (multiplicative, the best classical method on three of the
#: six VHR scenes) and GSA with its intensity from the bands the network fuses (or the bands the
#: PAN covers: :func:`intensity_bands`). Chosen by leave-one-scene-out (networks that never saw
#: the scene, as on a user's), with the consistency step: GSA as the third lowers the mean ERGAS
#: against each scene's best classical method from -1.2 % to -1.5 % and the worst fold from
#: +2.8 % to +0.9 %; BDSD-PC as the third made Pléiades 9 % worse (docs/TRAINING_LOG.md,
#: "Calibration candidates" and "GSA as the third candidate").
CANDIDATES: tuple[str, ...] = ("mtf_glp_fs", "mtf_glp_hpm", "gsa")
#: Weights per band: a convex combination of the candidates (``core.calibration.CONSTRAINTS``).
CONSTRAINT = "simplex"
#: One weight vector for all bands (``core.calibration.CalibrationFit(shared=)``) instead of one per band.
SHARED = False
#: After the weights, one back-projection step toward Wald's consistency property
#: (``core.wald.consistent``: the fused tile degraded with the MS bands' MTF is made to give back
#: the MS) on the bands that take PAN detail. Chosen by leave one scene out
#: (docs/TRAINING_LOG.md, "The consistency step").
CONSISTENT = True
#: Side (MS px of the run = PAN px of the degraded scene) of the sample windows.
WINDOW = 192
#: At most this many sample windows...
MAX_WINDOWS = 48
#: ...and the network's sample pixels at most this fraction of the run's output pixels.
BUDGET = 0.08
#: Below this degraded-MS side (px) the scene is too small to calibrate on.
MIN_LR_SIDE = 4
#: Side (MS px of the run) of the squares of the checkerboard that splits the sample in two for
#: the out-of-sample score of adaptation's whole-scene check (:func:`check_calibration`).
CROSS_BLOCK = 32


class _Window(NamedTuple):
    """One degraded sample window (margin ``m`` MS px of the run on every side)."""

    ms_lr: np.ndarray  # (C, (S + 2m) / r, ...) degraded MS, filled
    pan_lr: np.ndarray  # (1, S + 2m, ...) degraded PAN
    ref: np.ndarray  # (C, S, ...) the real MS of the counted part (:func:`_compact`: uint16 when exact)
    valid: np.ndarray  # (S, ...) counted reference pixels
    lr_valid: np.ndarray  # degraded-MS pixels that may enter classical statistics


class CalibratedPredictor:
    """The base predictor's and the classical candidates' outputs, combined with fitted weights.

    Takes and returns normalised tiles like ``TorchPredictor`` (the run's normalisation; the
    weights do not depend on the units). The tiles come with ``margin`` MS px of context, the
    classical methods' (their MTF low-pass reaches about 20 PAN px); the network gets them
    cropped to its own ``net_margin``, so the calibration costs it nothing more. Only the
    tile's core (inside ``margin``) is used by the tile loop.

    ``normalizer``: the run's normalisation; each tile is denormalised and upsampled once for all
    the classical candidates (they run in radiometric units).

    ``consistency``: per band, the MS bands' MTF gain for the consistency step
    (``core.wald.consistent``) after the weights, None for a band left as it is; None: no step.
    The step reads about 4 MS px around each pixel, inside the network's own margin.
    """

    def __init__(self, base: Any, classical_preds: Sequence[ClassicalPredictor | None],
                 calibration: Calibration, normalizer: Normalizer, ratio: int, margin: int = 0, net_margin: int = 0,
                 consistency: Sequence[float | None] | None = None) -> None:
        self.base = base
        self.normalizer = normalizer
        self.classical = list(classical_preds)
        self.calibration = calibration
        self.ratio = int(ratio)
        self.margin = int(margin)
        self.trim = max(0, int(margin) - int(net_margin))  # MS px cut off for the network
        self.consistency = None if consistency is None else list(consistency)
        self.batch_size = int(getattr(base, "batch_size", 1) or 1)
        self.threads = int(getattr(base, "threads", 0) or 0)
        self.device_report = str(getattr(base, "device_report", "cpu"))

    def predict(self, ms: np.ndarray, pan: np.ndarray) -> np.ndarray:
        """(B, C, h, w), (B, 1, H, W) normalised -> (B, C, H, W) normalised float32."""
        t, tr = self.trim, self.trim * self.ratio
        if t:
            net = self.base.predict(np.ascontiguousarray(ms[:, :, t:-t, t:-t]),
                                    np.ascontiguousarray(pan[:, :, tr:-tr, tr:-tr]))
        else:
            net = self.base.predict(ms, pan)
        norm = self.normalizer
        fused = []
        for i in range(ms.shape[0]):
            # the candidates share the tile's denormalised inputs and upsampled MS (one bicubic a tile)
            ms_p, pan_p = norm.denorm_ms(ms[i]), norm.denorm_pan(pan[i])
            up = upsample_bicubic(ms_p, self.ratio)
            lms = norm.norm_ms(up)
            net_i = net[i]
            if t:  # the network's output in the tile's frame; the ring outside it is never used
                net_i = lms.copy()
                net_i[:, tr:-tr, tr:-tr] = net[i]
            # None: weight 0
            others = [lms if cp is None else norm.norm_ms(cp.fuse(ms_p, pan_p, up)) for cp in self.classical]
            out = self.calibration.combine(lms, [net_i, *others])
            if self.consistency is not None:
                out = project(out, ms[i], self.ratio, self.consistency)
            fused.append(out)
        return np.stack(fused)


def consistency_gains(sensor: str | None, bands: int, covered: Sequence[bool] | None) -> list[float | None] | None:
    """Per band the MS MTF gain of the consistency step, None for a band the PAN does not cover;
    None when :data:`CONSISTENT` is off."""
    if not CONSISTENT:
        return None
    gains = mtf.gnyq_for(sensor, bands).ms
    return [float(g) if covered is None or covered[b] else None for b, g in enumerate(gains)]


def project(fused: np.ndarray, ms: np.ndarray, ratio: int, gains: Sequence[float | None]) -> np.ndarray:
    """:func:`core.wald.consistent` on the bands with a gain (:func:`consistency_gains`); a copy."""
    bands = [b for b, g in enumerate(gains) if g is not None]
    out = np.array(fused, dtype=np.float32)
    if bands:
        out[bands] = consistent(out[bands], np.asarray(ms, np.float32)[bands], ratio,
                                [float(g) for g in gains if g is not None])
    return out


def sample_windows(inputs: RasterInputs) -> tuple[list[tuple[int, int]], int, int, int]:
    """Origins of the sample windows and their size.

    Returns:
        (origins (row, col) in MS px, height, width, margin), height and width multiples of
        the ratio; no origins when the scene is too small to calibrate on.
    """
    r = inputs.ratio
    m = PSDNET_MARGIN * r  # the tiles' context margin, at the degraded scale
    hh = min(WINDOW, inputs.ms_height // r * r)
    ww = min(WINDOW, inputs.ms_width // r * r)
    if hh < MIN_LR_SIDE * r or ww < MIN_LR_SIDE * r:
        return [], hh, ww, m
    by_budget = int(BUDGET * inputs.width * inputs.height / ((hh + 2 * m) * (ww + 2 * m)))
    n_max = max(1, min(MAX_WINDOWS, by_budget))
    ny, nx = max(1, inputs.ms_height // hh), max(1, inputs.ms_width // ww)
    while ny * nx > n_max:
        if ny >= nx:
            ny -= 1
        else:
            nx -= 1
    # edge to edge: with as many windows as fit, they tile the scene; with fewer, they spread over it
    rows = np.linspace(0, inputs.ms_height - hh, ny) if ny > 1 else [(inputs.ms_height - hh) / 2]
    cols = np.linspace(0, inputs.ms_width - ww, nx) if nx > 1 else [(inputs.ms_width - ww) / 2]
    origins = [(int(round(a)), int(round(b))) for a in rows for b in cols]
    return origins, hh, ww, m


def _read_windows(inputs: RasterInputs, gains: mtf.SensorMTF, fb: Feedback) -> list[_Window]:
    """The degraded sample windows (nodata filled and masked like training's Wald pairs)."""
    origins, hh, ww, m = sample_windows(inputs)
    r = inputs.ratio
    out = []
    for r0, c0 in origins:
        if fb.is_canceled():
            raise PSDNetCanceled("Cancelled by the user; nothing was written.")
        ms_w, ms_v, pan_w, pan_v = inputs.read_tile(r0, c0, hh, ww, m)
        if not ms_v.any() or not pan_v.any():
            continue
        pair = degrade_pair(ms_w, pan_w, r, gains.ms, gains.pan, ms_v, pan_v)
        counted = np.zeros(ms_v.shape, bool)
        counted[m:m + hh, m:m + ww] = True
        valid = (pair.valid & counted)[m:m + hh, m:m + ww]
        lr_counted = counted.reshape(ms_v.shape[0] // r, r, ms_v.shape[1] // r, r).all(axis=(1, 3))
        if valid.any():
            out.append(_Window(pair.ms_lr, pair.pan_lr, _compact(ms_w[:, m:m + hh, m:m + ww]), valid,
                               pair.lr_valid & lr_counted))
    return out


def _compact(ref: np.ndarray) -> np.ndarray:
    """A window's reference MS, kept until every window is read: a copy of its own (a view would
    keep the whole read window, margins included, alive), in uint16 when that holds every value
    exactly (integer MS: the calibration reads it back as the same float values). Up to 48
    windows are kept: 38 MB as float32 views at 4 bands, 14 MB as uint16 copies."""
    if np.all((ref >= 0) & (ref <= 65535)):  # NaN fails too: no invalid cast
        small = ref.astype(np.uint16)
        if np.array_equal(small, ref):
            return small
    return ref.copy()


class _Sample(NamedTuple):
    """What a calibration fit needs of the scene whatever the network: the degraded windows and
    each classical candidate's statistics fitted on them."""

    windows: list[_Window]
    stats: list[Any]


def intensity_bands(network_bands: Sequence[int] | None, covered: Sequence[bool] | None) -> list[int] | None:
    """The bands of the GSA candidate's intensity: those the network fuses (so that they get what a
    run of them alone gives), else those the PAN covers; None: all."""
    if network_bands is not None:
        return sorted(int(b) for b in network_bands)
    if covered is not None:
        return [b for b, c in enumerate(covered) if c] or None
    return None


def degraded_sample(inputs: RasterInputs, sensor: str | None, fb: Feedback,
                    candidates: Sequence[str] = CANDIDATES, intensity: Sequence[int] | None = None) -> _Sample:
    """The scene's degraded sample windows (:func:`sample_windows`) and the candidates' statistics
    on them (GSA's intensity from the bands ``intensity``, None: all); no windows when the scene is
    too small."""
    windows = _read_windows(inputs, mtf.gnyq_for(sensor, inputs.bands), fb)
    if not windows:
        return _Sample([], [])
    stats = [classical.fit(mth, [w.ms_lr for w in windows], [w.pan_lr for w in windows], inputs.ratio,
                           sensor=sensor, valid=[w.lr_valid for w in windows], intensity_bands=intensity)
             for mth in candidates]
    return _Sample(windows, stats)


def fit_calibration(inputs: RasterInputs, base: Any, normalizer: Normalizer, sensor: str | None,
                    fb: Feedback, network_bands: Sequence[int] | None = None,
                    candidates: Sequence[str] = CANDIDATES, name: str = "psdnet",
                    covered: Sequence[bool] | None = None, cross: bool = False,
                    sample: _Sample | None = None) -> Calibration | None:
    """Fit the calibration of ``base`` (a predictor on the run's normalised tiles) on this scene.

    Args:
        inputs: the opened inputs.
        base: the network's predictor (``TorchPredictor`` or ``engine.mixed.MixedPredictor``).
        normalizer: the run's normalisation (the network sees the degraded windows in it).
        sensor: ``core.mtf.SENSORS`` name of the MTF gains (None: defaults).
        fb: feedback.
        network_bands: 0-based bands the network itself fuses (None: all); on the others its
            detail gets no weight.
        candidates: classical methods combined with the network.
        name: the network's name in the weights table.
        covered: per band, whether the PAN covers it (None: all); an uncovered band (SWIR, thermal)
            gets no detail from any candidate: it keeps the upsampled MS.
        cross: also score the calibrated result out of sample (``core.calibration.cross_fitted``:
            the sample's pixels split in a checkerboard of :data:`CROSS_BLOCK` px squares, each
            half scored with the other half's weights), as ``metrics["cross_fitted"]``.
        sample: the degraded windows and the candidates' statistics (:func:`degraded_sample`), when
            several networks are fitted on the same scene; None: made here.

    Returns:
        The fitted :class:`Calibration`, or None when the scene is too small (logged).
    """
    r, c = inputs.ratio, inputs.bands
    if sample is None:
        sample = degraded_sample(inputs, sensor, fb, candidates, intensity_bands(network_bands, covered))
    windows, stats = sample
    if not windows:
        fb.warning(f"Calibration skipped: the scene is too small (or has no valid window) for a "
                   f"reduced-resolution sample at ratio {r}; the network runs uncalibrated.")
        return None
    names = [name, *candidates]
    allowed = np.ones((len(names), c), bool)
    if network_bands is not None:
        allowed[0] = False
        allowed[0, list(network_bands)] = True
    expected = sum(int(np.count_nonzero(w.valid)) for w in windows)

    def new_fit() -> CalibrationFit:  # each half of a cross fit keeps at most half the SAM subsample
        return CalibrationFit(names, c, r, allowed=allowed, constraint=CONSTRAINT, shared=SHARED,
                              covered=None if covered is None else np.asarray(covered, bool), expected=expected)

    fit = new_fit()
    halves = (new_fit(), new_fit()) if cross else None
    m = PSDNET_MARGIN * r
    # the consistency step is affine, so the run's step after the weights equals the same weights on
    # stepped candidates: the weights are fitted, and the candidates scored, after it
    steps = consistency_gains(sensor, c, covered)
    for w in windows:
        if fb.is_canceled():
            raise PSDNetCanceled("Cancelled by the user; nothing was written.")
        hh, ww = w.valid.shape
        core = (slice(None), slice(m, m + hh), slice(m, m + ww))
        net = base.predict(normalizer.norm_ms(w.ms_lr)[None], normalizer.norm_pan(w.pan_lr)[None])[0]
        full = [normalizer.denorm_ms(net)]
        up = upsample_bicubic(w.ms_lr, r)  # once for all the candidates
        full += [classical.apply(mth, w.ms_lr, w.pan_lr, r, st, up) for mth, st in zip(candidates, stats, strict=True)]
        full.append(up)
        if steps is not None:
            full = [project(o, w.ms_lr, r, steps) for o in full]
        *outs, lms = (o[core] for o in full)
        fit.add(w.ref, lms, outs, w.valid)
        if halves is not None:
            yy, xx = np.indices(w.valid.shape) // CROSS_BLOCK
            even = (yy + xx) % 2 == 0
            halves[0].add(w.ref, lms, outs, w.valid & even)
            halves[1].add(w.ref, lms, outs, w.valid & ~even)
    cal = fit.solve()
    if halves is not None:
        scores = cross_fitted(*halves)
        if scores is not None:
            cal = dataclasses.replace(cal, metrics={**cal.metrics, "cross_fitted": scores})
    return cal


def calibrated(inputs: RasterInputs, base: Any, normalizer: Normalizer, sample: tuple, margin: int,
               sensor: str | None, fb: Feedback, network_bands: Sequence[int] | None = None,
               name: str = "psdnet", band_names: Sequence[str] | None = None, other_method: str | None = None,
               fitted: Calibration | None = None) -> tuple[Any, dict[str, Any] | None]:
    """``base`` calibrated on the scene: (predictor, report dict); (base, None) when skipped.

    The tiles of a calibrated run need the classical methods' context margin: the predictor's
    ``margin`` (at least ``core.tiling.CLASSICAL_MARGIN``), which the caller must read the tiles
    with; the network still sees its own ``margin``.

    With ``network_bands`` (an MS with more bands than the model), ``other_method`` (the method of
    the other bands) joins the candidates, so those bands choose between it and the others. Bands
    whose names (``band_names``) say the PAN does not cover them (``core.bands.NO_PAN_DETAIL``:
    SWIR, cirrus, thermal) get no detail at all: they keep the upsampled MS (logged).

    ``fitted``: the calibration of ``base`` already fitted on this scene with the same windows,
    candidates and constraint (adaptation's whole-scene check, :func:`check_calibration`); it is
    used as it is instead of being fitted a second time.
    """
    t0 = time.perf_counter()
    candidates = list(CANDIDATES)
    if network_bands is not None and other_method and other_method not in candidates:
        candidates.append(other_method)
    covered = _covered(band_names, inputs.bands)
    if covered is not None:
        outside = [str(n) for n, c in zip(band_names or (), covered, strict=True) if not c]
        fb.info(f"{', '.join(outside)}: no PAN detail (outside the PAN's spectral range); "
                "they keep the upsampled MS.")
    if fitted is not None and fitted.candidates == (name, *candidates):
        metrics = {k: v for k, v in fitted.metrics.items() if k != "cross_fitted"}
        cal: Calibration | None = dataclasses.replace(fitted, metrics=metrics)
        fb.info("Calibration: the fit of adaptation's whole-scene check (same windows and candidates).")
    else:
        cal = fit_calibration(inputs, base, normalizer, sensor, fb, network_bands, candidates, name, covered)
    if cal is None:
        return base, None
    used = [bool(np.any(cal.weights[:, k] != 0.0)) for k in range(1, len(cal.candidates))]
    outer = max(int(margin), CLASSICAL_MARGIN) if any(used) else int(margin)
    intensity = intensity_bands(network_bands, covered) if "gsa" in candidates else None
    if intensity is not None:
        fb.info(f"GSA candidate: intensity from bands {', '.join(str(b + 1) for b in intensity)} only ("
                + ("the network's bands" if network_bands is not None else "the bands the PAN covers") + ").")
    windows = _shared_windows(normalizer, inputs, sample, outer,
                              [m for m, u in zip(candidates, used, strict=True) if u])
    preds = [ClassicalPredictor.from_inputs(mth, normalizer, inputs, sample, outer, sensor=sensor,
                                            intensity_bands=intensity, windows=windows) if u else None
             for mth, u in zip(candidates, used, strict=True)]
    seconds = time.perf_counter() - t0
    fb.info(f"Calibration on the scene degraded by the ratio (Wald, sensor MTF), {seconds:.1f} s; "
            "detail weights per band:")
    for line in cal.describe(band_names):
        fb.info(line)
    report = cal.to_dict()
    report["seconds"] = round(seconds, 3)
    report["margin"] = outer
    # 1-based bands of the GSA candidate's intensity; None: all bands (or no GSA candidate)
    report["intensity_bands"] = None if intensity is None else [b + 1 for b in intensity]
    consistency = consistency_gains(sensor, inputs.bands, covered)
    if consistency is not None:
        fb.info("Consistency: each fused tile, degraded by the ratio with the MS bands' MTF, is made to "
                "give back its MS (one back-projection step; bands with PAN detail only).")
    # the MTF gain of each band's consistency step (None: no step for that band), or None
    report["consistency"] = consistency
    return CalibratedPredictor(base, preds, cal, normalizer, inputs.ratio, outer, margin, consistency), report


def _shared_windows(normalizer: Normalizer, inputs: RasterInputs, sample: tuple, margin: int,
                    methods: Sequence[str]) -> StatsWindows | None:
    """The full-resolution statistics windows of the fitted methods among ``methods``, read once
    for all of them (``engine.classical_predictor.statistics_windows``); None when none is fitted."""
    fitted = [m for m in methods if m in classical.FITTED]
    return statistics_windows(normalizer, inputs, sample, margin, ", ".join(fitted)) if fitted else None


def _covered(band_names: Sequence[str] | None, bands: int) -> list[bool] | None:
    """Per band, whether the PAN covers it by its name (``core.bands.pan_covers``); None when
    every band is covered or the names are unknown."""
    if band_names is None or len(band_names) != bands:
        return None
    covered = [bandnames.pan_covers(str(n)) for n in band_names]
    return None if all(covered) else covered


def check_calibration(inputs: RasterInputs, normalizer: Normalizer, sample: tuple, sensor: str | None,
                      fb: Feedback, band_names: Sequence[str] | None = None, name: str = "psdnet"
                      ) -> Callable[[Any], tuple[CalibratedPredictor, dict[str, float]] | None]:
    """For adaptation's whole-scene check of a calibrated run: judge each network as calibrated.

    Returns a function that calibrates a network's predictor on this scene as the run would
    (same windows, candidates and constraint; nothing logged) and gives ``(the calibrated
    predictor, {"ERGAS_reduced", "SAM_reduced"})``: the predictor for windows read without a
    context margin, the scores those of the calibrated result on the calibration's own sample,
    **out of sample** (``cross_fitted``: in sample, a network whose detail is noise would fit as
    well as the original); None when the scene is too small to calibrate (or to split). The
    classical candidates, the degraded windows and their statistics are the same for both
    networks: made once.
    """
    covered = _covered(band_names, inputs.bands)
    intensity = intensity_bands(None, covered)
    steps = consistency_gains(sensor, inputs.bands, covered)  # the run's step: judged with it
    made: list[list[ClassicalPredictor]] = []
    samples: list[_Sample] = []

    def judge(base: Any) -> tuple[CalibratedPredictor, dict[str, float]] | None:
        if not samples:  # read, degraded and fitted once for both networks
            samples.append(degraded_sample(inputs, sensor, fb, CANDIDATES, intensity))
        cal = fit_calibration(inputs, base, normalizer, sensor, fb, None, CANDIDATES, name, covered=covered,
                              cross=True, sample=samples[0])
        if cal is None or "cross_fitted" not in cal.metrics:
            return None
        if not made:
            windows = _shared_windows(normalizer, inputs, sample, CLASSICAL_MARGIN, CANDIDATES)
            made.append([ClassicalPredictor.from_inputs(m, normalizer, inputs, sample, CLASSICAL_MARGIN, sensor=sensor,
                                                        intensity_bands=intensity, windows=windows)
                         for m in CANDIDATES])
        scores = cal.metrics["cross_fitted"]
        return (CalibratedPredictor(base, made[0], cal, normalizer, inputs.ratio, consistency=steps),
                {"ERGAS_reduced": scores["ERGAS"], "SAM_reduced": scores["SAM"]})

    return judge
