"""Classical pansharpening methods, the peers the network is measured against (pure numpy).

Every method takes ``ms`` (C, h, w) and ``pan`` (H, W) or (1, H, W) on the same radiometric
scale they were read in, with ``H = h * ratio``, and returns (C, H, W) float32. They share the
call form ``method(ms, pan, ratio)`` so the engine can run any of them in place of the
network (``exp`` ignores ``pan``).

* ``exp`` (here): bicubic upsampling (:func:`psdnet_qgis.core.resample.upsample_bicubic`),
  the baseline with no PAN detail.
* component substitution (:mod:`.cs`): ``brovey`` (GDAL's weighted Brovey, what
  QGIS's built-in Pansharpening runs), ``gsa`` (Gram-Schmidt adaptive, Aiazzi et al. 2007)
  and ``bdsd_pc`` (band-dependent spatial detail with physical constraints, Vivone 2019).
* multiresolution analysis (:mod:`.mra`): ``mtf_glp_hpm`` (MTF-matched generalised
  Laplacian pyramid with high-pass modulation) and ``mtf_glp_fs`` (the same pyramid with
  additive detail and gains regressed at full scale, Vivone et al. 2018).

All of them follow the definitions of Vivone et al.'s benchmark ("A new benchmarking
framework for pansharpening", IEEE GRSM 2021); ``tests/core/reference_pansharpening.py``
holds independent whole-image implementations they are pinned against.

gsa, mtf_glp_hpm, mtf_glp_fs and bdsd_pc depend on image statistics. For tiled runs they are
split into ``*_stats`` (fitted once per raster) and ``*_apply`` (local given the stats, so
tiles agree to float rounding); :mod:`.base` describes these call forms once and
holds the input checks they share. :func:`fit` / :func:`apply` dispatch by method name
(``fit`` returns None for the stateless exp and brovey). This module re-exports every method,
so ``classical.<name>`` reaches all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ...errors import PSDNetInputError
from ..resample import upsample_bicubic
from .base import Windows, check_inputs
from .cs import (
    BDSDStats,
    GSAStats,
    bdsd_pc,
    bdsd_pc_apply,
    bdsd_pc_stats,
    brovey,
    gsa,
    gsa_apply,
    gsa_stats,
)
from .mra import (
    FSStats,
    HPMStats,
    mtf_glp_fs,
    mtf_glp_fs_apply,
    mtf_glp_fs_stats,
    mtf_glp_hpm,
    mtf_glp_hpm_apply,
    mtf_glp_hpm_stats,
)

__all__ = [
    "exp", "brovey", "gsa", "mtf_glp_hpm", "METHODS", "FITTED", "GSAStats", "HPMStats", "gsa_stats",
    "gsa_apply", "mtf_glp_hpm_stats", "mtf_glp_hpm_apply", "fit", "apply", "mtf_glp_fs", "FSStats",
    "mtf_glp_fs_stats", "mtf_glp_fs_apply", "bdsd_pc", "BDSDStats", "bdsd_pc_stats", "bdsd_pc_apply",
    "HELP",
]


def exp(ms: np.ndarray, pan: np.ndarray | int | None = None, ratio: int | None = None) -> np.ndarray:
    """EXP: bicubic upsampling of the MS, no PAN detail.

    Callable as ``exp(ms, ratio)`` or, like the other methods, ``exp(ms, pan, ratio)``.

    Args:
        ms: (C, h, w) MS image.
        pan: Ignored (only its shape is checked when given).
        ratio: Upsampling factor.

    Returns:
        (C, h*ratio, w*ratio) float32.
    """
    if ratio is None:
        if pan is None or np.ndim(pan) != 0:
            raise PSDNetInputError("exp: ratio missing; call exp(ms, ratio) or exp(ms, pan, ratio).")
        ratio, pan = int(pan), None
    if pan is not None:
        m, _, ratio = check_inputs(ms, pan, ratio, "exp")  # type: ignore[arg-type]
    else:
        m = np.asarray(ms, dtype=np.float32)
        if m.ndim != 3:
            raise PSDNetInputError(f"exp: ms has shape {m.shape}; pass the MS image as (C, h, w).")
    return upsample_bicubic(m, ratio)


#: Method name -> function, as used by the engine and the benchmark.
METHODS: dict[str, Callable[..., np.ndarray]] = {
    "exp": exp, "brovey": brovey, "gsa": gsa, "mtf_glp_hpm": mtf_glp_hpm, "mtf_glp_fs": mtf_glp_fs,
    "bdsd_pc": bdsd_pc}
#: Methods whose statistics are fitted once per raster: name -> (stats, apply).
FITTED: dict[str, tuple[Callable[..., Any], Callable[..., np.ndarray]]] = {
    "gsa": (gsa_stats, gsa_apply), "mtf_glp_hpm": (mtf_glp_hpm_stats, mtf_glp_hpm_apply),
    "mtf_glp_fs": (mtf_glp_fs_stats, mtf_glp_fs_apply), "bdsd_pc": (bdsd_pc_stats, bdsd_pc_apply)}
#: One line per method: when it is the better choice (help texts of the algorithms and CLI).
HELP = {
    "exp": "EXP: bicubic upsampling, no PAN detail; the floor every method must beat.",
    "brovey": "Brovey: what QGIS's built-in Pansharpening runs; sharp but colour-distorting.",
    "gsa": "GSA: component substitution; sharpest, best when the PAN covers the MS bands' spectrum.",
    "mtf_glp_hpm": "MTF-GLP-HPM: multiplicative MTF-matched detail; good colour, robust on bright/dark contrast.",
    "mtf_glp_fs": "MTF-GLP-FS: MTF-matched detail with gains fitted at full scale; often the best "
                  "all-rounder, also for bands the PAN covers poorly.",
    "bdsd_pc": "BDSD-PC: per-band detail weights fitted by constrained least squares; best when bands "
               "differ in how much PAN detail they take (e.g. NIR, 8-band MS).",
}


def fit(method: str, ms: Windows, pan: Windows, ratio: int, sensor: str | None = None,
        valid: Windows | None = None, intensity_bands: Sequence[int] | None = None
        ) -> GSAStats | HPMStats | FSStats | BDSDStats | None:
    """Global statistics of ``method`` (None for the stateless ``exp`` and ``brovey``).

    ``intensity_bands``: GSA's intensity from these 0-based bands only (:func:`gsa_stats`); the
    other methods fit each band on its own (MTF-GLP-HPM / -FS) or on all (BDSD-PC) and ignore it.
    """
    if method not in METHODS:
        raise PSDNetInputError(f"Classical method {method!r} is unknown; use one of {', '.join(METHODS)}.")
    if method not in FITTED:
        return None
    if method == "gsa" and intensity_bands is not None:
        return gsa_stats(ms, pan, ratio, sensor, valid, intensity_bands)
    return FITTED[method][0](ms, pan, ratio, sensor, valid)


def apply(method: str, ms: np.ndarray, pan: np.ndarray, ratio: int,
          stats: GSAStats | HPMStats | FSStats | BDSDStats | None = None, up: np.ndarray | None = None) -> np.ndarray:
    """Run ``method`` on one tile with global ``stats`` from :func:`fit`.

    ``stats=None`` for a fitted method estimates them from this tile (the one-call form:
    right for a whole image, seams for tiles). ``up``: ``upsample_bicubic(ms, ratio)`` when the
    caller has it (several methods on one tile); used by the fitted methods with ``stats``.
    """
    if method not in METHODS:
        raise PSDNetInputError(f"Classical method {method!r} is unknown; use one of {', '.join(METHODS)}.")
    if method not in FITTED or stats is None:
        return METHODS[method](ms, pan, ratio)
    return FITTED[method][1](ms, pan, ratio, stats, up)
