"""The sensor of a run: the ``sensor="auto"`` of every entry point, from the files' metadata.

:func:`choose_sensor` -> :class:`SensorChoice`: the sensor whose MTF gains a run uses (the
MS's, then the PAN's: GDAL IMAGERY / IMD / tag metadata, a Landsat ``_MTL.txt`` / ``.json``
beside the file, the Landsat product name of the file name, the same of a VRT's source files),
what it is and where that choice came from. A sensor the MTF table lacks keeps the default gains.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from osgeo import gdal

from psdnet_qgis.core import mtf
from psdnet_qgis.engine.msbands import vrt_sources
from psdnet_qgis.engine.raster import RasterInputs
from psdnet_qgis.errors import PSDNetInputError

#: Metadata items that name the satellite: GDAL's IMAGERY domain (filled from the vendors'
#: IMD / DIMAP / MTL files), DigitalGlobe's IMD, Landsat's MTL, and plain tags users set.
_SENSOR_KEYS = (("IMAGERY", "SATELLITEID"), ("IMD", "IMAGE_1.SATID"), ("", "SATELLITEID"),
                ("", "SENSOR"), ("", "SATELLITE"), ("", "SPACECRAFT_ID"), ("", "PLATFORM"),
                ("", "MISSION"), ("", "TIFFTAG_IMAGEDESCRIPTION"))
#: Of those, the items that hold nothing but a satellite id: one the MTF table lacks ("SPOT 6",
#: "LANDSAT_7") is still reported, with the default gains.
_SATELLITE_ID_KEYS = (("IMAGERY", "SATELLITEID"), ("IMD", "IMAGE_1.SATID"), ("", "SATELLITEID"),
                      ("", "SPACECRAFT_ID"), ("", "MISSION"))
#: Landsat product names: collection 1 and 2 (``LC08_L1TP_195025_20130707_20170503_01_T1``) and
#: pre-collection scene ids (``LC80200392015216LGN00``). L + sensor (C OLI/TIRS, O OLI, T TM or
#: TIRS, E ETM+, M MSS) + satellite number.
_LANDSAT_ID = re.compile(r"^L([COTEM])(\d{2})_[A-Z0-9]{4}_\d{6}_\d{8}_\d{8}_\d{2}_[A-Z0-9]{2}", re.I)
_LANDSAT_OLD_ID = re.compile(r"^L([COTEM])(\d)\d{6}\d{7}[A-Z]{3}\d{2}", re.I)
#: Band suffix of a Landsat band file ("_B8", "_SR_B4", "_ST_B10"): what precedes it names the MTL.
_BAND_SUFFIX = re.compile(r"_(?:SR_|ST_)?B\d+$", re.I)


@dataclass(frozen=True)
class SensorFound:
    """A sensor recognised for a run: its MTF table name, what it is and where that came from.

    Attributes:
        name: ``core.mtf.SENSORS`` name of its MTF gains; None when the table has none for it
            (Landsat 7 ETM+, SPOT 6/7: the documented default gains are used).
        label: what the log calls it ("WorldView-3", "Landsat 7 ETM+", "SPOT 6").
        origin: where it came from ("from the file name LC08_L1TP_..._B8.TIF", "from l8_MTL.txt").
    """

    name: str | None
    label: str
    origin: str


def _landsat_label(satellite: int, sensor: str = "") -> tuple[str | None, str]:
    """(MTF table name or None, label) of a Landsat satellite number and sensor letter."""
    if satellite in (8, 9) and sensor.upper() != "T":
        return mtf.canonical_sensor(f"landsat{satellite}"), f"Landsat {satellite} OLI"
    if satellite in (8, 9):
        what = "TIRS"  # thermal only: no PAN band
    elif satellite == 7:
        what = "ETM+"
    elif satellite in (4, 5) and sensor.upper() != "M":
        what = "TM"  # no PAN band
    else:
        what = "MSS"
    return None, f"Landsat {satellite} {what}"


def _from_satellite_id(value: str) -> tuple[str | None, str] | None:
    """(MTF table name or None, label) of a satellite id the metadata give; None when empty."""
    value = " ".join(str(value or "").split())
    if not value:
        return None
    m = re.fullmatch(r"landsat[\s_-]*(\d)", value, re.I)
    if m:
        return _landsat_label(int(m.group(1)))
    name = mtf.canonical_sensor(value)
    return (name, name) if name is not None else (None, value)


def _landsat_from_name(path: str) -> SensorFound | None:
    """Landsat satellite and sensor from a Landsat product or scene id at the start of the file name."""
    base = os.path.basename(path)
    m = _LANDSAT_ID.match(base) or _LANDSAT_OLD_ID.match(base)
    if not m:
        return None
    name, label = _landsat_label(int(m.group(2)), m.group(1))
    return SensorFound(name, label, f"from the file name {base}")


def _mtl_beside(path: str) -> SensorFound | None:
    """SPACECRAFT_ID of a Landsat ``<product>_MTL.txt`` / ``_MTL.json`` beside a band file."""
    folder, base = os.path.split(os.path.abspath(path))
    stem = os.path.splitext(base)[0]
    m = _LANDSAT_ID.match(stem)
    prefixes = {m.group(0).upper()} if m else set()
    prefixes.add(_BAND_SUFFIX.sub("", stem).upper())
    try:
        names = os.listdir(folder)
    except OSError:
        return None
    for entry in sorted(names):
        stem_e, ext = os.path.splitext(entry)
        if ext.lower() not in (".txt", ".json") or not stem_e.upper().endswith("_MTL"):
            continue
        if stem_e[:-4].upper() not in prefixes:
            continue
        value = _read_spacecraft(os.path.join(folder, entry), ext.lower())
        found = _from_satellite_id(value) if value else None
        if found is not None:
            return SensorFound(found[0], found[1], f"from {entry}")
    return None


def _read_spacecraft(path: str, ext: str) -> str:
    """SPACECRAFT_ID of an MTL file ("" when unreadable or absent)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(1 << 20)
    except OSError:
        return ""
    if ext == ".json":
        try:
            return _find_key(json.loads(text), "SPACECRAFT_ID")
        except ValueError:
            return ""
    m = re.search(r"^\s*SPACECRAFT_ID\s*=\s*\"?([A-Za-z0-9_ -]+?)\"?\s*$", text, re.M)
    return m.group(1) if m else ""


