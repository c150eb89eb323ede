"""The progress bar of a run split in spans: scene adaptation first, then the tiles.

A run with ``adapt_seconds`` reports adaptation's progress in 0..:data:`PROGRESS_END` % of the
caller's bar (:class:`SpanFeedback`) and the tile loop's in the rest (:func:`tile_feedback`).
"""

from __future__ import annotations

from psdnet_qgis.engine.feedback import Feedback

PROGRESS_END = 30.0  # percent of the bar at the end of adaptation (the tiles take the rest)


class SpanFeedback(Feedback):
    """Engine feedback whose progress 0..100 lands in [lo, hi] of the caller's bar; the other
    three methods are the caller's."""

    def __init__(self, fb: Feedback, lo: float, hi: float) -> None:
        self._fb, self._lo, self._hi = fb, float(lo), float(hi)

    def info(self, msg: str) -> None:
        self._fb.info(msg)

    def warning(self, msg: str) -> None:
        self._fb.warning(msg)

    def progress(self, percent: float) -> None:
        """Forward ``percent`` of this span."""
        self._fb.progress(self._lo + (self._hi - self._lo) * float(percent) / 100.0)

    def is_canceled(self) -> bool:
        return self._fb.is_canceled()


def tile_feedback(fb: Feedback) -> SpanFeedback:
    """The tile loop's feedback after adaptation: its 2..99 % become PROGRESS_END..99 %."""
    lo_in, hi_in, hi = 2.0, 99.0, 99.0
    scale = (hi - PROGRESS_END) / (hi_in - lo_in)
    return SpanFeedback(fb, PROGRESS_END - lo_in * scale, PROGRESS_END + (100.0 - lo_in) * scale)
