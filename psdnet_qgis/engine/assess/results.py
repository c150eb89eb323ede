"""What an assessment found (:func:`engine.assess.quality.assess`): plain data, standard library only.

:class:`AssessReport` is the typed result; :meth:`AssessReport.to_dict` gives the plain dict
the JSON / CSV writers, the HTML report and the benchmarks take (the keys and values ``assess``
returned before it was typed: lists where the report holds tuples).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AssessInputs:
    """The rasters of an assessment, as given (``reference``: None without one)."""

    fused: str
    pan: str
    ms: str
    reference: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        """``{"fused", "pan", "ms", "reference"}``."""
        return {"fused": self.fused, "pan": self.pan, "ms": self.ms, "reference": self.reference}


@dataclass(frozen=True)
class AssessReport:
    """Quality metrics of a pansharpened raster and how they were obtained (sizes in PAN px).

    Attributes:
        metrics: value of every ``engine.assess.pooling.METRIC_KEYS`` key (None: not computed,
            e.g. the reduced-resolution metrics without a reference, or undefined).
        ratio: PAN/MS ratio.
        bands: number of bands.
        sensor: sensor of the MTF gains ("unknown" when none was given).
        mode: "whole" (the region read at once) or "sampled" (seeded blocks).
        sampled_pixels: pixels the metrics were computed on.
        region_pixels: pixels of the evaluated region (what every raster covers).
        windows: (row, col, height, width) of every evaluated window on the output grid.
        block: block side of the sampled mode (None in whole mode).
        seed: seed of the block sample (None in whole mode).
        max_pixels: largest region evaluated whole.
        dn_scale: factor bringing the values to integer digital numbers (Q2n, HQNR).
        inputs: the rasters assessed.
        notes: what the reader should know (warps, trimmed borders, missing reference), sorted.
        quicklook: path of the quicklook PNG (None: none written).
        seconds: wall time.
    """

    metrics: Mapping[str, float | None]
    ratio: int
    bands: int
    sensor: str
    mode: str
    sampled_pixels: int
    region_pixels: int
    windows: tuple[tuple[int, int, int, int], ...]
    block: int | None
    seed: int | None
    max_pixels: int
    dn_scale: float
    inputs: AssessInputs
    notes: tuple[str, ...]
    quicklook: str | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """The report as a plain dict in field order (``metrics`` and ``inputs`` as dicts, ``windows``
        and ``notes`` as lists), e.g. for JSON."""
        return {
            "metrics": dict(self.metrics),
            "ratio": self.ratio,
            "bands": self.bands,
            "sensor": self.sensor,
            "mode": self.mode,
            "sampled_pixels": self.sampled_pixels,
            "region_pixels": self.region_pixels,
            "windows": list(self.windows),
            "block": self.block,
            "seed": self.seed,
            "max_pixels": self.max_pixels,
            "dn_scale": self.dn_scale,
            "inputs": self.inputs.to_dict(),
            "notes": list(self.notes),
            "quicklook": self.quicklook,
            "seconds": self.seconds,
        }


__all__ = ["AssessInputs", "AssessReport"]
