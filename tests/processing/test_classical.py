"""``psdnet:classical`` through Processing: every method, same grid as PSDNet, no torch needed."""

from __future__ import annotations

import numpy as np
import processing
import pytest
from osgeo import gdal

from psdnet_qgis.processing.classical_algorithm import METHODS


@pytest.mark.parametrize("index", range(len(METHODS)))
def test_each_method_on_pan_grid(psdnet_provider, pair, tmp_path, index):
    pan, ms = pair
    out = tmp_path / f"{METHODS[index][0]}.tif"
    processing.run("psdnet:classical", {"PAN": str(pan), "MS": str(ms), "METHOD": index, "OUTPUT": str(out)})
    o, p = gdal.Open(str(out)), gdal.Open(str(pan))
    assert (o.RasterXSize, o.RasterYSize, o.RasterCount) == (p.RasterXSize, p.RasterYSize, 4)
    np.testing.assert_allclose(o.GetGeoTransform(), p.GetGeoTransform())
    assert o.GetRasterBand(1).DataType == gdal.GDT_UInt16
    data = o.ReadAsArray().astype(np.float64)
    ms_mean = gdal.Open(str(ms)).ReadAsArray().astype(np.float64).mean(axis=(1, 2))
    np.testing.assert_allclose(data.mean(axis=(1, 2)), ms_mean, rtol=0.15)
