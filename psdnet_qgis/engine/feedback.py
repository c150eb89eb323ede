"""Feedback protocol between the engine and whatever drives it (QGIS, CLI, scripts).

The engine only ever calls the four methods of :class:`Feedback`; the Processing glue
(`processing/feedback.py`) adapts `QgsProcessingFeedback` to it, the CLI uses
:class:`TqdmFeedback`, library callers may pass nothing (:class:`NullFeedback`).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Protocol

logger = logging.getLogger("psdnet_qgis.engine")


class Feedback:
    """Base feedback: log lines go to :mod:`logging`, progress is ignored, never cancelled.

    Subclasses override what they support. ``warning`` is optional for duck-typed
    feedback objects: the engine falls back to ``info`` when it is missing.
    """

    def info(self, msg: str) -> None:
        """One human-readable log line (no trailing newline)."""
        logger.info(msg)

    def warning(self, msg: str) -> None:
        """A log line the user should not miss."""
        logger.warning(msg)

    def progress(self, percent: float) -> None:
        """Overall progress in percent, 0..100, monotonic."""

    def is_canceled(self) -> bool:
        """True once the user asked to stop; checked before every batch of tiles."""
        return False


class NullFeedback(Feedback):
    """Feedback that swallows everything (library default)."""

    def info(self, msg: str) -> None:
        logger.debug(msg)

    def warning(self, msg: str) -> None:
        logger.warning(msg)


class QuietFeedback(Feedback):
    """``fb``'s cancel button only: messages go to the debug log, progress nowhere (work done
    on the side of a step, such as the calibrations that adaptation's check compares)."""

    def __init__(self, fb: Feedback) -> None:
        self._fb = fb

    def info(self, msg: str) -> None:
        logger.debug(msg)

    def warning(self, msg: str) -> None:
        logger.debug(msg)

    def is_canceled(self) -> bool:
        return self._fb.is_canceled()


class TqdmFeedback(Feedback):
    """Terminal feedback for the CLI: a tqdm bar on stderr, log lines printed above it."""

    def __init__(self, desc: str = "pansharpen", quiet: bool = False) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self._quiet = quiet
        self._bar: Any = None
        self._desc = desc
        self._last = 0.0

    def _ensure_bar(self) -> Any:
        if self._bar is None and not self._quiet:
            self._bar = self._tqdm(
                total=100.0, desc=self._desc, unit="%", file=sys.stderr,
                bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}% [{elapsed}<{remaining}]",
            )
        return self._bar

    def info(self, msg: str) -> None:
        if not self._quiet:
            self._tqdm.write(msg, file=sys.stderr)

    def warning(self, msg: str) -> None:
        self._tqdm.write(f"warning: {msg}", file=sys.stderr)

    def progress(self, percent: float) -> None:
        bar = self._ensure_bar()
        percent = max(self._last, min(100.0, float(percent)))
        if bar is not None:
            bar.update(percent - self._last)
        self._last = percent

    def close(self) -> None:
        """Close the bar (idempotent)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class FeedbackLike(Protocol):
    """What a caller may pass as ``feedback`` (:func:`as_feedback` wraps it): a :class:`Feedback`,
    or any object with these methods (``warning(str)`` is optional and falls back to ``info``)."""

    def info(self, msg: str) -> None: ...

    def progress(self, percent: float) -> None: ...

    def is_canceled(self) -> bool: ...


class _Adapter(Feedback):
    """Wraps a duck-typed feedback object so the engine can call all four methods."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def info(self, msg: str) -> None:
        logger.info(msg)
        fn = getattr(self._inner, "info", None)
        if fn is not None:
            fn(msg)

    def warning(self, msg: str) -> None:
        logger.warning(msg)
        fn = getattr(self._inner, "warning", None) or getattr(self._inner, "info", None)
        if fn is not None:
            fn(msg)

    def progress(self, percent: float) -> None:
        fn = getattr(self._inner, "progress", None)
        if fn is not None:
            fn(float(percent))

    def is_canceled(self) -> bool:
        fn = getattr(self._inner, "is_canceled", None)
        return bool(fn()) if fn is not None else False


def as_feedback(feedback: FeedbackLike | None) -> Feedback:
    """Return a :class:`Feedback` for ``feedback`` (None -> NullFeedback; duck types wrapped)."""
    if feedback is None:
        return NullFeedback()
    if isinstance(feedback, Feedback):
        return feedback
    return _Adapter(feedback)
