"""The options of a pansharpening run, each written once: the value lists and the run's settings.

Standard library only (the classical method names are read from :mod:`.classical` inside the
functions that need them), so every layer takes its choice lists from here: the command line's
``choices``, the batch jobs file's cell checks, the Processing algorithms' enum parameters,
the engine and the model. Adding a device or a precision is one edit of a tuple below.

:class:`RunOptions` holds the keywords of ``engine.run.pansharpen`` besides the paths and the
feedback (a test holds its fields and defaults equal to that signature), and
:meth:`RunOptions.validate` checks the listed choices once, before any input is opened.
:class:`AdaptOptions` holds how scene adaptation fine-tunes (checked when it is made).
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from ..errors import PSDNetInputError
from .registry import ModelInfo

if TYPE_CHECKING:  # numpy only for the type checker: this module stays standard library at run time
    from numpy.typing import DTypeLike

#: ``device`` values ("cuda:N" also names the N-th GPU). The order is what an index-based QGIS
#: call selects (``DEVICE=2`` is "cpu"): append new values at the end.
DEVICES = ("auto", "cuda", "cpu")
#: PSDNet arithmetic of a run ("auto": ``model.precision.auto_precision``).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: Precisions of a training run (``training.runtime.autocast_dtype`` knows no fp16).
TRAINING_PRECISIONS = ("auto", "fp32", "bf16")
#: PyTorch builds the installer can fetch (``deps.installer``): a wheel index, not a run's device.
TORCH_VARIANTS = ("auto", "cpu", "cuda")
#: Classical methods offered for the MS bands a model does not know (best first on the 8-band
#: scene, ``make bench`` row ``shanghai8``); the values of psdnet:pansharpen's OTHER_METHOD.
OTHER_METHODS = ("mtf_glp_fs", "mtf_glp_hpm", "gsa", "bdsd_pc")
#: Losses of scene adaptation (``model.adapt``); the first is the default.
ADAPT_LOSSES = ("both", "fullres", "wald")
#: Weights scene adaptation changes (``model.adapt``); the first is the default.
ADAPT_PARTS = ("head", "all")
#: The network's ``method``; the others are ``core.classical.METHODS``.
NETWORK_METHOD = "psdnet"
#: File endings of a weights file (``model.weights.load_model``).
MODEL_SUFFIXES = (".pt", ".pth", ".json")


class NetworkLike(Protocol):
    """A network given as ``model``: a ``torch.nn.Module`` taking normalised (ms, pan), known by
    the two methods ``engine.fusion.resolve_model`` checks (core never imports torch)."""

    def forward(self, *args: Any, **kwargs: Any) -> object: ...

    def parameters(self) -> Iterator[object]: ...


#: ``model`` of a run: "auto" / "auto_fast" / a bundled name, a weights path (``.pt`` or ``.json``),
#: a registry entry, or a network; None means "auto".
ModelChoice: TypeAlias = "str | os.PathLike[str] | ModelInfo | NetworkLike | None"
#: ``model_bands`` of a run: 1-based MS bands as "2,3,5,7" or a sequence; None (or "") to find them.
ModelBands: TypeAlias = "str | Sequence[int] | None"
#: ``adapt_options`` of a run: an :class:`AdaptOptions`, or a plain dict of its fields (what scripts
#: written before it pass; converted once by :meth:`AdaptOptions.of`); None = the defaults.
AdaptChoice: TypeAlias = "AdaptOptions | Mapping[str, object] | None"


def run_methods() -> tuple[str, ...]:
    """Every ``method`` of a run: the network, then the classical methods (imports numpy)."""
    from .classical import METHODS

    return (NETWORK_METHOD, *METHODS)


def is_model_path(value: str) -> bool:
    """Whether a ``model`` value names a weights file rather than "auto" or a bundled model."""
    return value.endswith(MODEL_SUFFIXES) or "/" in value or os.sep in value


def check_choice(option: str, value: Any, allowed: Sequence[str], extra: str = "") -> None:
    """Raise :class:`PSDNetInputError` naming ``option`` and its values when ``value`` is not one.

    ``extra`` ends the list of values (e.g. " or cuda:N").
    """
    if value not in allowed:
        raise PSDNetInputError(f"{option} {value!r} is unknown; use one of {', '.join(allowed)}{extra}.")


def _gpu_index(device: str) -> bool:
    """"cuda:N": the N-th GPU (``torch.device`` spelling)."""
    base, sep, index = device.partition(":")
    return base == "cuda" and bool(sep) and index.isdigit()


@dataclass(frozen=True)
class RunOptions:
    """The settings of one ``engine.run.pansharpen`` run (that function documents each field).

    ``device`` and ``precision`` are compared without case; None or "" mean "auto", as in the
    engine and the model.
    """

    method: str = NETWORK_METHOD
    model: ModelChoice = "auto"
    device: str = "auto"
    tile: int | None = None
    overlap: int | None = None
    pan_band: int = 1
    out_dtype: DTypeLike = None
    batch_size: int | None = None
    margin: int | None = None
    precision: str = "auto"
    sensor: str | None = "auto"
    adapt_seconds: float = 0.0
    adapt_options: AdaptOptions | None = None
    model_bands: ModelBands = None
    other_method: str = OTHER_METHODS[0]
    calibrate: bool = True

    def validate(self) -> RunOptions:
        """Check method, device and precision against their lists; returns ``self``.

        Raises:
            PSDNetInputError: a value not in its list; the message names the option and the values.
        """
        check_choice("method", self.method, run_methods())
        device = str(self.device or "auto").strip().lower()
        if not _gpu_index(device):
            check_choice("device", device, DEVICES, " (or cuda:N for the N-th GPU)")
        check_choice("precision", str(self.precision or "auto").strip().lower(), PRECISIONS)
        return self


@dataclass(frozen=True)
class AdaptOptions:
    """How scene adaptation fine-tunes: the fields of ``model.adapt.AdaptConfig`` besides the
    budget, with its defaults (a test holds both equal; ``AdaptConfig.from_options`` converts).

    Checked when made: a value outside its list or range raises :class:`PSDNetInputError`
    naming the option and what to give.

    Attributes:
        part: weights adapted, one of :data:`ADAPT_PARTS` ("head": the output head only).
        losses: one of :data:`ADAPT_LOSSES`.
        lr: Adam learning rate (> 0).
        spatial_weight: weight of the spatial loss term against the spectral one (>= 0).
        max_steps: stop after this many steps even with budget left (None: the budget decides).
    """

    part: str = ADAPT_PARTS[0]
    losses: str = ADAPT_LOSSES[0]
    lr: float = 1e-3
    spatial_weight: float = 1.0
    max_steps: int | None = None

    def __post_init__(self) -> None:
        check_choice("adapt_options part", self.part, ADAPT_PARTS)
        check_choice("adapt_options losses", self.losses, ADAPT_LOSSES)
        if not _finite_number(self.lr) or not self.lr > 0:
            raise PSDNetInputError(f"adapt_options lr {self.lr!r}: give a positive learning rate (default 0.001).")
        if not _finite_number(self.spatial_weight) or self.spatial_weight < 0:
            raise PSDNetInputError(
                f"adapt_options spatial_weight {self.spatial_weight!r}: give a number >= 0 (default 1).")
        if self.max_steps is not None and (not isinstance(self.max_steps, numbers.Integral)
                                           or isinstance(self.max_steps, bool) or self.max_steps < 0):
            raise PSDNetInputError(f"adapt_options max_steps {self.max_steps!r}: give a whole number of steps "
                                   ">= 0, or None to let the budget decide.")

    @classmethod
    def of(cls, value: AdaptChoice) -> AdaptOptions | None:
        """``value`` as :class:`AdaptOptions`: None and an ``AdaptOptions`` as they are, a mapping as
        the defaults with its keys' values (``{"losses": "wald", "max_steps": 20}``).

        Raises:
            PSDNetInputError: a key that is no field, a value :class:`AdaptOptions` refuses, or
                neither a mapping nor ``AdaptOptions``.
        """
        if value is None or isinstance(value, AdaptOptions):
            return value
        names = [f.name for f in fields(cls)]
        if not isinstance(value, Mapping):
            raise PSDNetInputError(f"adapt_options {value!r}: give an AdaptOptions (core.options) or a dict "
                                   f"of its fields {', '.join(names)}.")
        unknown = sorted(repr(k) for k in value if k not in names)
        if unknown:
            raise PSDNetInputError(f"adapt_options has no option {', '.join(unknown)}; use {', '.join(names)}.")
        given: dict[str, Any] = dict(value)  # any value: __post_init__ checks each
        return cls(**given)


def _finite_number(value: object) -> bool:
    """A real, finite number (not a bool)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
