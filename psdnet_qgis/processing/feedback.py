"""Adapts QgsProcessingFeedback to the engine's feedback protocol (engine/feedback.py)."""

from __future__ import annotations

from qgis.core import QgsProcessingFeedback


class ProcessingFeedback:
    """Engine feedback that forwards to Processing: log lines, progress bar, cancel button.

    Safe from Processing's worker thread: QgsProcessingFeedback is thread-aware.
    """

    def __init__(self, feedback: QgsProcessingFeedback | None) -> None:
        self._fb = feedback or QgsProcessingFeedback()

    def info(self, msg: str) -> None:
        self._fb.pushInfo(msg)

    def warning(self, msg: str) -> None:
        self._fb.pushWarning(msg)

    def progress(self, percent: float) -> None:
        self._fb.setProgress(float(percent))

    def is_canceled(self) -> bool:
        return self._fb.isCanceled()
