"""psdnet-qgis: deep-learning pansharpening (PSDNet) as a QGIS Processing plugin.

This module stays cheap to import: no torch, no GDAL, no QGIS at import time.
"""

from __future__ import annotations

__version__ = "0.1.0"


def classFactory(iface):
    """QGIS plugin entry point; ``iface`` is None under ``qgis_process``."""
    from .plugin import PSDNetPlugin

    return PSDNetPlugin(iface)
