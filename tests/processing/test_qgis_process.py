"""The plugin from the command line: ``qgis_process run psdnet:pansharpen`` (a separate QGIS process)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from osgeo import gdal

from tests.conftest import ROOT

QGIS_PROCESS = shutil.which("qgis_process")
# every test starts a QGIS of its own (3-19 s each)
pytestmark = [pytest.mark.skipif(QGIS_PROCESS is None, reason="qgis_process not installed"), pytest.mark.slow]


@pytest.fixture(scope="module")
def qgis_env(tmp_path_factory) -> dict:
    sys.path.insert(0, str(ROOT / "scripts"))
    from package import build_zip, qgis_process_env

    # Install the real plugin zip, as QGIS's "Install from ZIP" does: unpack into a plugin folder.
    zip_path = build_zip(tmp_path_factory.mktemp("dist"))
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
    assert all(n.startswith("psdnet_qgis/") for n in names)
    assert "psdnet_qgis/metadata.txt" in names and "psdnet_qgis/LICENSE" in names
    assert not any("/tests/" in n for n in names)
    return qgis_process_env(zip_path, tmp_path_factory.mktemp("plugins"),
                            tmp_path_factory.mktemp("qgis_profile"), QGIS_PROCESS)


def test_qgis_process_lists_and_runs(qgis_env, tmp_path, zero_weights):
    from tests.rasters import make_pair

    pan, ms = make_pair(tmp_path)
    res = subprocess.run([QGIS_PROCESS, "list"], env=qgis_env, capture_output=True, text=True, timeout=300)
    assert "psdnet:pansharpen" in res.stdout, res.stdout[-2000:] + res.stderr[-2000:]
    out = tmp_path / "cli.tif"
    res = subprocess.run([QGIS_PROCESS, "run", "psdnet:pansharpen", "--",
                          f"PAN={pan}", f"MS={ms}", f"MODEL_FILE={zero_weights}", f"OUTPUT={out}"],
                         env=qgis_env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    ds = gdal.Open(str(out))
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (192, 160, 4)
    assert np.isfinite(ds.ReadAsArray()).all()
    assert "Calibration on the scene degraded by the ratio" in res.stdout + res.stderr  # the default
    off = tmp_path / "off.tif"
    res = subprocess.run([QGIS_PROCESS, "run", "psdnet:pansharpen", "--", f"PAN={pan}", f"MS={ms}",
                          f"MODEL_FILE={zero_weights}", "CALIBRATE=false", f"OUTPUT={off}"],
                         env=qgis_env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "Calibration on the scene" not in res.stdout + res.stderr


def test_qgis_process_bad_input_message(qgis_env, tmp_path):
    from tests.rasters import make_pair

    pan, ms = make_pair(tmp_path)
    res = subprocess.run([QGIS_PROCESS, "run", "psdnet:pansharpen", "--",
                          f"PAN={pan}", f"MS={pan}", f"OUTPUT={tmp_path / 'x.tif'}"],
                         env=qgis_env, capture_output=True, text=True, timeout=300)
    assert res.returncode != 0
    assert "single band" in (res.stdout + res.stderr)
    assert "Traceback" not in (res.stdout + res.stderr)
    assert not (tmp_path / "x.tif").exists()


def test_qgis_process_classical_then_assess(qgis_env, tmp_path):
    from tests.rasters import make_pair

    pan, ms = make_pair(tmp_path)
    fused = tmp_path / "gsa.tif"
    res = subprocess.run([QGIS_PROCESS, "run", "psdnet:classical", "--",
                          f"PAN={pan}", f"MS={ms}", "METHOD=0", f"OUTPUT={fused}"],
                         env=qgis_env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    html = tmp_path / "report.html"
    res = subprocess.run([QGIS_PROCESS, "run", "psdnet:assess", "--",
                          f"FUSED={fused}", f"PAN={pan}", f"MS={ms}", f"OUTPUT_HTML={html}"],
                         env=qgis_env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "QNR" in res.stdout and html.exists()


def test_qgis_process_bundled_model_by_id(qgis_env, tmp_path):
    """``MODEL=psdnet_vhr4``: the documented command line, with the bundled model picked by id."""
    from psdnet_qgis.core.registry import list_models
    from tests.rasters import make_pair

    if "psdnet_vhr4" not in [m.name for m in list_models()]:
        pytest.skip("psdnet_vhr4 is not bundled")
    pan, ms = make_pair(tmp_path)
    out = tmp_path / "vhr4.tif"
    res = subprocess.run([QGIS_PROCESS, "run", "psdnet:pansharpen", "--", f"PAN={pan}", f"MS={ms}",
                          "MODEL=psdnet_vhr4", "DEVICE=cpu", f"OUTPUT={out}"],
                         env=qgis_env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    ds = gdal.Open(str(out))
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (192, 160, 4)


def test_qgis_process_unknown_model_lists_the_ids(qgis_env, tmp_path):
    from tests.rasters import make_pair

    res = subprocess.run([QGIS_PROCESS, "help", "psdnet:pansharpen"],
                         env=qgis_env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "psdnet_vhr4" in res.stdout, res.stdout[-3000:] + res.stderr[-3000:]
    pan, ms = make_pair(tmp_path)
    out = tmp_path / "x.tif"
    res = subprocess.run([QGIS_PROCESS, "run", "psdnet:pansharpen", "--", f"PAN={pan}", f"MS={ms}",
                          "MODEL=psdnet_vhr5", f"OUTPUT={out}"],
                         env=qgis_env, capture_output=True, text=True, timeout=300)
    text = res.stdout + res.stderr
    assert res.returncode != 0
    assert "MODEL" in text and "'psdnet_vhr5'" in text and "psdnet_vhr4" in text, text[-3000:]
    assert "Traceback" not in text
    assert not out.exists()


def test_qgis_process_eight_band_ms(qgis_env, tmp_path, zero_weights):
    from tests.rasters import write_worldview

    pan, ms = write_worldview(tmp_path)
    out = tmp_path / "wv8.tif"
    res = subprocess.run([QGIS_PROCESS, "run", "psdnet:pansharpen", "--", f"PAN={pan}", f"MS={ms}",
                          f"MODEL_FILE={zero_weights}", "MODEL_BANDS=2,3,5,7", "OTHER_METHOD=mtf_glp_hpm",
                          f"OUTPUT={out}"], env=qgis_env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert gdal.Open(str(out)).RasterCount == 8
    assert "by mtf_glp_hpm" in res.stdout + res.stderr


def test_qgis_process_landsat_seven_band_vrt(qgis_env, tmp_path):
    """A VRT of Landsat 8 band files B1-B7: Auto's psdnet_landsat3 on blue, green, red, MTF-GLP-FS on
    the others, calibrated without PAN detail on SWIR; one small run (qgis_process is slow)."""
    from psdnet_qgis.core.registry import list_models
    from tests.rasters import LANDSAT7, write_landsat

    if "psdnet_landsat3" not in [m.name for m in list_models()]:
        pytest.skip("psdnet_landsat3 is not bundled")
    files = write_landsat(tmp_path, shape=(32, 32))
    out = tmp_path / "l7.tif"
    res = subprocess.run([QGIS_PROCESS, "run", "psdnet:pansharpen", "--", f"PAN={files['pan']}",
                          f"MS={files['ms7']}", "DEVICE=cpu", f"OUTPUT={out}"],
                         env=qgis_env, capture_output=True, text=True, timeout=600)
    text = res.stdout + res.stderr
    assert res.returncode == 0, text[-3000:]
    ds = gdal.Open(str(out))
    assert [ds.GetRasterBand(b).GetDescription() for b in range(1, 8)] == list(LANDSAT7)
    assert "bands 1, 5, 6, 7 (coastal, nir, swir1, swir2) by mtf_glp_fs" in text, text[-3000:]
    assert "swir1, swir2: no PAN detail" in text
