"""Metric statistics of evaluated windows, pooled over windows before the metrics are formed.

Per-window statistics are combined *before* the non-linear parts of the metrics are
taken: D_lambda and D_s are absolute differences of Q averages, ERGAS a square root of
pooled errors (``core.metrics.pooled_mean``, then the same ``core.metrics`` formulas as on
a whole image). Averaging per-block D_lambda values instead would add up the blocks'
random deviations (mean |x| >= |mean x|): on Landsat 8 Pamplona that gives 0.031 from
sixteen 256 px blocks against 0.010 for the whole image.

The sliding-window Q terms are evaluated over the windows whose top-left corner lies in
the block ("owned" windows), read from a block extended by 31 px at the bottom and right
on each grid. A tiling of blocks therefore owns every window of the image exactly once,
so the sample mean of Q is unbiased; without the extension the windows straddling block
borders (60 % of the MS-scale windows for 64 MS px blocks) would be lost, and the sample
estimate drifts by 0.02-0.03 in D_lambda / D_s on the test scenes.
With one window (whole mode) the results equal core.metrics' bundles.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from psdnet_qgis.core import metrics, mtf
from psdnet_qgis.engine.assess.ongrid import Window

#: Block size of the Q-type metrics (px of the grid they are computed on).
Q_BLOCK = metrics.BLOCK

REDUCED_KEYS = ("Q2n", "Q", "SAM", "ERGAS", "SCC")
FULL_KEYS = ("D_lambda", "D_s", "QNR", "D_lambda_K", "HQNR")
METRIC_KEYS = REDUCED_KEYS + FULL_KEYS

#: Statistics of one window: key -> (mean value, number of samples it averages).
WindowStats = dict[str, tuple[Any, int]]


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


def window_stats(win: Window, ratio: int, sensor: str | None, dn_scale: float,
                 notes: set[str]) -> WindowStats:
    """Statistics of one fully valid window: key -> (mean value, number of samples it averages).

    Values are scalars or per-band / per-pair arrays; the sample counts (pixels, sliding
    windows or Q2n blocks) weight them when windows are combined (:func:`combine`).

    Args:
        win: the window (its ``core`` is what it owns).
        ratio: PAN/MS ratio.
        sensor: sensor name for the MTF gains (None = unknown).
        dn_scale: factor to integer digital numbers for Q2n.
        notes: receives a note when the window is too small for the full-resolution metrics.
    """
    ch, cw = win.core
    mh, mw = ch // ratio, cw // ratio
    f_ext = win.fused.astype(np.float64)
    f = f_ext[:, :ch, :cw]
    c = f.shape[0]
    npx = ch * cw
    out: WindowStats = {}
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


def combine(per_window: Sequence[tuple[int, WindowStats]], ratio: int) -> dict[str, float | None]:
    """Sample-count-weighted means of the window statistics, then the metrics (None when absent).

    Args:
        per_window: (pixels, :func:`window_stats`) of every evaluated window.
        ratio: PAN/MS ratio (ERGAS).

    Returns:
        key -> value for every key of :data:`METRIC_KEYS`; undefined values (e.g. ERGAS of a
        reference band with zero mean) are None.
    """
    def mean(key: str) -> Any:
        return metrics.pooled_mean([st[key] for _, st in per_window if key in st])

    out: dict[str, float | None] = {k: None for k in METRIC_KEYS}
    for key in ("Q2n", "Q", "SAM", "SCC"):
        v = mean(key)
        out[key] = None if v is None else float(v)
    mse, mu = mean("mse"), mean("mu")
    if mse is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            out["ERGAS"] = metrics.ergas_from_errors(mse, mu, ratio)
    qf, qm = mean("q_f_pairs"), mean("q_ms_pairs")
    if qf is not None:
        d_lambda = metrics.distortion(qf, qm)
        d_s = metrics.distortion(mean("q_f_pan"), mean("q_ms_panlow"))
        d_k = 1.0 - float(mean("q2n_khan"))
        out.update({"D_lambda": d_lambda, "D_s": d_s, "QNR": metrics.qnr_from_distortions(d_lambda, d_s),
                    "D_lambda_K": d_k, "HQNR": metrics.qnr_from_distortions(d_k, d_s)})
    return {k: (v if v is None or np.isfinite(v) else None) for k, v in out.items()}