def _find_key(tree: Any, key: str) -> str:
    """The first string value of ``key`` anywhere in a JSON tree ("" if none)."""
    if isinstance(tree, dict):
        if isinstance(tree.get(key), str):
            return str(tree[key])
        tree = list(tree.values())
    if isinstance(tree, list):
        for item in tree:
            found = _find_key(item, key)
            if found:
                return found
    return ""


def _from_gdal(path: str) -> SensorFound | None:
    """The sensor GDAL's metadata of the raster name (its IMAGERY domain holds what GDAL read from
    the vendor's IMD / DIMAP / MTL file beside it)."""
    try:
        ds = gdal.Open(path, gdal.GA_ReadOnly)
    except RuntimeError:
        return None
    if ds is None:
        return None
    base = os.path.basename(path)
    files = [os.path.basename(f) for f in (ds.GetFileList() or [])[1:]
             if not str(f).lower().endswith((".aux.xml", ".ovr", ".msk"))]
    # the vendor's metadata file first (IMD, MTL, DIMAP XML), not e.g. its RPC file
    sidecars = sorted(files, key=lambda f: not f.lower().endswith((".imd", ".txt", ".xml", ".json")))
    hits: list[tuple[str, str, str | None, str]] = []
    for domain, key in _SENSOR_KEYS:
        upper = {str(k).upper(): v for k, v in (ds.GetMetadata(domain) or {}).items()}
        value = str(upper.get(key, "") or "")
        if not value.strip():
            continue
        if (domain, key) in _SATELLITE_ID_KEYS:
            found = _from_satellite_id(value)
            if found is not None:
                hits.append((domain, key, *found))
        else:
            name = mtf.canonical_sensor(value)
            if name is not None:
                hits.append((domain, key, name, name))
    if not hits:
        return None
    domain, key, name, label = next((h for h in hits if h[2] is not None), hits[0])
    if domain in ("IMAGERY", "IMD") and sidecars:
        origin = f"from {sidecars[0]}"
    else:
        origin = f"from the {key} metadata of {base}"
    return SensorFound(name, label, origin)


