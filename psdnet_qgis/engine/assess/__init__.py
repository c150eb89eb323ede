"""Quality assessment of a pansharpened raster (GDAL + numpy; never torch, never qgis).

- :mod:`.quality`: ``assess`` (full- and reduced-resolution metrics, whole or sampled);
- :mod:`.ongrid`: the rasters placed and read on the engine's output grid;
- :mod:`.pooling`: per-window statistics pooled before the metrics are formed;
- :mod:`.report`: the HTML report; :mod:`.quicklook`: MS-up | fused | PAN PNGs.
"""
