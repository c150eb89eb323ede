"""Training data: Wald reduced-resolution pairs, patch sampling and augmentation.

The pair and patch functions are numpy + torch only; the loaders at the end read the
bundled models' scenes through ``training.scenes`` (GDAL, imported when called).

Wald's protocol (PSDNET.md, METRICS.md): the real MS ``(C, h, w)`` and PAN
``(1, h r, w r)`` are low-passed with the sensor's MTF-matched filters and decimated by
``r`` (``core.mtf.degrade``), giving a network input ``ms_lr (C, h/r, w/r)``,
``pan_lr (1, h, w)`` whose target is the original MS ``gt (C, h, w)``.

Radiometry: the pair is normalised exactly as the inference engine normalises real
inputs: per-scene global "zscore4" statistics (``core.radiometry.Normalizer``) computed
from the network *inputs* (here the degraded MS and PAN), and the target is normalised
with the input-MS statistics. Because degradation is linear and zscore4 removes any
per-band affine change ``a x + b`` (a > 0), a scene multiplied by 1000 or offset by a
constant yields the same normalised pair (to float rounding): scenes of different
radiometric scales (11-bit DN, 16-bit scaled DN, reflectance 0-1) train one model.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from psdnet_qgis.core.radiometry import Normalizer
from psdnet_qgis.core.wald import degrade_pair
from psdnet_qgis.errors import PSDNetInputError
from psdnet_qgis.training.augment import SensorVariety

LOG = logging.getLogger(__name__)

@dataclass
class WaldPair:
    """A reduced-resolution training / validation pair, normalised.

    Attributes:
        name: scene name.
        ms: (C, h, w) float32 normalised degraded MS (network input).
        pan: (1, h r, w r) float32 normalised degraded PAN (network input).
        gt: (C, h r, w r) float32 original MS normalised with the input-MS statistics.
        valid: (h r, w r) bool: gt pixel, and every input pixel that bicubic upsampling
            and the MTF filters draw on for it, is valid data.
        normalizer: statistics of the inputs (denormalise outputs and gt with
            ``normalizer.denorm_ms``).
        ratio: r.
        pan_full: (1, h r^2, w r^2) float32 the original PAN normalised with the input-PAN
            statistics (what ``training.augment`` degrades afresh); None where not kept.
        base: (C, h r, w r) float32 a classical fusion of the degraded inputs, normalised like
            ``gt``, for a network on a classical base (``PSDNet(base=...)``); None otherwise.
    """

    name: str
    ms: np.ndarray
    pan: np.ndarray
    gt: np.ndarray
    valid: np.ndarray
    normalizer: Normalizer
    ratio: int
    pan_full: np.ndarray | None = None
    base: np.ndarray | None = None


def make_wald_pair(
    ms: np.ndarray,
    pan: np.ndarray,
    ratio: int,
    ms_gnyq: Sequence[float] | float,
    pan_gnyq: float,
    ms_valid: np.ndarray | None = None,
    pan_valid: np.ndarray | None = None,
    name: str = "",
    norm_method: str = "zscore4",
    base: str = "bicubic",
    sensor: str | None = None,
) -> WaldPair:
    """Build a normalised Wald reduced-resolution pair from a real scene.

    Args:
        ms: (C, h, w) real MS (any radiometric scale).
        pan: (1, h r, w r) or (h r, w r) real PAN.
        ratio: r.
        ms_gnyq: MTF gain(s) at Nyquist of the MS bands (``core.mtf.gnyq_for``).
        pan_gnyq: MTF gain of the PAN.
        ms_valid: optional (h, w) bool mask.
        pan_valid: optional (h r, w r) bool mask.
        name: scene name for messages.
        base: ``"bicubic"`` or the classical method (``core.classical``) whose fusion of the
            degraded pair, its statistics fitted on the pair's valid pixels with ``sensor``'s
            MTF, is kept as ``WaldPair.base``.

    Returns:
        ``WaldPair`` with input MS (C, h//r, w//r), PAN (1, h', w') and gt (C, h', w'),
        h' = (h // r) * r.
    """
    r = int(ratio)
    ms = np.asarray(ms, dtype=np.float32)
    pan = np.asarray(pan, dtype=np.float32)
    if pan.ndim == 2:
        pan = pan[None]
    if ms.ndim != 3 or pan.ndim != 3 or pan.shape[0] != 1:
        raise PSDNetInputError(
            f"make_wald_pair {name}: ms {ms.shape} / pan {pan.shape}; pass (C, h, w) and (1, H, W)")
    c, h, w = ms.shape
    if pan.shape[1:] != (h * r, w * r):
        raise PSDNetInputError(
            f"make_wald_pair {name}: pan {pan.shape[1:]} is not ratio {r} x ms {(h, w)}; "
            "crop PAN to exactly r times the MS grid")
    h0, w0 = h // r * r, w // r * r
    if h0 < 8 * r or w0 < 8 * r:
        raise PSDNetInputError(
            f"make_wald_pair {name}: MS {h}x{w} is too small for ratio {r}; need at least "
            f"{8 * r}x{8 * r} so the degraded input has 8x8 pixels")
    ms, pan = ms[:, :h0, :w0], pan[:, : h0 * r, : w0 * r]
    mv = np.ones((h0, w0), bool) if ms_valid is None else np.asarray(ms_valid, bool)[:h0, :w0]
    pv = (np.ones((h0 * r, w0 * r), bool) if pan_valid is None
          else np.asarray(pan_valid, bool).reshape(h * r, w * r)[: h0 * r, : w0 * r])
    mv = mv & np.isfinite(ms).all(0)
    pv = pv & np.isfinite(pan[0])

    ms_lr, pan_lr, valid, lr_valid, pan_lr_valid = degrade_pair(ms, pan, r, ms_gnyq, pan_gnyq, mv, pv)
    if not lr_valid.any() or not pan_lr_valid.any():
        raise PSDNetInputError(f"make_wald_pair {name}: no valid data left after degradation")
    norm = Normalizer.from_arrays(ms_lr, pan_lr, lr_valid, pan_lr_valid, method=norm_method)
    fused = None
    if base != "bicubic":
        from psdnet_qgis.core import classical

        stats = classical.fit(base, ms_lr, pan_lr[0], r, sensor, valid=lr_valid)
        fused = norm.norm_ms(classical.apply(base, ms_lr, pan_lr[0], r, stats))
    return WaldPair(
        name=name,
        ms=norm.norm_ms(ms_lr),
        pan=norm.norm_pan(pan_lr),
        gt=norm.norm_ms(ms),
        valid=valid,
        normalizer=norm,
        ratio=r,
        pan_full=norm.norm_pan(pan),
        base=fused,
    )


def largest_valid_window(valid: np.ndarray, ratio: int) -> tuple[int, int, int, int]:
    """Largest axis-aligned all-valid rectangle on the r-aligned grid.

    Args:
        valid: (H, W) bool mask at gt resolution, H and W multiples of ``ratio``.
        ratio: r.

    Returns:
        (row, col, height, width) in gt pixels, all multiples of ``ratio``.
    """
    r = int(ratio)
    H, W = valid.shape
    blocks = valid.reshape(H // r, r, W // r, r).all(axis=(1, 3))
    hb, wb = blocks.shape
    heights = np.zeros(wb, np.int64)
    best = (0, 0, 0, 0)
    best_area = 0
    for i in range(hb):
        heights = np.where(blocks[i], heights + 1, 0)
        stack: list[int] = []
        for j in range(wb + 1):
            cur = heights[j] if j < wb else 0
            while stack and heights[stack[-1]] >= cur:
                top = stack.pop()
                hgt = int(heights[top])
                left = stack[-1] + 1 if stack else 0
                area = hgt * (j - left)
                if area > best_area:
                    best_area = area
                    best = (i - hgt + 1, left, hgt, j - left)
            stack.append(j)
    return tuple(v * r for v in best)  # type: ignore[return-value]


def crop_pair(pair: WaldPair, window: tuple[int, int, int, int]) -> WaldPair:
    """Crop a pair to a gt-resolution window whose values are multiples of r."""
    r = pair.ratio
    y, x, hh, ww = window
    if any(v % r for v in window):
        raise PSDNetInputError(f"crop_pair: window {window} is not aligned to ratio {r}")
    return WaldPair(
        pair.name,
        pair.ms[:, y // r:(y + hh) // r, x // r:(x + ww) // r].copy(),
        pair.pan[:, y:y + hh, x:x + ww].copy(),
        pair.gt[:, y:y + hh, x:x + ww].copy(),
        pair.valid[y:y + hh, x:x + ww].copy(),
        pair.normalizer,
        r,
        None if pair.pan_full is None else pair.pan_full[:, y * r:(y + hh) * r, x * r:(x + ww) * r].copy(),
    )


class PatchSampler:
    """Seeded random patches of Wald pairs with flips and 90-degree rotations.

    A patch is ``patch`` x ``patch`` gt pixels (``patch / r`` MS pixels), placed on the
    r-aligned grid, entirely inside valid data. Scenes are drawn in proportion to their
    number of valid patch positions (their usable area) raised to ``balance``.

    Args:
        pairs: training pairs (all with the same ratio and band count).
        patch: gt patch side in pixels; multiple of r with patch / r >= 8.
        seed: seed of the sampler's generator.
        augment: random flips / 90-degree rotations (the same for ms, pan and gt; they
            keep the MS-pixel-covers-r x r-PAN-block geometry).
        balance: scenes are drawn with probability proportional to
            (valid positions) ** balance: 1 = by area, 0 = every scene equally, 0.5 (default)
            keeps one large scene (Shanghai: 4356 positions vs 66 for Rotterdam 3) from
            drowning the small ones without repeating those few patches endlessly. Pairs named
            ``group#k`` count as one scene of their summed area (the Landsat 7 set).
        variety: sensor-variety augmentation (``training.augment``); None or ``p == 0``: off,
            and the sampler draws exactly what it draws without it. On, patches are placed
            where a margin of ``variety.margin(r)`` gt px around them is valid too.
    """

    def __init__(self, pairs: Sequence[WaldPair], patch: int, seed: int = 0,
                 augment: bool = True, balance: float = 0.5, variety: SensorVariety | None = None) -> None:
        if not pairs:
            raise PSDNetInputError("PatchSampler: no training pairs")
        r = pairs[0].ratio
        if any(p.ratio != r for p in pairs) or len({p.gt.shape[0] for p in pairs}) != 1:
            raise PSDNetInputError("PatchSampler: pairs differ in ratio or band count")
        if patch % r or patch // r < 8:
            raise PSDNetInputError(
                f"PatchSampler: patch {patch} must be a multiple of ratio {r} and >= {8 * r}")
        self.pairs = list(pairs)
        self.patch = int(patch)
        self.ratio = r
        self.augment = augment
        self.variety = variety if variety is not None and variety.p > 0 else None
        self.with_base = pairs[0].base is not None
        if any((p.base is not None) != self.with_base for p in self.pairs):
            raise PSDNetInputError("PatchSampler: some pairs have a classical base and some do not")
        if self.with_base and self.variety is not None:
            raise PSDNetInputError("PatchSampler: sensor variety cannot redraw a classical base; use one or the other")
        #: the base patches of the last batch (B, C, p, p), None without bases
        self.last_base: torch.Tensor | None = None
        if self.variety is not None and any(p.pan_full is None for p in self.pairs):
            raise PSDNetInputError("PatchSampler: sensor variety needs pairs with their full-resolution PAN")
        m = self.variety.margin(r) if self.variety is not None else 0
        win = patch + 2 * m
        self.rng = np.random.default_rng(seed)
        self.positions: list[np.ndarray] = []
        for p in self.pairs:
            bad = (~p.valid).astype(np.int64)
            c = np.pad(np.cumsum(np.cumsum(bad, 0), 1), ((1, 0), (1, 0)))
            H, W = bad.shape
            ys = np.arange(0, H - win + 1, r)
            xs = np.arange(0, W - win + 1, r)
            yy, xx = np.meshgrid(ys, xs, indexing="ij")
            s = c[yy + win, xx + win] - c[yy, xx + win] - c[yy + win, xx] + c[yy, xx]
            ok = s == 0
            self.positions.append(np.stack([yy[ok] + m, xx[ok] + m], 1))
            LOG.info("%s: %d valid %d-px patch positions", p.name, int(ok.sum()), patch)
        counts = np.array([len(q) for q in self.positions], np.float64)
        if counts.sum() == 0:
            raise PSDNetInputError(
                f"PatchSampler: no fully valid {patch}-px patch in any scene; use a smaller patch")
        w = np.where(counts > 0, counts ** float(balance), 0.0)
        # Pairs named "group#k" (the Landsat 7 set) are drawn as one scene of their summed area,
        # shared among them in proportion to their own weights.
        groups = [p.name.split("#")[0] if "#" in p.name else None for p in self.pairs]
        for g in {g for g in groups if g is not None}:
            idx = [i for i, q in enumerate(groups) if q == g]
            if w[idx].sum() > 0:
                w[idx] = counts[idx].sum() ** float(balance) * w[idx] / w[idx].sum()
        self.weights = w / w.sum()

    def sample(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw a batch.

        Returns:
            ms (B, C, p/r, p/r), pan (B, 1, p, p), gt (B, C, p, p) float32 tensors.
            The per-sample MS statistics (B, C) mean and std of each patch's scene are
            left in ``self.last_stats`` (to denormalise, e.g. for a spectral-angle loss).
        """
        r, p = self.ratio, self.patch
        ms_l, pan_l, gt_l, base_l = [], [], [], []
        means, stds, names = [], [], []
        for _ in range(batch):
            k = int(self.rng.choice(len(self.pairs), p=self.weights))
            pos = self.positions[k]
            y, x = (int(v) for v in pos[int(self.rng.integers(len(pos)))])
            pr = self.pairs[k]
            names.append(pr.name)
            means.append(pr.normalizer.ms_mean)
            stds.append(pr.normalizer.ms_std)
            if self.variety is not None and self.rng.random() < self.variety.p:
                ms, pan, gt = self._redraw(pr, y, x)
            else:
                ms = pr.ms[:, y // r:(y + p) // r, x // r:(x + p) // r]
                pan = pr.pan[:, y:y + p, x:x + p]
                gt = pr.gt[:, y:y + p, x:x + p]
            bs = pr.base[:, y:y + p, x:x + p] if pr.base is not None else gt[:0]
            if self.augment:
                rot = int(self.rng.integers(4))
                flip = bool(self.rng.integers(2))
                ms, pan, gt, bs = (np.rot90(a, rot, axes=(1, 2)) for a in (ms, pan, gt, bs))
                if flip:
                    ms, pan, gt, bs = (a[:, :, ::-1] for a in (ms, pan, gt, bs))
            base_l.append(np.ascontiguousarray(bs))
            ms_l.append(np.ascontiguousarray(ms))
            pan_l.append(np.ascontiguousarray(pan))
            gt_l.append(np.ascontiguousarray(gt))
        self.last_names = names
        self.last_base = torch.from_numpy(np.stack(base_l)) if self.with_base else None
        self.last_stats = (torch.from_numpy(np.stack(means).astype(np.float32)),
                           torch.from_numpy(np.stack(stds).astype(np.float32)))
        return (torch.from_numpy(np.stack(ms_l)), torch.from_numpy(np.stack(pan_l)),
                torch.from_numpy(np.stack(gt_l)))

    def _redraw(self, pr: WaldPair, y: int, x: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The patch at (y, x) degraded afresh as another sensor would have made it."""
        assert self.variety is not None and pr.pan_full is not None
        r, p = self.ratio, self.patch
        m = self.variety.margin(r)
        gt_win = pr.gt[:, y - m:y + p + m, x - m:x + p + m]
        pan_win = pr.pan_full[:, (y - m) * r:(y + p + m) * r, (x - m) * r:(x + p + m) * r]
        return self.variety.redraw(gt_win, pan_win, r, self.rng)

    def state_dict(self) -> dict[str, Any]:
        """Generator state (for resuming)."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the generator state."""
        self.rng.bit_generator.state = state["rng"]


# ----------------------------------------------------------------------------- scenes -> pairs
def scene_gains(sensor: str | None, n_bands: int) -> tuple[tuple[float, ...], float]:
    """MTF gains for a scene's selected bands (B, G, R[, NIR] of the sensor)."""
    from psdnet_qgis.core.mtf import gnyq_for

    g = gnyq_for(sensor, 4) if n_bands == 3 else gnyq_for(sensor, n_bands)
    return tuple(g.ms[:n_bands]), float(g.pan)


def load_pairs(model: str, data_dir: str | os.PathLike | None, norm: str = "zscore4",
               train_scenes: str = "", val_scenes: str = "", base: str = "bicubic"
               ) -> tuple[list[WaldPair], list[WaldPair]]:
    """Read the model's training and validation scenes and make Wald pairs.

    ``norm`` is the ``core.radiometry`` method the pairs are normalised with;
    ``train_scenes`` / ``val_scenes`` (comma-separated ``SCENES`` names) replace the model's;
    ``base``: the classical fusion each pair keeps (:func:`make_wald_pair`).

    Returns:
        (train_pairs, val_pairs); validation pairs are cropped to their largest fully
        valid window.
    """
    from psdnet_qgis.training.scenes import load_scene, scenes_for

    out: dict[str, list[WaldPair]] = {}
    for role, names in (("train", train_scenes), ("val", val_scenes)):
        pairs = []
        for spec in scenes_for(model, role, names):
            sc = load_scene(spec, data_dir)
            ms_g, pan_g = scene_gains(spec.sensor, len(spec.bands))
            p = make_wald_pair(sc.ms, sc.pan, spec.ratio, ms_g, pan_g, sc.ms_valid,
                               sc.pan_valid, spec.name, norm_method=norm, base=base, sensor=spec.sensor)
            if role == "val":
                p = crop_pair(p, largest_valid_window(p.valid, p.ratio))
            pairs.append(p)
        out[role] = pairs
    return out["train"], out["val"]


def load_fullres_pairs(model_name: str, data_dir: str | os.PathLike | None,
                       norm: str = "zscore4") -> list[WaldPair]:
    """The training scenes at full resolution for the no-reference fine-tuning stage.

    Each is a :class:`WaldPair` whose ``ms``/``pan`` are the real inputs normalised with
    their own statistics (as the engine does) and whose ``gt`` is a zero placeholder
    (there is no reference); ``valid`` marks PAN pixels where both inputs are valid.
    """
    from psdnet_qgis.training.scenes import load_scene, scenes_for

    pairs = []
    for spec in scenes_for(model_name, "train"):
        sc = load_scene(spec, data_dir)
        r = spec.ratio
        c, h, w = sc.ms.shape
        valid = np.repeat(np.repeat(sc.ms_valid, r, 0), r, 1) & sc.pan_valid.reshape(h * r, w * r)
        n = Normalizer.from_arrays(sc.ms, sc.pan, sc.ms_valid, sc.pan_valid, method=norm)
        gt = np.broadcast_to(np.zeros((c, 1, 1), np.float32), (c, h * r, w * r))
        pairs.append(WaldPair(spec.name, n.norm_ms(sc.ms), n.norm_pan(sc.pan), gt, valid, n, r))
    return pairs


def fullres_val_inputs(model_name: str, data_dir: str | os.PathLike | None,
                       norm: str = "zscore4") -> list[dict[str, Any]]:
    """The validation scene(s) at full resolution: the largest fully valid window of the
    real inputs, normalised with statistics of those inputs (as the engine does).

    Returns:
        One dict per scene: ``spec``, real ``ms`` (C, h, w) and ``pan`` (1, H, W), the
        normalised ``pair`` (zero ``gt``) and the ``window`` [row, col, height, width] in MS px.
    """
    from psdnet_qgis.training.scenes import load_scene, scenes_for

    out = []
    for spec in scenes_for(model_name, "val"):
        sc = load_scene(spec, data_dir)
        r = spec.ratio
        h, w = sc.ms.shape[1:]
        v = sc.ms_valid & sc.pan_valid.reshape(h, r, w, r).all(axis=(1, 3))
        y, x, hh, ww = largest_valid_window(v, 1)
        ms = sc.ms[:, y:y + hh, x:x + ww]
        pan = sc.pan[:, y * r:(y + hh) * r, x * r:(x + ww) * r]
        n = Normalizer.from_arrays(ms, pan, method=norm)
        pair = WaldPair(spec.name, n.norm_ms(ms), n.norm_pan(pan), np.zeros((ms.shape[0],) + pan.shape[1:],
                        np.float32), np.ones(pan.shape[1:], bool), n, r)
        out.append({"spec": spec, "ms": ms, "pan": pan, "pair": pair, "window": [y, x, hh, ww]})
    return out
