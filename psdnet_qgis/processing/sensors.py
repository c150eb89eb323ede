"""The one SENSOR choice of ``psdnet:classical``, ``psdnet:pansharpen`` and ``psdnet:assess``.

The ids are ``core.mtf.SENSOR_CHOICES`` (unknown, the MTF table's sensors, auto): static
strings stored by saved models and ``qgis_process`` calls, with a translated label each that
gives the MTF gains the choice means.
"""

from __future__ import annotations

from ..core import mtf
from .base import tr

#: Parameter name shared by the algorithms.
SENSOR = "SENSOR"
#: Choice ids, in order (positions are what index calls, SENSOR=4, select).
SENSOR_IDS: tuple[str, ...] = mtf.SENSOR_CHOICES


def sensor_choices() -> list[tuple[str, str]]:
    """(id, translated label) pairs of the SENSOR parameter."""
    out = []
    for sid in SENSOR_IDS:
        if sid == mtf.UNKNOWN:
            label = tr("Unknown: documented default MTF gains (MS {}, PAN {})").format(
                f"{mtf.DEFAULT_MS_GNYQ:g}", f"{mtf.DEFAULT_PAN_GNYQ:g}")
        elif sid == mtf.AUTO:
            label = tr("Auto: the sensor the MS or PAN metadata name, else the default gains")
        else:
            g = mtf.SENSORS[sid]
            label = tr("MTF gains at Nyquist: MS {} and PAN {}").format(
                ", ".join(f"{v:g}" for v in g.ms), f"{g.pan:g}")
        out.append((sid, label))
    return out


def engine_sensor(choice: str) -> str | None:
    """The engine's ``sensor`` argument for a SENSOR id (None for unknown, "auto" kept)."""
    return None if choice == mtf.UNKNOWN else choice
