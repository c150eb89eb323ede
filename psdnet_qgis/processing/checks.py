"""Pre-run layer checks shared by every algorithm (messages name the layer and the fix)."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsProcessingAlgorithm, QgsProcessingContext, QgsRasterLayer

from .base import tr


def layer_problem(layer: QgsRasterLayer | None, role: str, required: bool = True) -> str | None:
    """Why ``layer`` cannot be read by the engine (GDAL), or None when it can."""
    if layer is None:
        return tr("The {} layer is missing: choose a readable raster layer.").format(role) if required else None
    if not layer.isValid():
        return tr("The {} layer '{}' is invalid: choose a readable raster layer.").format(role, layer.name())
    if layer.providerType() != "gdal":
        return tr(
            "{} layer '{}' comes from the '{}' provider; this algorithm reads files through GDAL. "
            "Save it as a GeoTIFF first (right-click > Export > Save As)."
        ).format(role, layer.name(), layer.providerType())
    return None


def chosen_band(alg: QgsProcessingAlgorithm, parameters: dict[str, Any], name: str,
                context: QgsProcessingContext) -> int | None:
    """The 1-based band chosen in the optional band parameter ``name``, or None when unset."""
    if parameters.get(name) in (None, "", 0):
        return None
    band = alg.parameterAsInt(parameters, name, context)
    return band if band > 0 else None


def pan_band_problem(pan: QgsRasterLayer, band: int | None) -> str | None:
    """A multi-band PAN needs an explicit band."""
    if pan.bandCount() > 1 and band is None:
        return tr(
            "PAN layer '{}' has {} bands: choose the panchromatic one in 'PAN band', "
            "or pick a single-band PAN layer."
        ).format(pan.name(), pan.bandCount())
    return None


def pan_ms_problem(alg: QgsProcessingAlgorithm, parameters: dict[str, Any], context: QgsProcessingContext,
                   pan_name: str = "PAN", band_name: str = "PAN_BAND", ms_name: str = "MS") -> str | None:
    """The first problem of an algorithm's PAN layer, its band choice and MS layer, or None."""
    pan = alg.parameterAsRasterLayer(parameters, pan_name, context)
    ms = alg.parameterAsRasterLayer(parameters, ms_name, context)
    return (layer_problem(pan, "PAN") or layer_problem(ms, "MS")
            or pan_band_problem(pan, chosen_band(alg, parameters, band_name, context)))

