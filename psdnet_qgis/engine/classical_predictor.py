"""Classical pansharpening methods as a predictor of the tiled engine (numpy).

:class:`ClassicalPredictor` takes and returns normalised tiles like
``model.predictor.TorchPredictor`` so the ``core.classical`` methods run through exactly the
same tiling, padding, blending and writing as the network. The sensor of its MTF gains is
chosen in :mod:`engine.sensor`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from psdnet_qgis.core import classical
from psdnet_qgis.core.tiling import CLASSICAL_MARGIN
from psdnet_qgis.engine.raster import RasterInputs
from psdnet_qgis.errors import PSDNetInputError

logger = logging.getLogger("psdnet_qgis.engine")

#: Classical statistics windows (when the global sample is decimated): up to this many a side...
FIT_WINDOWS = 8
#: ...of this many MS px each (plus :data:`CLASSICAL_MARGIN` of context on every side).
FIT_WINDOW = 32


class ClassicalPredictor:
    """Predictor-like adapter around a ``core.classical`` method.

    Takes and returns normalised arrays like ``TorchPredictor.predict``. Methods with image
    statistics (gsa, mtf_glp_hpm) get them once per raster (:meth:`from_inputs`, ``stats``)
    and only apply them per tile: per-tile statistics would make neighbouring tiles disagree
    by up to several band std (seams).
    """

    def __init__(self, method: str, normalizer: Any, ratio: int, stats: Any = None,
                 sensor: str | None = None) -> None:
        self.method = method
        self.fn: Callable[..., np.ndarray] = getattr(classical, method)
        self.normalizer = normalizer
        self.ratio = ratio
        #: Global coefficients (``classical.fit``); None for exp/brovey, or per tile (seams).
        self.stats = stats
        #: ``core.mtf.SENSORS`` name of the MTF gains the statistics were fitted with (None: defaults).
        self.sensor = sensor
        self.device_report = "cpu (numpy)"
        self.batch_size = 1

    @classmethod
    def from_inputs(cls, method: str, normalizer: Any, inputs: RasterInputs,
                    sample: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                    margin: int = CLASSICAL_MARGIN, sensor: str | None = None,
                    intensity_bands: Sequence[int] | None = None,
                    windows: StatsWindows | None = None) -> ClassicalPredictor:
        """Fit the method's global statistics once for the raster, then return the predictor.

        The statistics come from :func:`statistics_windows` (the whole raster when the global
        sample holds it at full resolution, else a grid of full-resolution windows); several
        methods fitted on one raster may share one read (``windows``).

        Args:
            method: classical method name.
            normalizer: the raster's global Normalizer (fills nodata like the tiles do).
            inputs: opened inputs.
            sample: ``inputs.read_sample()`` result (ms, pan, ms_valid, pan_valid).
            margin: context margin of the windows in MS px.
            sensor: ``core.mtf.SENSORS`` name for the MTF gains (None = documented defaults),
                see :func:`engine.sensor.resolve_sensor`.
            intensity_bands: GSA's intensity from these 0-based bands only (``core.classical.fit``).
            windows: :func:`statistics_windows` of this raster, sample and margin, already read.
        """
        r = inputs.ratio
        if method not in classical.FITTED:
            return cls(method, normalizer, r, sensor=sensor)
        if windows is None:
            windows = statistics_windows(normalizer, inputs, sample, margin, method)
        ms_l, pan_l, val_l, where = windows
        stats = classical.fit(method, ms_l, pan_l, r, sensor=sensor, valid=val_l, intensity_bands=intensity_bands)
        assert stats is not None  # a method of classical.FITTED has statistics
        logger.info("%s statistics from %s: %s", method, where, stats.to_dict())
        return cls(method, normalizer, r, stats=stats, sensor=sensor)

    def predict(self, ms: np.ndarray, pan: np.ndarray) -> np.ndarray:
        """(B, C, h, w), (B, 1, H, W) normalised -> (B, C, H, W) normalised float32."""
        out = []
        for b in range(ms.shape[0]):
            fused = self.fuse(self.normalizer.denorm_ms(ms[b]), self.normalizer.denorm_pan(pan[b]))
            out.append(self.normalizer.norm_ms(fused))
        return np.stack(out)

    def fuse(self, ms: np.ndarray, pan: np.ndarray, up: np.ndarray | None = None) -> np.ndarray:
        """One tile in radiometric units: (C, h, w), (1, H, W) -> (C, H, W) float32. ``up``: the
        tile's bicubic-upsampled MS when the caller has it (``core.classical.apply``)."""
        if self.stats is None:
            return np.asarray(self.fn(ms, pan, self.ratio), dtype=np.float32)
        return np.asarray(classical.apply(self.method, ms, pan, self.ratio, self.stats, up), dtype=np.float32)


#: What :func:`statistics_windows` returns: MS windows, PAN windows, counted-pixel masks and where
#: they come from (for the log).
StatsWindows = tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], str]


def statistics_windows(normalizer: Any, inputs: RasterInputs,
                       sample: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                       margin: int = CLASSICAL_MARGIN, method: str = "the classical method") -> StatsWindows:
    """The full-resolution pixels the fitted classical methods' statistics come from.

    The global sample (``inputs.read_sample()``, read once for the Normalizer) is used as is
    when it holds the whole raster at full resolution (then the result equals the one-call
    method on the whole image). Otherwise it is decimated by nearest neighbour: its PAN keeps
    all its (aliased) high frequencies and is not co-registered pixel for pixel with the MS, so
    it cannot give GSA's MTF-degraded-PAN regression nor HPM's low-pass PAN std. Those
    statistics then come from a grid of at most ``FIT_WINDOWS x FIT_WINDOWS`` full-resolution
    windows of ``FIT_WINDOW`` MS px (with a context margin of ``margin`` MS px that is filtered
    but not counted), read here: a few percent of the raster, not a second pass over it. Nodata
    is filled with the normaliser's means. ``method`` names the method(s) in the error raised
    when no window has a valid pixel.
    """
    r = inputs.ratio
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

    if (s_ms.shape[1:] == (inputs.ms_height, inputs.ms_width)
            and s_pan.shape[1:] == (inputs.height, inputs.width)):
        a, b, v = prepared(s_ms, s_mv, s_pan, s_pv, np.ones_like(s_mv))
        return [a], [b], [v], "the whole raster"
    ms_l: list[np.ndarray] = []
    pan_l: list[np.ndarray] = []
    val_l: list[np.ndarray] = []
    m = int(margin)
    for r0 in _window_starts(inputs.ms_height):
        for c0 in _window_starts(inputs.ms_width):
            hh, ww = min(FIT_WINDOW, inputs.ms_height), min(FIT_WINDOW, inputs.ms_width)
            ms_w, ms_v, pan_w, pan_v = inputs.read_tile(r0, c0, hh, ww, m)
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
    return ms_l, pan_l, val_l, f"{len(ms_l)} full-resolution windows of {FIT_WINDOW} MS px"


def _window_starts(size: int) -> list[int]:
    """Origins of up to FIT_WINDOWS evenly spread windows of FIT_WINDOW px along one axis."""
    win = min(FIT_WINDOW, size)
    n = max(1, min(FIT_WINDOWS, size // win))
    return sorted({min(max(int(round((k + 0.5) * size / n - win / 2)), 0), size - win) for k in range(n)})
