"""Per-scene calibration of the fused detail (pure numpy).

The network's weights are fixed when it meets a user's scene; the classical methods that beat
it on unseen sensors (GSA, BDSD-PC, MTF-GLP-FS) fit their coefficients on the scene itself.
This module gives the network the same: on the user's own scene degraded by the ratio (Wald
protocol: the MS and the PAN low-passed with the sensor's MTF and decimated, the original MS as
the reference), each *candidate* (the network, and classical methods) adds a detail
``D_k,b = cand_k,b - lms_b`` to the bicubic-upsampled MS; per band, the non-negative weights

    out_b = lms_b + sum_k w_bk D_k,b,    w_bk >= 0,

that bring the degraded scene's fused result closest to the real MS (least squares over all
the sampled pixels) are found in closed form (``classical.base.nnls_gram``: every active set of
the few unknowns, exact). The engine then applies the same weights at full scale in every
tile (``engine.calibration``), so a tiled run and a whole-image run see the same coefficients.

Constraints (physical): a weight is never negative (no candidate's detail is inverted), and it
is 0 where candidate k has no output of its own for band b (``allowed``: the network on the MS
bands it does not know) and for every candidate where the PAN does not cover band b
(``covered``: such a band keeps the upsampled MS).

Weights are invariant to a per-band affine change of units applied to all candidates and the
reference alike, so the engine may fit in its normalised units; the metrics are reported in the
units the arrays are given in (ERGAS needs the true band means).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import PSDNetInputError
from .classical.base import nnls_gram
from .metrics import ergas_from_errors, sam

#: How the weights of one band are constrained: "simplex" (non-negative, summing to 1: the
#: fused band is a convex combination of the candidates' outputs, never more detail than the
#: strongest of them) or "nonneg" (free non-negative gains).
CONSTRAINTS = ("simplex", "nonneg")

#: Default prior strength in pixels (0: none). A prior pulls the fit toward the uncalibrated
#: result as if that many pixels had confirmed it; ``scripts/calibration_study.py`` measured
#: 1024 and 4096 against none on ten real scenes: a prior keeps the network where it is weak
#: on an unseen sensor (Pleiades: ERGAS 0.41 without, 0.69 / 0.75 with), so none is the default.
PRIOR_PIXELS = 0
#: Pixels kept per candidate (a regular subsample) for the spectral angle of the report.
SAM_PIXELS = 200_000


@dataclass(frozen=True)
class Calibration:
    """Fitted per-band weights of the candidates' detail and what they did at reduced resolution.

    Attributes:
        candidates: the candidates' names, in the order of ``weights``' columns.
        weights: (C, K) float64, ``w_bk >= 0``.
        metrics: reduced-resolution ``{"ERGAS": .., "SAM": ..}`` of each candidate alone (as it
            comes) and of the calibrated result (key ``"calibrated"``), on the fitted pixels.
        pixels: number of reduced-resolution pixels the weights were fitted on.
    """

    candidates: tuple[str, ...]
    weights: np.ndarray
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    pixels: int = 0

    @property
    def bands(self) -> int:
        return int(np.shape(self.weights)[0])

    def combine(self, lms: np.ndarray, outputs: Sequence[np.ndarray]) -> np.ndarray:
        """The calibrated image from the upsampled MS and each candidate's output.

        Args:
            lms: (C, H, W) bicubic-upsampled MS.
            outputs: K arrays (C, H, W), the candidates' fused images (same units as ``lms``).

        Returns:
            (C, H, W) float32 ``lms + sum_k w_k (outputs_k - lms)``.
        """
        if len(outputs) != len(self.candidates):
            raise PSDNetInputError(f"Calibration.combine: got {len(outputs)} candidate outputs for "
                                   f"{len(self.candidates)} candidates ({', '.join(self.candidates)}).")
        lms = np.asarray(lms, dtype=np.float32)
        out = lms.copy()
        w = self.weights.astype(np.float32)
        for k, cand in enumerate(outputs):
            for b in range(lms.shape[0]):
                if w[b, k] != 0.0:
                    out[b] += w[b, k] * (np.asarray(cand[b], dtype=np.float32) - lms[b])
        return out

    def to_dict(self) -> dict:
        """Plain values for the run report and the log."""
        return {
            "candidates": list(self.candidates),
            "weights": [[round(float(v), 4) for v in row] for row in self.weights],
            "reduced_resolution": {k: {m: round(float(v), 4) for m, v in d.items()}
                                   for k, d in self.metrics.items()},
            "pixels": int(self.pixels),
        }

    def describe(self, band_names: Sequence[str] | None = None) -> list[str]:
        """Log lines: the weights per band, then the reduced-resolution metrics."""
        names = list(band_names or [f"band {b + 1}" for b in range(self.bands)])
        lines = []
        for b in range(self.bands):
            parts = [f"{c} {self.weights[b, k]:.3f}" for k, c in enumerate(self.candidates)
                     if self.weights[b, k] != 0.0]
            lines.append(f"  {names[b]}: " + (", ".join(parts) if parts else "no detail (upsampled MS)"))
        scores = "; ".join(f"{k} ERGAS {d['ERGAS']:.3f} SAM {d['SAM']:.3f}" for k, d in self.metrics.items())
        lines.append(f"  reduced resolution ({self.pixels} px): {scores}")
        return lines


def simplex_gram(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """argmin_x x'Gx - 2 b'x subject to x >= 0 and sum(x) = 1, exact (``nnls_gram``)."""
    return nnls_gram(gram, rhs, sum_to_one=True)


class CalibrationFit:
    """Accumulates the normal equations of the calibration over windows, then solves them.

    Args:
        candidates: the K candidates' names.
        bands: C.
        ratio: PAN/MS ratio of the run (the ERGAS scale factor).
        allowed: (K, C) bool, candidate k may take a weight on band b (default: all).
        covered: (C,) bool, the PAN covers band b (default: all); uncovered bands get no detail.
        constraint: one of :data:`CONSTRAINTS`.
        prior: (C, K) weights of the uncalibrated result (default: candidate 0 alone, else the
            allowed candidates equally); the fit is shrunk toward it (:data:`PRIOR_PIXELS`).
        prior_pixels: the prior's strength in pixels (0: none).
        shared: one weight vector for all the bands that may take the same candidates (fitted on
            ERGAS's own objective, each band's squared error over its squared mean) instead of
            one per band: the fused detail is then the same mix in every band, which keeps the
            candidates' spectral angle (per-band weights rotate it).
        expected: the number of pixels :meth:`add` will be given in all (None: unknown). With it,
            every window keeps the same regular subsample for the report's SAM, at most
            :data:`SAM_PIXELS` in all (plus one per window); without it, each window's stride
            follows the pixels kept so far, and the kept set grows with the square root of the
            window count (722 000 pixels, 58 MB, for 48 windows of 192 x 192).
    """

    def __init__(self, candidates: Sequence[str], bands: int, ratio: int,
                 allowed: np.ndarray | None = None, covered: np.ndarray | None = None,
                 constraint: str = "simplex", prior: np.ndarray | None = None,
                 prior_pixels: float = PRIOR_PIXELS, expected: int | None = None, shared: bool = False) -> None:
        if constraint not in CONSTRAINTS:
            raise PSDNetInputError(f"CalibrationFit: constraint {constraint!r}; use one of {CONSTRAINTS}.")
        self.constraint = constraint
        self.shared = bool(shared)
        self.candidates = tuple(candidates)
        k = len(self.candidates)
        if k == 0:
            raise PSDNetInputError("CalibrationFit: no candidate to calibrate.")
        self.bands, self.ratio = int(bands), int(ratio)
        self.allowed = np.ones((k, bands), bool) if allowed is None else np.asarray(allowed, bool)
        self.covered = np.ones(bands, bool) if covered is None else np.asarray(covered, bool)
        if self.allowed.shape != (k, bands) or self.covered.shape != (bands,):
            raise PSDNetInputError(f"CalibrationFit: allowed must be ({k}, {bands}) and covered ({bands},).")
        if prior is None:
            prior = np.zeros((bands, k))
            for b in range(bands):
                own = self.allowed[:, b]
                if own[0]:
                    prior[b, 0] = 1.0
                elif own.any():
                    prior[b, own] = 1.0 / own.sum()
        self.prior = np.asarray(prior, np.float64)
        self.prior_pixels = float(prior_pixels)
        self.gram = np.zeros((bands, k, k))
        self.rhs = np.zeros((bands, k))
        self.tt = np.zeros(bands)
        self.ref_sum = np.zeros(bands)
        self.n = 0
        self._keep: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (ref, lms, outs) subsamples
        self._kept = 0
        self._step = max(1, -(-int(expected) // SAM_PIXELS)) if expected else 0  # 0: per window

    def add(self, ref: np.ndarray, lms: np.ndarray, outputs: Sequence[np.ndarray],
            valid: np.ndarray | None = None) -> None:
        """Add one window.

        Args:
            ref: (C, h, w) reference MS (the real MS of the degraded scene).
            lms: (C, h, w) the degraded MS upsampled back to ``ref``'s grid.
            outputs: K arrays (C, h, w), each candidate's fused image of the degraded scene.
            valid: (h, w) bool pixels to count (default all).
        """
        c = self.bands
        sel = (slice(None), np.ones(ref.shape[1:], bool) if valid is None else np.asarray(valid, bool))
        r = np.asarray(ref, np.float64)[sel].reshape(c, -1)
        lo = np.asarray(lms, np.float64)[sel].reshape(c, -1)
        d = np.stack([np.asarray(o, np.float64)[sel].reshape(c, -1) - lo for o in outputs])  # (K, C, N)
        t = r - lo
        n = t.shape[1]
        if n == 0:
            return
        self.gram += np.einsum("kcn,lcn->ckl", d, d)
        self.rhs += np.einsum("kcn,cn->ck", d, t)
        self.tt += np.einsum("cn,cn->c", t, t)
        self.ref_sum += r.sum(axis=1)
        self.n += n
        step = self._step or max(1, int(np.ceil((self._kept + n) / SAM_PIXELS)))
        idx = slice(None, None, step)
        self._keep.append((r[:, idx].astype(np.float32), lo[:, idx].astype(np.float32),
                           d[:, :, idx].astype(np.float32)))
        self._kept += self._keep[-1][0].shape[1]

    def _mse(self, w: np.ndarray) -> np.ndarray:
        """(C,) mean squared error of ``lms + sum_k w_bk D_k`` against the reference, exact."""
        quad = np.einsum("ck,ckl,cl->c", w, self.gram, w)
        return (self.tt - 2.0 * np.einsum("ck,ck->c", w, self.rhs) + quad) / max(self.n, 1)

    def _kept_fused(self, w: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The SAM subsample: its references and the result fused with weights ``w``, per window."""
        w32 = w.astype(np.float32)
        return [k[0] for k in self._keep], [k[1] + np.einsum("ck,kcn->cn", w32, k[2]) for k in self._keep]

    def _sam(self, w: np.ndarray) -> float:
        return _sam_of(*self._kept_fused(w))

    def solve(self) -> Calibration:
        """The non-negative least-squares weights per band and the reduced-resolution metrics."""
        if self.n == 0:
            raise PSDNetInputError("Calibration: no valid pixel in the reduced-resolution sample; "
                                   "check the nodata values or switch calibration off.")
        c, k = self.bands, len(self.candidates)
        w = np.zeros((c, k))
        ref_mean = self.ref_sum / self.n
        solve = simplex_gram if self.constraint == "simplex" else nnls_gram
        for bands in self._groups():
            group = np.asarray(bands)
            free = np.flatnonzero(self.allowed[:, group[0]])
            # shared: sum over the group of each band's error over its squared mean (ERGAS's terms)
            scale = 1.0 / np.maximum(ref_mean[group] ** 2, 1e-12) if self.shared else np.ones(len(group))
            gram = np.einsum("b,bkl->kl", scale, self.gram[group][:, free][:, :, free])
            rhs = np.einsum("b,bk->k", scale, self.rhs[group][:, free])
            prior = np.einsum("b,bk->k", scale, self.prior[group][:, free]) / scale.sum()
            # shrinkage: + kappa |w - prior|^2, kappa = prior pixels x the mean detail energy per pixel
            kappa = self.prior_pixels * float(np.trace(gram)) / (free.size * self.n)
            w[np.ix_(group, free)] = solve(gram + kappa * np.eye(free.size), rhs + kappa * prior)
        metrics: dict[str, dict[str, float]] = {}
        for j, name in enumerate(self.candidates):
            one = np.zeros((c, k))
            one[:, j] = 1.0
            metrics[name] = self._scores(one, ref_mean)
        metrics["calibrated"] = self._scores(w, ref_mean)
        return Calibration(self.candidates, w, metrics, self.n)

    def _groups(self) -> list[list[int]]:
        """The bands fitted together: each covered band with a candidate alone, or (``shared``)
        the covered bands that may take the same candidates."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for b in range(self.bands):
            free = tuple(np.flatnonzero(self.allowed[:, b])) if self.covered[b] else ()
            if free:
                groups.setdefault(free if self.shared else (b, *free), []).append(b)
        return list(groups.values())

    def _scores(self, w: np.ndarray, ref_mean: np.ndarray) -> dict[str, float]:
        mse = np.maximum(self._mse(w), 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            erg = ergas_from_errors(mse, ref_mean, self.ratio)
        return {"ERGAS": erg, "SAM": self._sam(w)}


def cross_fitted(a: CalibrationFit, b: CalibrationFit) -> dict[str, float] | None:
    """Reduced-resolution ERGAS and SAM of the calibrated result scored out of sample.

    Two-fold cross-fitting: the pixels of ``a`` are scored with the weights fitted on ``b`` and
    the other way round, so no pixel is scored with weights fitted on it. In sample, a larger or
    noisier candidate set always fits its own pixels at least as well (weight 0 is allowed), so
    only this score can tell two networks' calibrated results apart.

    Args:
        a, b: fits of the same candidates on disjoint pixels.

    Returns:
        ``{"ERGAS": .., "SAM": ..}`` pooled over both halves; None when a half has no pixel.
    """
    if a.n == 0 or b.n == 0:
        return None
    wa, wb = a.solve().weights, b.solve().weights
    n = a.n + b.n
    mse = np.maximum((a._mse(wb) * a.n + b._mse(wa) * b.n) / n, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        erg = ergas_from_errors(mse, (a.ref_sum + b.ref_sum) / n, a.ratio)
    (refs_a, fused_a), (refs_b, fused_b) = a._kept_fused(wb), b._kept_fused(wa)
    return {"ERGAS": erg, "SAM": _sam_of(refs_a + refs_b, fused_a + fused_b)}


def _sam_of(refs: list[np.ndarray], fused: list[np.ndarray]) -> float:
    """SAM of (C, n) pixel columns pooled over windows."""
    return sam(np.concatenate(fused, axis=1)[:, None, :], np.concatenate(refs, axis=1)[:, None, :])
