"""`python -m psdnet_qgis`: exit codes, one-line errors, progress bar, models listing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from osgeo import gdal

ROOT = Path(__file__).resolve().parents[2]


def test_bad_input_is_one_line_exit_2(cli, tmp_path):
    p = cli("pansharpen", str(tmp_path / "nope.tif"), str(tmp_path / "ms.tif"), str(tmp_path / "o.tif"))
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: PAN input")
    assert "Traceback" not in p.stderr


def test_pansharpen_exp_writes_output_with_progress(cli, pair, tmp_path):
    pan, ms = pair
    out = tmp_path / "o.tif"
    p = cli("pansharpen", str(pan), str(ms), str(out), "--method", "exp", "--tile", "12", "--overlap", "2",
            "--float32", "--json")
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert rep["tiles"] > 1 and rep["dtype"] == "Float32"
    assert "100%" in p.stderr or "100/100" in p.stderr  # tqdm bar reached the end
    assert gdal.Open(str(out)).RasterCount == 4


def test_models_lists_bundled_models(cli):
    p = cli("models")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip()


def test_import_package_is_light():
    code = ("import sys, psdnet_qgis, psdnet_qgis.engine.feedback; "
            "bad = [m for m in ('torch', 'osgeo', 'qgis') if m in sys.modules]; "
            "assert not bad, bad")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert p.returncode == 0, p.stderr


def test_classical_methods_do_not_need_torch(pair, tmp_path):
    pan, ms = pair
    code = (f"import sys; from psdnet_qgis.engine.run import pansharpen; "
            f"pansharpen({str(pan)!r}, {str(ms)!r}, {str(tmp_path / 'o.tif')!r}, method='gsa'); "
            "assert 'torch' not in sys.modules")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert p.returncode == 0, p.stderr


@pytest.mark.slow
def test_eight_band_model_bands_and_sigterm_removes_output(cli, tmp_path):
    """--model-bands / --other-bands-method reach the engine; a SIGTERM mid-run leaves no output."""
    import signal
    import time

    pytest.importorskip("torch")
    from tests.rasters import write_worldview

    pan, ms = write_worldview(tmp_path)
    out = tmp_path / "o8.tif"
    p = cli("pansharpen", str(pan), str(ms), str(out), "--model-bands", "2,3,5,7",
            "--other-bands-method", "gsa", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["band_methods"] == {"psdnet_vhr4": [2, 3, 5, 7], "gsa": [1, 4, 6, 8]}
    p = cli("pansharpen", str(pan), str(ms), str(out), "--model-bands", "2,3")
    assert p.returncode == 2 and "Model bands" in p.stderr

    # a bigger run, terminated once its output exists
    from tests.rasters import make_pair

    bpan, bms = make_pair(tmp_path, ms_shape=(200, 200), name="big")
    big = tmp_path / "big.tif"
    env = dict(os.environ, OMP_NUM_THREADS="1", PSDNET_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "psdnet_qgis", "pansharpen", str(bpan), str(bms), str(big),
                             "--quiet"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    while not big.exists() and time.monotonic() - t0 < 120 and proc.poll() is None:
        time.sleep(0.1)
    assert big.exists(), "the run never created its output"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "cancelled" in err, err
    assert not big.exists()


@pytest.mark.slow
def test_calibration_is_the_default_and_no_calibrate_switches_it_off(cli, tmp_path):
    from tests.rasters import make_pair

    pan, ms = make_pair(tmp_path, ms_shape=(48, 48), seed=4)
    reports = {}
    for flag in ((), ("--no-calibrate",)):
        out = tmp_path / f"o{len(flag)}.tif"
        p = cli("pansharpen", str(pan), str(ms), str(out), "--model", "psdnet_vhr4_fast", "--json", *flag)
        assert p.returncode == 0, p.stderr
        reports[flag] = json.loads(p.stdout)
    cal = reports[()]["calibration"]
    assert cal["candidates"] == ["psdnet_vhr4_fast", "mtf_glp_fs", "mtf_glp_hpm", "gsa"] and len(cal["weights"]) == 4
    assert "calibrated" in cal["reduced_resolution"]
    assert reports[("--no-calibrate",)]["calibration"] is None
