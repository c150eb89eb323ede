"""Classical pansharpening methods as a predictor of the tiled engine (numpy).

:class:`ClassicalPredictor` takes and returns normalised tiles like
``model.predictor.TorchPredictor`` so the ``core.classical`` methods run through exactly the
same tiling, padding, blending and writing as the network. :func:`choose_sensor` is the
``sensor="auto"`` of every run: the sensor of the MTF gains, what it is and where it came from.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from osgeo import gdal

from psdnet_qgis.core import classical, mtf
from psdnet_qgis.core.tiling import CLASSICAL_MARGIN
from psdnet_qgis.engine.gdalerr import first_line
from psdnet_qgis.engine.msbands import vrt_sources
from psdnet_qgis.engine.raster import RasterInputs
from psdnet_qgis.errors import PSDNetInputError

logger = logging.getLogger("psdnet_qgis.engine")

#: Classical statistics windows (when the global sample is decimated): up to this many a side...
FIT_WINDOWS = 8
#: ...of this many MS px each (plus :data:`CLASSICAL_MARGIN` of context on every side).
FIT_WINDOW = 32


class ClassicalPredictor:
    """Predictor-like adapter around a ``core.classical`` method.

    Takes and returns normalised arrays like ``TorchPredictor.predict``. Methods with image
    statistics (gsa, mtf_glp_hpm) get them once per raster (:meth:`from_inputs`, ``stats``)
    and only apply them per tile: per-tile statistics would make neighbouring tiles disagree
    by up to several band std (seams).
    """

    def __init__(self, method: str, normalizer: Any, ratio: int, stats: Any = None,
                 sensor: str | None = None) -> None:
        self.method = method
        self.fn: Callable[..., np.ndarray] = getattr(classical, method)
        self.normalizer = normalizer
        self.ratio = ratio
        #: Global coefficients (``classical.fit``); None for exp/brovey, or per tile (seams).
        self.stats = stats
        #: ``core.mtf.SENSORS`` name of the MTF gains the statistics were fitted with (None: defaults).
        self.sensor = sensor
        self.device_report = "cpu (numpy)"
        self.batch_size = 1

    @classmethod
    def from_inputs(cls, method: str, normalizer: Any, inputs: RasterInputs,
                    sample: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                    margin: int = CLASSICAL_MARGIN, sensor: str | None = None) -> ClassicalPredictor:
        """Fit the method's global statistics once for the raster, then return the predictor.

        The global sample (``inputs.read_sample()``, read once for the Normalizer) is used as
        is when it holds the whole raster at full resolution (then the result equals the
        one-call method on the whole image). Otherwise it is decimated by nearest neighbour:
        its PAN keeps all its (aliased) high frequencies and is not co-registered pixel for
        pixel with the MS, so it cannot give GSA's MTF-degraded-PAN regression nor HPM's
        low-pass PAN std. Those statistics then come from a grid of at most
        ``FIT_WINDOWS x FIT_WINDOWS`` full-resolution windows of ``FIT_WINDOW`` MS px (with a
        context margin that is filtered but not counted), read here: a few percent of the
        raster, not a second pass over it.

        Args:
            method: classical method name.
            normalizer: the raster's global Normalizer (fills nodata like the tiles do).
            inputs: opened inputs.
            sample: ``inputs.read_sample()`` result (ms, pan, ms_valid, pan_valid).
            margin: context margin of the windows in MS px.
            sensor: ``core.mtf.SENSORS`` name for the MTF gains (None = documented defaults),
                see :func:`resolve_sensor`.
        """
        r = inputs.ratio
        if method not in classical.FITTED:
            return cls(method, normalizer, r, sensor=sensor)
        s_ms, s_pan, s_mv, s_pv = sample
        fill_ms = normalizer.ms_mean.astype(np.float32)
        fill_pan = np.float32(normalizer.pan_mean)

        def prepared(ms_w: np.ndarray, ms_v: np.ndarray, pan_w: np.ndarray, pan_v: np.ndarray,
                     counted: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            ms_w, pan_w = ms_w.copy(), pan_w.copy()
            ms_w[:, ~ms_v] = fill_ms[:, None]
            pan_w[:, ~pan_v] = fill_pan
            h, w = ms_v.shape
            valid = counted & ms_v & pan_v.reshape(h, r, w, r).all(axis=(1, 3))
            return ms_w, pan_w, valid

        full = (s_ms.shape[1:] == (inputs.ms_height, inputs.ms_width)
                and s_pan.shape[1:] == (inputs.height, inputs.width))
        ms_l: list[np.ndarray]
        pan_l: list[np.ndarray]
        val_l: list[np.ndarray]
        if full:
            a, b, v = prepared(s_ms, s_mv, s_pan, s_pv, np.ones_like(s_mv))
            ms_l, pan_l, val_l = [a], [b], [v]
            where = "the whole raster"
        else:
            ms_l, pan_l, val_l = [], [], []
            m = int(margin)
            for r0 in _window_starts(inputs.ms_height):
                for c0 in _window_starts(inputs.ms_width):
                    hh, ww = min(FIT_WINDOW, inputs.ms_height), min(FIT_WINDOW, inputs.ms_width)
                    try:
                        ms_w, ms_v = inputs.read_ms(r0 - m, c0 - m, hh + 2 * m, ww + 2 * m)
                        pan_w, pan_v = inputs.read_pan((r0 - m) * r, (c0 - m) * r, (hh + 2 * m) * r,
                                                       (ww + 2 * m) * r)
                    except RuntimeError as exc:
                        raise PSDNetInputError(
                            f"Inputs '{inputs.pan_path}' / '{inputs.ms_path}': read failed at MS row "
                            f"{r0}, col {c0} ({first_line(exc)}); the file is damaged: copy it again."
                        ) from None
                    counted = np.zeros(ms_v.shape, dtype=bool)
                    counted[m:m + hh, m:m + ww] = True  # margins: filter context only
                    a, b, v = prepared(ms_w, ms_v, pan_w, pan_v, counted)
                    if v.any():
                        ms_l.append(a)
                        pan_l.append(b)
                        val_l.append(v)
            if not ms_l:
                raise PSDNetInputError(
                    f"Inputs '{inputs.pan_path}' / '{inputs.ms_path}': no valid pixel in the "
                    f"statistics windows of {method}; check the nodata values, or use method 'psdnet', "
                    "'brovey' or 'exp'."
                )
            where = f"{len(ms_l)} full-resolution windows of {FIT_WINDOW} MS px"
        stats = classical.fit(method, ms_l, pan_l, r, sensor=sensor, valid=val_l)
        logger.info("%s statistics from %s: %s", method, where, stats.to_dict())
        return cls(method, normalizer, r, stats=stats, sensor=sensor)

    def predict(self, ms: np.ndarray, pan: np.ndarray) -> np.ndarray:
        """(B, C, h, w), (B, 1, H, W) normalised -> (B, C, H, W) normalised float32."""
        out = []
        for b in range(ms.shape[0]):
            ms_p = self.normalizer.denorm_ms(ms[b])
            pan_p = self.normalizer.denorm_pan(pan[b])
            if self.stats is None:
                fused = self.fn(ms_p, pan_p, self.ratio)
            else:
                fused = classical.apply(self.method, ms_p, pan_p, self.ratio, self.stats)
            out.append(self.normalizer.norm_ms(np.asarray(fused, dtype=np.float32)))
        return np.stack(out)


def _window_starts(size: int) -> list[int]:
    """Origins of up to FIT_WINDOWS evenly spread windows of FIT_WINDOW px along one axis."""
    win = min(FIT_WINDOW, size)
    n = max(1, min(FIT_WINDOWS, size // win))
    return sorted({min(max(int(round((k + 0.5) * size / n - win / 2)), 0), size - win) for k in range(n)})


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
