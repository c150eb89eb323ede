"""``python -m psdnet_qgis doctor`` and ``install-torch`` (subprocesses, as a user runs them)."""

from __future__ import annotations

import subprocess
import sys

from psdnet_qgis.deps.paths import MARKER
from tests.conftest import ROOT


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "psdnet_qgis", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=env)


def test_doctor_prints_the_shared_diagnostics(tmp_path):
    res = cli("doctor", "--target", str(tmp_path / "deps"))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert out.startswith("PSDNet plugin: 0.1.0")
    assert "QGIS: not running inside QGIS" in out
    assert f"Managed folder: {tmp_path / 'deps'} (not installed" in out
    assert "torch: " in out and "Precision (auto): " in out and "sha256" in out


def test_install_torch_failure_is_one_line_exit_2(tmp_path):
    empty = tmp_path / "wheels"
    empty.mkdir()
    target = tmp_path / "deps" / "py3"
    res = cli("install-torch", "--target", str(target), "--variant", "cpu", "--offline", "--find-links", str(empty),
              "--spec", "psdnet-no-such-package")
    assert res.returncode == 2, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: pip could not install PyTorch") and "install.log" in last
    assert "Traceback" not in res.stderr and not target.exists()


def test_install_torch_uninstall(tmp_path):
    target = tmp_path / "py3"
    (target / "torch").mkdir(parents=True)
    (target / MARKER).write_text("{}", encoding="utf-8")
    res = cli("install-torch", "--target", str(target), "--uninstall")
    assert res.returncode == 0 and not target.exists(), res.stderr
