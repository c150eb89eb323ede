"""Training of the bundled PSDNet models (``python -m psdnet_qgis.training``; ``make train``)."""