def find_sensor(path: str) -> SensorFound | None:
    """The sensor a raster's metadata, a Landsat MTL beside it or its Landsat file name give.

    In that order: GDAL's metadata (IMAGERY, IMD, tags), ``<product>_MTL.txt`` / ``.json``,
    the Landsat product id at the start of the file name (``LC08_``, ``LE07_``, ``LT05_``...);
    for a VRT stack (``gdalbuildvrt -separate`` of band files), the same of its source files.

    Args:
        path: raster path (the MS, or the PAN of the same product).
    """
    return _from_gdal(path) or _mtl_beside(path) or _landsat_from_name(path) or _from_vrt_sources(path)


def _from_vrt_sources(path: str) -> SensorFound | None:
    """The sensor of the first source file of a VRT that names one (None: not a VRT, or none does)."""
    for src in dict.fromkeys(s for s in vrt_sources(path) if s):
        found = _from_gdal(src) or _mtl_beside(src) or _landsat_from_name(src)
        if found is not None:
            return SensorFound(found.name, found.label, f"{found.origin}, a source of {os.path.basename(path)}")
    return None


def sensor_from_metadata(path: str) -> str | None:
    """The ``core.mtf.SENSORS`` name :func:`find_sensor` gives, or None (nothing found, or a sensor
    the MTF table lacks).

    Args:
        path: raster path (the MS, or the PAN of the same product).
    """
    found = find_sensor(path)
    return found.name if found is not None else None


class SensorChoice(NamedTuple):
    """The sensor of a run (:func:`choose_sensor`)."""

    name: str | None  # ``core.mtf.SENSORS`` name of the MTF gains; None = the documented defaults
    how: str  # "metadata" (found: metadata, MTL, file name) | "chosen" | "default"
    label: str  # what the log calls it
    origin: str  # where it came from, for the log


def choose_sensor(sensor: str | None, inputs: RasterInputs) -> SensorChoice:
    """The sensor whose MTF gains a run uses, what it is and where that choice came from.

    Args:
        sensor: "auto" (the MS, then the PAN: :func:`find_sensor`; else the documented defaults),
            "unknown" / None (the defaults), or a sensor name (``core.mtf.SENSORS``, any spelling).
        inputs: the opened inputs (their paths are read for metadata).
    """
    if sensor is None or str(sensor).strip().lower() in ("", mtf.UNKNOWN):
        return SensorChoice(None, "default", "unknown", "no sensor given or found in the metadata")
    if str(sensor).strip().lower() == mtf.AUTO:
        for path in (inputs.ms_path, inputs.pan_path):
            found = find_sensor(path)
            if found is not None:
                origin = found.origin if found.name else f"{found.origin}; the MTF table has no gains for it"
                return SensorChoice(found.name, "metadata", found.label, origin)
        return SensorChoice(None, "default", "unknown", "no sensor given or found in the metadata")
    name = mtf.canonical_sensor(str(sensor))
    if name is None:
        raise PSDNetInputError(
            f"sensor {sensor!r} is unknown; use one of {', '.join(mtf.SENSOR_CHOICES)}.")
    return SensorChoice(name, "chosen", name, "as chosen")


def resolve_sensor(sensor: str | None, inputs: RasterInputs) -> tuple[str | None, str]:
    """The sensor whose MTF gains a run uses, and where that choice came from.

    Args:
        sensor: "auto" (the MS or PAN metadata, MTL file or Landsat file name, else the
            documented defaults), "unknown" / None (the defaults), or a sensor name
            (``core.mtf.SENSORS``, any spelling).
        inputs: the opened inputs (their paths are read for metadata).

    Returns:
        (``SENSORS`` name or None for the defaults, "metadata" | "chosen" | "default");
        :func:`choose_sensor` also says what was found and where.
    """
    choice = choose_sensor(sensor, inputs)
    return choice.name, choice.how
