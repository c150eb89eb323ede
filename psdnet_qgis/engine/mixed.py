"""More MS bands than the model knows: the network on its bands, a classical method on the others.

An 8-band WorldView-2/3 MS (coastal, blue, green, yellow, red, red edge, NIR1, NIR2) with the
4-band ``psdnet_vhr4`` (blue, green, red, NIR), or a Landsat MS of the 30 m reflective bands
(coastal, blue, green, red, NIR, SWIR 1, SWIR 2, or some of them) with the 3-band
``psdnet_landsat3`` (blue, green, red): :func:`plan_bands` finds the MS bands the model knows
(the bands the user set, else the names ``engine.msbands`` reads off the files: band
descriptions, Landsat band numbers, a VRT's source file names, else the WorldView 8-band order)
and checks the choice on the pixels (``core.bands.check_order``); :class:`MixedPredictor` runs
the classical method (fitted once on all bands, like ``psdnet:classical``) and replaces the
network's bands by the network's output. The output keeps every band in the input order.

Measured on the Shanghai WV-3 8-band scene at reduced resolution (``make bench``, row
``shanghai8``): see docs/BENCHMARKS.md "Quality".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from psdnet_qgis.core import bands as bandnames
from psdnet_qgis.core.options import OTHER_METHODS, ModelBands
from psdnet_qgis.core.radiometry import Normalizer
from psdnet_qgis.core.registry import ModelInfo
from psdnet_qgis.engine.msbands import UNKNOWN, MSBandNames
from psdnet_qgis.errors import PSDNetInputError

DEFAULT_OTHER = OTHER_METHODS[0]


@dataclass(frozen=True)
class BandPlan:
    """Which MS bands the network takes (0-based, in the model's band order) and why."""

    network: list[int]
    names: list[str] | None
    #: "set" (by the user) | "metadata" (band descriptions) | "files" (a VRT's source file names) |
    #: "default" (WorldView order) | "model" (as many bands as the model and no descriptions:
    #: taken in the model's order)
    source: str
    check: bandnames.OrderCheck | None
    #: how the log says where the names came from (``MSBandNames.how``); "" for the default text
    how: str = ""

    def describe(self, model: str, other: str, n_bands: int) -> str:
        """One log line: which bands come from which method, and how the bands were identified."""
        rest = [b for b in range(n_bands) if b not in self.network]

        def fmt(idx: Sequence[int]) -> str:
            names = f" ({', '.join(self.names[i] for i in idx)})" if self.names else ""
            return ", ".join(str(i + 1) for i in idx) + names

        how = {"set": "as set", "metadata": "from the band descriptions",
               "files": "from the VRT's source file names",
               "default": "WorldView 8-band order (the bands have no descriptions)",
               "model": "in the model's band order (the bands have no descriptions)"}[self.source]
        if self.how and self.source not in ("set", "model"):
            how = self.how
        others = f"; bands {fmt(rest)} by {other}" if rest else ", in the model's band order"
        line = f"Bands {fmt(self.network)} by {model}{others}. Band choice {how}"
        if self.check is not None:
            line += f"; checked on the pixels: {self.check.verdict} ({self.check.reason})"
        return line + "."


def _items(value: ModelBands) -> list:
    """The entries of a band list: ``"2,3,5,7"`` / ``"2;3;5;7"`` or a sequence; [] when empty."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in value.replace(";", ",").split(",") if v.strip()]
    return list(value)


def parse_bands(value: ModelBands, n_bands: int, n_model: int, ms_path: str) -> list[int] | None:
    """``"2,3,5,7"`` / a sequence of 1-based bands -> 0-based list (None when empty); checked."""
    if not _items(value):
        return None
    try:
        items = [int(v) for v in _items(value)]
    except (TypeError, ValueError):
        raise PSDNetInputError(
            f"Model bands {value!r}: expected {n_model} comma-separated 1-based band numbers of MS "
            f"input '{ms_path}', e.g. 2,3,5,7 (WorldView 8-band: blue, green, red, NIR1)."
        ) from None
    if len(items) != n_model or len(set(items)) != n_model or not all(1 <= b <= n_bands for b in items):
        raise PSDNetInputError(
            f"Model bands {value!r}: the model takes {n_model} distinct bands of MS input '{ms_path}' "
            f"(bands 1-{n_bands}), in its band order; e.g. 2,3,5,7 for blue, green, red, NIR1 of a "
            "WorldView 8-band MS."
        )
    return [b - 1 for b in items]


def plan_bands(model_name: str, model_bands: Sequence[str], n_bands: int, known: MSBandNames,
               ms_path: str, chosen: ModelBands, sample_ms: np.ndarray, sample_valid: np.ndarray | None
               ) -> BandPlan:
    """The MS bands the network takes, checked on the pixels.

    Args:
        model_name: the model (for messages).
        model_bands: the model's band names (``ModelInfo.band_names``), in its order.
        n_bands: MS band count (> len(model_bands)).
        known: the MS band names ``engine.msbands.identify`` found (descriptions, Landsat band
            numbers, VRT source files, the WorldView 8-band order).
        ms_path: the MS input (for messages).
        chosen: the user's 1-based bands ("2,3,5,7" or a sequence), or None/"" to identify them.
        sample_ms, sample_valid: the run's decimated MS sample and its valid mask (the check).

    Raises:
        PSDNetInputError: the bands cannot be identified, do not include the model's, or the
            pixels contradict the identification.
    """
    n_model = len(model_bands)
    example = "2,3,5,7"
    names, source = known.names, known.source
    check = bandnames.check_order(sample_ms, names, sample_valid) if names else None
    idx = parse_bands(chosen, n_bands, n_model, ms_path)
    if idx is not None:
        return BandPlan(idx, names, "set", check)
    if names is None:
        raise PSDNetInputError(
            f"MS input '{ms_path}' has {n_bands} bands without band descriptions, and model '{model_name}' "
            f"takes {n_model} ({', '.join(model_bands)}): set Model bands (--model-bands) to the "
            f"1-based MS bands in that order (e.g. {example}), set the sensor (a Landsat MS: its band "
            "numbers name the bands), or choose a classical method."
        )
    idx = bandnames.select(names, model_bands)
    if idx is None:
        origin = known.how if source in ("metadata", "files") else "assumed"
        raise PSDNetInputError(
            f"MS input '{ms_path}' has the bands {', '.join(names)} ({origin}), "
            f"which lack some of model '{model_name}''s ({', '.join(model_bands)}): set Model bands "
            "(--model-bands) or choose a classical method."
        )
    if check is not None and check.verdict == "contradicted":
        which = {"metadata": "band descriptions", "files": "band names of the VRT's source files"}.get(
            source, "assumed WorldView 8-band order")
        raise PSDNetInputError(
            f"MS input '{ms_path}': its pixels contradict the {which} ({', '.join(names)}; {check.reason}). "
            f"Set Model bands (--model-bands) to the 1-based bands {', '.join(model_bands)} "
            f"(for a WorldView 8-band MS in the usual order: {example}), or fix the band order of the file."
        )
    return BandPlan(idx, names, source, check, known.how)


def plan_model_order(model_name: str, model_bands: Sequence[str], known: MSBandNames, ms_path: str,
                     chosen: ModelBands, sample_ms: np.ndarray, sample_valid: np.ndarray | None) -> BandPlan:
    """As many MS bands as the model: which MS band is which of the model's, checked on the pixels.

    The bands the user set win; else the band descriptions (a Pleiades or SPOT export in red,
    green, blue, NIR order gives the network its bands in the model's order); else the bands are
    taken in the model's order. The check is of that claim.

    Args:
        model_name: the model (for messages).
        model_bands: the model's band names (``ModelInfo.band_names``), in its order.
        known: the MS band names ``engine.msbands.identify`` found (only those the files state
            count here: descriptions, Landsat band numbers, VRT source files).
        ms_path: the MS input (for messages).
        chosen: the user's 1-based bands ("3,2,1,4" or a sequence), or None/"".
        sample_ms, sample_valid: the run's decimated MS sample and its valid mask.

    Raises:
        PSDNetInputError: the descriptions name bands that lack some of the model's, or the pixels
            contradict them.
    """
    n = len(model_bands)
    wanted = [bandnames.canonical_name(b) or str(b).lower() for b in model_bands]
    idx = parse_bands(chosen, n, n, ms_path)
    names = known.names if known.source in ("metadata", "files") else None
    if idx is not None:
        claimed = [""] * n
        for k, b in enumerate(idx):
            claimed[b] = wanted[k]
        return BandPlan(idx, names or claimed, "set", bandnames.check_order(sample_ms, claimed, sample_valid))
    if names is None:
        return BandPlan(list(range(n)), wanted, "model", bandnames.check_order(sample_ms, wanted, sample_valid))
    idx = bandnames.select(names, model_bands)
    if idx is None:
        raise PSDNetInputError(
            f"MS input '{ms_path}' has the bands {', '.join(names)} ({known.how}), which lack "
            f"some of model '{model_name}''s ({', '.join(model_bands)}): set Model bands (--model-bands) to "
            "the 1-based MS bands in the model's order, fix the band descriptions, or choose a classical method.")
    check = bandnames.check_order(sample_ms, names, sample_valid)
    if check.verdict == "contradicted":
        what = "band descriptions" if known.source == "metadata" else "band names of the VRT's source files"
        raise PSDNetInputError(
            f"MS input '{ms_path}': its pixels contradict the {what} ({', '.join(names)}; "
            f"{check.reason}). Set Model bands (--model-bands) to the 1-based bands {', '.join(model_bands)}, "
            "or fix the band descriptions or the band order of the file.")
    return BandPlan(idx, names, known.source, check, known.how)


def order_plan(info: ModelInfo, inputs: Any, sample: tuple[np.ndarray, ...], chosen: ModelBands, fb: Any,
               known: MSBandNames = UNKNOWN) -> BandPlan | None:
    """PSDNet with as many bands as the MS: the plan when the network needs the bands reordered.

    Checks the band order (:func:`plan_model_order`) and logs it; returns None when the bands are
    already in the model's order (or the model names no bands), else the plan (then the run goes
    through :class:`MixedPredictor`, which gives the network its bands in its order and writes
    them back in the input order).

    Args:
        info: the model's metadata (``band_names``).
        inputs: the run's ``engine.raster.RasterInputs``.
        sample: ``inputs.read_sample()`` result (ms, pan, ms_valid, pan_valid).
        chosen: the user's Model bands, or None.
        fb: the run's feedback.
        known: the MS band names (``engine.msbands.identify``).
    """
    model_bands = list(info.band_names)
    if len(model_bands) != inputs.bands:
        return None
    name = info.name
    plan = plan_model_order(name, model_bands, known, inputs.ms_path, chosen, sample[0], sample[2])
    if plan.network != list(range(inputs.bands)):
        return plan
    check = plan.check
    if check is not None and check.verdict == "confirmed":
        fb.info(plan.describe(name, "", inputs.bands))
    elif check is not None:
        what = {"set": "the bands as set", "metadata": "the band descriptions",
                "files": "the band names of the VRT's source files",
                "model": "the model's band order (the file has no band descriptions)"}[plan.source]
        fb.warning(f"The band order of MS input '{inputs.ms_path}' ({', '.join(model_bands)} by {what}) is "
                   f"{'contradicted' if check.verdict == 'contradicted' else 'not confirmed'} by its pixels "
                   f"({check.reason}); if the fused colours look wrong, set Model bands (--model-bands) or the "
                   "band descriptions.")
    return None


def auto_model(n_bands: int, ratio: int, known: MSBandNames, chosen: ModelBands, fast: bool
               ) -> ModelInfo | None:
    """Auto's bundled model for an MS, by its band names and the ratio; None when none fits.

    With Model bands set, a model with that many bands (if any: else as without them, so that the
    model's band count is what the message about bad Model bands says). With the MS band names known
    (``engine.msbands.identify``), the model with the most bands that the MS holds (a Landsat MS of
    coastal .. SWIR 2: ``psdnet_landsat3`` on blue, green, red). Otherwise, by band count alone.
    Ties: ``core.registry.best`` (full before fast unless ``fast``, then the version).

    Args:
        n_bands: MS band count.
        ratio: PAN/MS ratio.
        known: the MS band names.
        chosen: the user's Model bands, or None/"".
        fast: "auto_fast": prefer the distilled fast models.
    """
    from psdnet_qgis.core import registry

    models = [m for m in registry.list_models() if m.ratio == ratio and m.bands <= n_bands]
    n_chosen = len(_items(chosen))
    fits = [m for m in models if n_chosen and m.bands == n_chosen]
    if not fits and known.names is not None:
        fits = [m for m in models if m.band_names and bandnames.select(known.names, m.band_names) is not None]
    elif not fits:
        fits = [m for m in models if m.bands == n_bands]
    if not fits:
        return None
    most = max(m.bands for m in fits)
    return registry.best([m for m in fits if m.bands == most], fast=fast)


def no_model_message(n_bands: int, ratio: int, known: MSBandNames, ms_path: str) -> str:
    """Why Auto found no bundled model for the MS, with the fix (the models listed)."""
    from psdnet_qgis.core import registry

    available = ", ".join(f"{m.name} ({', '.join(m.band_names)}; ratio {m.ratio})" for m in registry.list_models())
    if known.names is None:
        return (f"Model 'auto': no bundled model for {n_bands} MS bands at ratio {ratio} (MS input '{ms_path}'). "
                f"Available: {available or 'none installed'}. Name the bands (band descriptions, Model bands "
                "--model-bands, or the sensor: a Landsat MS is named by its band numbers), train a model for this "
                "sensor (make train), or use a classical method.")
    return (f"Model 'auto': no bundled model at ratio {ratio} takes bands of MS input '{ms_path}' "
            f"({', '.join(known.names)}, {known.how}). Available: {available or 'none installed'}. Give the MS "
            "with a model's bands, set Model bands (--model-bands), or use a classical method.")


class MixedPredictor:
    """The classical method on every band, then the network's bands replaced by the network.

    Takes and returns tiles normalised with the run's normalizer (all MS bands); the network
    gets its bands normalised with its own statistics (``net_norm``, the model's method).
    """

    def __init__(self, network: Any, classical: Any, plan: BandPlan, run_norm: Normalizer,
                 net_norm: Normalizer) -> None:
        self.network = network
        self.classical = classical
        self.idx = list(plan.network)
        self.run_norm = run_norm
        sub = np.asarray(self.idx)
        self.run_sub = Normalizer(run_norm.ms_mean[sub], run_norm.ms_std[sub], run_norm.pan_mean,
                                  run_norm.pan_std, run_norm.method)
        self.net_norm = net_norm
        self.batch_size = int(getattr(network, "batch_size", 1) or 1)
        self.threads = int(getattr(network, "threads", 0) or 0)
        self.device_report = (f"{getattr(network, 'device_report', 'cpu')}; other bands: "
                              f"{classical.method} (numpy)")

    def predict(self, ms: np.ndarray, pan: np.ndarray) -> np.ndarray:
        """(B, C, h, w), (B, 1, H, W) normalised (run) -> (B, C, H, W) normalised (run) float32."""
        if len(self.idx) == ms.shape[1]:  # every band is the network's (reordered): nothing classical
            out = np.empty((ms.shape[0], ms.shape[1], *pan.shape[-2:]), dtype=np.float32)
        else:
            out = self.classical.predict(ms, pan)
        sub = np.stack([self.net_norm.norm_ms(self.run_sub.denorm_ms(m[self.idx])) for m in ms])
        pan_n = np.stack([self.net_norm.norm_pan(self.run_norm.denorm_pan(p)) for p in pan])
        fused = self.network.predict(sub.astype(np.float32), pan_n.astype(np.float32))
        for b in range(fused.shape[0]):
            out[b, self.idx] = self.run_sub.norm_ms(self.net_norm.denorm_ms(fused[b]))
        return out
