"""Sensor-variety augmentation: Wald patches as other sensors would have made them.

A model trained on five scenes learns their sensors' blur, their PAN's spectral response and
their radiometry as well as pansharpening. This augmentation redraws, per training patch,
what differs between sensors (``PatchSampler(..., variety=SensorVariety(...))``):

* **MTF**: the patch is degraded afresh from the scene's full-resolution MS and PAN with
  gains at Nyquist drawn per MS band (and one for the PAN) uniformly within the range of the
  published sensors of the same kind (``core.mtf.SENSORS``: the VHR sensors for a ratio of
  4, Landsat 8/9 OLI for the others), instead of the scene's own sensor's gains;
* **PAN spectral response**: the degraded PAN is mixed with a random positive combination of
  the MS bands (Dirichlet weights, matched to the PAN patch's mean and spread), so that the
  PAN-to-bands relation varies as it does between a 450-800 nm and a 500-680 nm PAN;
* **radiometry**: a gain and offset per MS band (the same on the input MS and the target,
  which stay consistent) and one for the PAN, in normalised units, as scene statistics
  that do not quite fit a patch would give.

All of it works on the pair's normalised arrays: degradation is linear with unit DC gain, so
degrading the normalised full-resolution image equals normalising the degraded one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from psdnet_qgis.core.mtf import SENSORS, degrade

#: The Landsat entry of ``core.mtf.SENSORS``; every other entry is a VHR sensor.
_LANDSAT = "Landsat 8/9 OLI"
#: Margin (MS px at full resolution = gt px) around a patch degraded afresh: the 41-tap MTF
#: filter reaches 20 px on each side.
MARGIN_GT_PX = 20


def gain_ranges(ratio: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """(MS, PAN) ranges of the gains at Nyquist of the published sensors of this kind."""
    names = [n for n in SENSORS if (n != _LANDSAT) == (ratio >= 4)]
    ms = [g for n in names for g in SENSORS[n].ms]
    pan = [SENSORS[n].pan for n in names]
    return (min(ms), max(ms)), (min(pan), max(pan))


def degrade_window(gt_win: np.ndarray, pan_win: np.ndarray, g_ms: tuple[float, ...], g_pan: float,
                   ratio: int, margin: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wald patch (ms, pan, gt) of windows with ``margin`` gt px on each side, degraded with
    these gains; the margin (a multiple of the ratio) keeps ``make_wald_pair``'s phase."""
    r, m = ratio, margin
    p = gt_win.shape[1] - 2 * m
    ms = degrade(gt_win, g_ms, r)[:, m // r:(m + p) // r, m // r:(m + p) // r]
    pan = degrade(pan_win, g_pan, r)[:, m:m + p, m:m + p]
    return ms, pan, np.array(gt_win[:, m:m + p, m:m + p], dtype=np.float32)


@dataclass(frozen=True)
class SensorVariety:
    """How often and how strongly a patch is redrawn (see the module docstring).

    Attributes:
        p: probability that a patch is redrawn (0 = never: the sampler draws no extra numbers).
        pan_mix: largest share of the synthetic PAN in the mixed PAN (drawn uniformly in
            [0, pan_mix] for half of the redrawn patches).
        gain: largest relative gain change per band (drawn in [1 - gain, 1 + gain]).
        offset: largest offset per band in normalised units (the normalised std is 0.25).
    """

    p: float = 0.5
    pan_mix: float = 0.5
    gain: float = 0.1
    offset: float = 0.05

    def margin(self, ratio: int) -> int:
        """The margin in gt px, a multiple of the ratio so the decimation phase is kept."""
        return -(-MARGIN_GT_PX // ratio) * ratio

    def redraw(self, gt_win: np.ndarray, pan_win: np.ndarray, ratio: int, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One redrawn patch from normalised full-resolution windows with margins.

        Args:
            gt_win: (C, p + 2M, p + 2M) normalised MS at full resolution (the target's grid).
            pan_win: (1, (p + 2M) r, (p + 2M) r) normalised PAN at full resolution.
            ratio: r.
            rng: the sampler's generator.

        Returns:
            ms (C, p/r, p/r), pan (1, p, p), gt (C, p, p) float32, like a Wald patch.
        """
        r, m = ratio, self.margin(ratio)
        c = gt_win.shape[0]
        (ms_lo, ms_hi), (pan_lo, pan_hi) = gain_ranges(r)
        g_ms = tuple(float(g) for g in rng.uniform(ms_lo, ms_hi, c))
        g_pan = float(rng.uniform(pan_lo, pan_hi))
        ms, pan, gt = degrade_window(gt_win, pan_win, g_ms, g_pan, r, m)
        if self.pan_mix > 0 and rng.random() < 0.5:
            pan = self._mix_pan(pan, gt, rng)
        if self.gain > 0 or self.offset > 0:
            a = rng.uniform(1 - self.gain, 1 + self.gain, (c, 1, 1)).astype(np.float32)
            b = rng.uniform(-self.offset, self.offset, (c, 1, 1)).astype(np.float32)
            ms = 0.5 + a * (ms - 0.5) + b
            gt = 0.5 + a * (gt - 0.5) + b
            ap = np.float32(rng.uniform(1 - self.gain, 1 + self.gain))
            bp = np.float32(rng.uniform(-self.offset, self.offset))
            pan = 0.5 + ap * (pan - 0.5) + bp
        return ms.astype(np.float32, copy=False), pan.astype(np.float32, copy=False), gt.astype(np.float32, copy=False)

    def _mix_pan(self, pan: np.ndarray, gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """PAN mixed with a random positive band combination of the same mean and spread."""
        w = rng.dirichlet(np.ones(gt.shape[0])).astype(np.float32)
        synth = np.tensordot(w, gt, axes=1)[None]
        s_std = float(synth.std())
        if s_std < 1e-6:
            return pan
        synth = (synth - synth.mean()) * (float(pan.std()) / s_std) + float(pan.mean())
        alpha = np.float32(rng.uniform(0.0, self.pan_mix))
        return (1 - alpha) * pan + alpha * synth
