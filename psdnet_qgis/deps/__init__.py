"""PyTorch for QGIS's own Python: the managed folder, the pip installer and the diagnostics.

Standard library only (plus ``core`` for the model registry): this layer runs before torch is
importable, from the Processing glue (``psdnet:install_pytorch``, ``psdnet:diagnostics``), the
plugin menu and the command line (``python -m psdnet_qgis doctor`` / ``install-torch``).
torch and ``model`` are imported only inside the diagnostics functions that report on them.
"""
