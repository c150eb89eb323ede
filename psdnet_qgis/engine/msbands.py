"""Which MS band is which, from what the files say: band descriptions, a VRT's source files, the sensor.

``core.bands`` knows the names; this module reads them off the MS the way a user hands it over:

* band descriptions ("Blue", "NIR 1": any sensor; "B5", "Band 5", "SR_B5", "B5 (NIR)": read as
  Landsat band numbers when the run's sensor is a Landsat instrument);
* the source files of a VRT stack (``gdalbuildvrt -separate`` of ``LC08_..._B2.TIF`` ... or
  ``l8_B2.tif`` ...), whose bands have no descriptions: the band number of each band's file,
  read with the run's Landsat instrument (a ``_B5`` file of another sensor, Sentinel-2's B05 a red
  edge band, means something else, so a file name counts only for Landsat);
* else, with 8 bands and no Landsat sensor, the WorldView 8-band order (``core.bands.default_names``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import NamedTuple

from osgeo import gdal

from psdnet_qgis.core import bands as bandnames


class MSBandNames(NamedTuple):
    """The canonical names of the MS bands, where they came from, and how the log says so."""

    names: list[str] | None  # canonical names in the MS band order; None when unknown
    source: str  # "metadata" (band descriptions) | "files" (a VRT's source files) | "default" | ""
    how: str  # for the log: "from the band descriptions (Landsat 8/9 OLI band numbers)", ...


UNKNOWN = MSBandNames(None, "", "")

_SOURCE = re.compile(r"<SourceFilename([^>]*)>([^<]*)</SourceFilename>")
_SOURCE_BAND = re.compile(r"<SourceBand>\s*(\d+)\s*</SourceBand>")


def vrt_sources(path: str) -> list[str]:
    """Per band of a VRT, the file its pixels come from ("" when the raster is not a VRT, or the
    band has no single-band source file of its own: several files, or band k > 1 of a stack).

    Args:
        path: the raster (a ``.vrt`` from ``gdalbuildvrt -separate``, or anything else).
    """
    try:
        ds = gdal.Open(str(path), gdal.GA_ReadOnly)
    except RuntimeError:
        return []
    if ds is None or ds.GetDriver().ShortName != "VRT":
        return []
    folder = os.path.dirname(os.path.abspath(str(path)))
    out = []
    for b in range(1, ds.RasterCount + 1):
        sources = ds.GetRasterBand(b).GetMetadata("vrt_sources") or {}
        files = set()
        for xml in sources.values():
            m = _SOURCE.search(str(xml))
            sb = _SOURCE_BAND.search(str(xml))
            if m is None or (sb is not None and int(sb.group(1)) != 1):
                files.add("")
                continue
            name = m.group(2).strip()
            relative = 'relativetovrt="1"' in m.group(1).replace(" ", "").lower()
            files.add(os.path.normpath(os.path.join(folder, name)) if relative else name)
        out.append(files.pop() if len(files) == 1 else "")
    return out


def identify(descriptions: Sequence[str], n_bands: int, ms_path: str = "", sensor_label: str | None = None
             ) -> MSBandNames:
    """The canonical names of the MS bands and where they came from.

    In this order: Landsat band names (when ``sensor_label`` is a Landsat instrument) from the band
    descriptions, a band without one named by its VRT source file; the band descriptions in any
    sensor's words (``core.bands.names_from_metadata``); with no Landsat sensor, the WorldView
    8-band order for 8 bands.

    Args:
        descriptions: the MS band descriptions.
        n_bands: MS band count.
        ms_path: the MS file (its VRT sources are read); "" to skip.
        sensor_label: what the run's sensor is ("Landsat 8 OLI", "Landsat 7 ETM+", "WorldView-3"...,
            ``engine.sensor.SensorChoice.label``); None if unknown.
    """
    descriptions = list(descriptions) + [""] * (n_bands - len(descriptions))
    instrument = bandnames.landsat_instrument(sensor_label)
    if instrument is not None:
        label = bandnames.LANDSAT_INSTRUMENTS[instrument]
        names = bandnames.landsat_names(descriptions, instrument)
        if names is not None:
            return MSBandNames(names, "metadata", f"from the band descriptions ({label} bands)")
        sources = vrt_sources(ms_path) if ms_path else []
        if len(sources) == n_bands:
            texts = [d if bandnames.landsat_name(d, instrument) else os.path.basename(s)
                     for d, s in zip(descriptions, sources, strict=True)]
            names = bandnames.landsat_names(texts, instrument)
            if names is not None:
                return MSBandNames(names, "files", f"from the VRT's source file names ({label} band numbers)")
    names = bandnames.names_from_metadata(descriptions)
    if names is not None:
        return MSBandNames(names, "metadata", "from the band descriptions")
    names = bandnames.default_names(n_bands) if instrument is None else None
    if names is not None:
        return MSBandNames(names, "default", "WorldView 8-band order (the bands have no descriptions)")
    return UNKNOWN
