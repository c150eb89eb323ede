"""`python -m psdnet_qgis`: exit codes, one-line errors, progress bar, models listing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from osgeo import gdal

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PSDNET_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "psdnet_qgis", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_bad_input_is_one_line_exit_2(tmp_path):
    p = cli("pansharpen", str(tmp_path / "nope.tif"), str(tmp_path / "ms.tif"), str(tmp_path / "o.tif"))
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: PAN input")
    assert "Traceback" not in p.stderr


def test_pansharpen_exp_writes_output_with_progress(pair, tmp_path):
    pan, ms = pair
    out = tmp_path / "o.tif"
    p = cli("pansharpen", str(pan), str(ms), str(out), "--method", "exp", "--tile", "12", "--overlap", "2",
            "--float32", "--json")
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert rep["tiles"] > 1 and rep["dtype"] == "Float32"
    assert "100%" in p.stderr or "100/100" in p.stderr  # tqdm bar reached the end
    assert gdal.Open(str(out)).RasterCount == 4


def test_models_lists_bundled_models():
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
