"""PyTorch hidden from QGIS's Python, through ``qgis_process`` (a separate QGIS process, no PYTHONPATH):
the plugin loads, the classical methods run, psdnet:pansharpen names the installer; then (slow) the
headless installer puts a CPU torch from a local wheel folder into the profile's managed folder, after
which psdnet:pansharpen runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from osgeo import gdal

from psdnet_qgis.deps.paths import ENV_DEPS_DIR, MARKER, managed_dir
from tests.conftest import ROOT
from tests.rasters import make_pair

QGIS_PROCESS = shutil.which("qgis_process")
SYSTEM_PYTHON = "/usr/bin/python3"  # the Python Debian's qgis_process embeds
WHEELS = ROOT / "build" / "wheels"
pytestmark = pytest.mark.skipif(QGIS_PROCESS is None, reason="qgis_process not installed")


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory) -> Path:
    sys.path.insert(0, str(ROOT / "scripts"))
    from package import build_zip

    return build_zip(tmp_path_factory.mktemp("dist"))


def no_torch_env(plugin_zip: Path, tmp: Path) -> dict:
    """A qgis_process environment with a fresh profile and nothing on PYTHONPATH (torch hidden)."""
    from package import qgis_process_env

    if os.path.exists(SYSTEM_PYTHON) and subprocess.run(
            [SYSTEM_PYTHON, "-c", "import torch"], capture_output=True, timeout=120).returncode == 0:
        pytest.skip(f"{SYSTEM_PYTHON} imports torch by itself: it cannot be hidden from qgis_process")
    env = qgis_process_env(plugin_zip, tmp / "plugins", tmp / "profile", QGIS_PROCESS)
    env.pop("PYTHONPATH", None)
    env.pop(ENV_DEPS_DIR, None)
    return env


def run(env: dict, alg: str, *params: str, timeout: int = 300) -> tuple[int, str]:
    res = subprocess.run([QGIS_PROCESS, "run", alg, "--", *params], env=env, capture_output=True, text=True,
                         timeout=timeout)
    return res.returncode, res.stdout + res.stderr


def test_without_torch_plugin_loads_classical_runs_pansharpen_names_installer(plugin_zip, tmp_path):
    env = no_torch_env(plugin_zip, tmp_path)
    pan, ms = make_pair(tmp_path)
    code, text = run(env, "psdnet:classical", f"PAN={pan}", f"MS={ms}", "METHOD=gsa",
                     f"OUTPUT={tmp_path / 'gsa.tif'}")
    assert code == 0 and (tmp_path / "gsa.tif").exists(), text[-3000:]
    out = tmp_path / "ps.tif"
    code, text = run(env, "psdnet:pansharpen", f"PAN={pan}", f"MS={ms}", f"OUTPUT={out}")
    assert code != 0 and not out.exists()
    assert "PyTorch is not importable" in text and "psdnet:install_pytorch" in text, text[-3000:]
    assert "Traceback" not in text
    code, text = run(env, "psdnet:diagnostics")
    assert code == 0 and "torch: not importable" in text and "psdnet:install_pytorch" in text, text[-3000:]


def local_wheels() -> Path:
    """``build/wheels`` holding this venv's torch (a CPU build) and its dependencies, fetched once.

    pip's own configuration first (a cache, a mirror or a find-links folder), then PyTorch's CPU index.
    """
    torch = pytest.importorskip("torch")
    spec = f"torch=={torch.__version__}"
    WHEELS.mkdir(parents=True, exist_ok=True)
    tries = ([], ["--index-url", "https://download.pytorch.org/whl/cpu"])
    problems = []
    for extra in tries:
        res = subprocess.run([sys.executable, "-m", "pip", "download", spec, "-d", str(WHEELS), *extra],
                             capture_output=True, text=True, timeout=900)
        if res.returncode == 0:
            return WHEELS
        problems.append(res.stderr.strip().splitlines()[-1:] or ["?"])
    pytest.skip(f"could not download {spec} and its dependencies into {WHEELS}: {problems}")


@pytest.mark.slow
def test_headless_install_then_pansharpen_without_pythonpath(plugin_zip, tmp_path, zero_weights):
    import torch

    wheels = local_wheels()
    env = no_torch_env(plugin_zip, tmp_path)
    code, text = run(env, "psdnet:install_pytorch", "VARIANT=cpu", f"FIND_LINKS={wheels}", "OFFLINE=true",
                     f"SPEC=torch=={torch.__version__}", timeout=900)
    assert code == 0, text[-4000:]
    target = managed_dir(tmp_path / "profile" / "profiles" / "default", env={})
    assert (target / MARKER).is_file() and (target / "torch").is_dir(), text[-3000:]
    assert (target.parent / "install.log").is_file()
    assert "Usable now" in text
    pan, ms = make_pair(tmp_path)
    out = tmp_path / "ps.tif"
    code, text = run(env, "psdnet:pansharpen", f"PAN={pan}", f"MS={ms}", f"MODEL_FILE={zero_weights}",
                     "CALIBRATE=false", f"OUTPUT={out}", timeout=600)
    assert code == 0, text[-4000:]
    ds = gdal.Open(str(out))
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (192, 160, 4)
    code, text = run(env, "psdnet:diagnostics")
    assert code == 0 and f"torch: {torch.__version__} from {target / 'torch'} (managed folder)" in text, text[-3000:]
