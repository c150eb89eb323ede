"""The "Set-up" algorithms through real Processing: psdnet:diagnostics, psdnet:install_pytorch's
checks, a real (failing, offline) pip run, uninstall, and the managed folder's activation."""

from __future__ import annotations

import sys

import processing
import pytest
from qgis.core import Qgis, QgsApplication, QgsProcessingException, QgsProcessingFeedback
from qgis.PyQt.QtGui import QGuiApplication

from psdnet_qgis.deps.paths import ENV_DEPS_DIR, MARKER


class Collect(QgsProcessingFeedback):
    """Feedback keeping every message (reportError included) for the assertions."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []

    def pushInfo(self, info: str) -> None:
        self.text.append(info)

    def reportError(self, error: str, fatalError: bool = False) -> None:
        self.text.append(error)


@pytest.fixture
def deps_dir(tmp_path, monkeypatch):
    """A throwaway managed folder (``$PSDNET_DEPS_DIR``), off sys.path afterwards."""
    folder = tmp_path / "psdnet_deps" / "py3"
    monkeypatch.setenv(ENV_DEPS_DIR, str(folder))
    monkeypatch.setattr(sys, "path", list(sys.path))
    return folder


def test_setup_algorithms(psdnet_provider):
    for alg_id in ("psdnet:install_pytorch", "psdnet:diagnostics"):
        alg = QgsApplication.processingRegistry().algorithmById(alg_id)
        assert alg is not None and alg.group() == "Set-up" and alg.groupId() == "setup"
        assert alg.flags() & Qgis.ProcessingAlgorithmFlag.HideFromModeler
        assert not alg.flags() & Qgis.ProcessingAlgorithmFlag.NoThreading
    alg = QgsApplication.processingRegistry().algorithmById("psdnet:install_pytorch")
    assert {"VARIANT", "FIND_LINKS", "INDEX_URL", "OFFLINE", "UNINSTALL"} <= {
        p.name() for p in alg.parameterDefinitions()}
    assert "cpu" in alg.shortHelpString() and "Offline" in alg.shortHelpString()


def test_diagnostics_algorithm(psdnet_provider, deps_dir):
    text = processing.run("psdnet:diagnostics", {})["TEXT"]
    assert "PSDNet plugin: 0.1.0" in text
    assert f"QGIS: {Qgis.version()}" in text
    assert f"Managed folder: {deps_dir} (not installed" in text
    assert "torch: 2." in text and "(elsewhere)" in text  # the test venv's torch
    assert "Precision (auto): " in text and "CPU: " in text and "Device used (auto): " in text
    assert "psdnet_vhr4: 4 bands, ratio 4, sha256 " in text and " ok" in text


def test_diagnostics_dialog_copies_the_text(qgis_iface, psdnet_provider):
    from psdnet_qgis.plugin import PSDNetPlugin

    dialog = PSDNetPlugin(qgis_iface).diagnostics_dialog()
    text = dialog.text.toPlainText()
    assert text.startswith("PSDNet plugin:") and "Bundled models" in text
    QGuiApplication.clipboard().clear()
    dialog.copy_button.click()
    assert QGuiApplication.clipboard().text() == text


@pytest.mark.parametrize(("params", "fragment"), [
    ({"FIND_LINKS": "/no/such/wheels"}, "FIND_LINKS"),
    ({"INDEX_URL": "download.pytorch.org"}, "INDEX_URL"),
    ({"VARIANT": "rocm"}, "cuda"),
])
def test_install_bad_input(psdnet_provider, deps_dir, params, fragment):
    with pytest.raises(QgsProcessingException) as err:
        processing.run("psdnet:install_pytorch", params)
    assert fragment in str(err.value) and "Traceback" not in str(err.value)
    assert not deps_dir.exists()


def test_install_failure_names_what_to_try_and_the_log(psdnet_provider, deps_dir, tmp_path):
    """A real pip run (local wheels only, from an empty folder): a message with the fix and the log."""
    empty = tmp_path / "wheels"
    empty.mkdir()
    fb = Collect()
    with pytest.raises(QgsProcessingException) as err:
        processing.run("psdnet:install_pytorch", {"VARIANT": "cpu", "FIND_LINKS": str(empty), "OFFLINE": True,
                                                  "SPEC": "psdnet-no-such-package"}, feedback=fb)
    text = "\n".join(fb.text) + "\n" + str(err.value)
    assert "PyTorch was not installed" in text and "No matching distribution" in text, text
    assert "FIND_LINKS" in text and str(deps_dir.parent / "install.log") in text
    assert (deps_dir.parent / "install.log").is_file() and not deps_dir.exists()


def test_uninstall_removes_the_managed_folder(psdnet_provider, deps_dir):
    (deps_dir / "torch").mkdir(parents=True)
    (deps_dir / MARKER).write_text("{}", encoding="utf-8")
    res = processing.run("psdnet:install_pytorch", {"UNINSTALL": True})
    assert res["TARGET"] == str(deps_dir) and not deps_dir.exists()


def test_provider_load_puts_the_managed_folder_first(psdnet_provider, deps_dir):
    deps_dir.mkdir(parents=True)
    (deps_dir / MARKER).write_text("{}", encoding="utf-8")
    (deps_dir / "psdnet_probe_module.py").write_text("VALUE = 7\n", encoding="utf-8")
    psdnet_provider.refreshAlgorithms()
    assert sys.path[0] == str(deps_dir)
    import psdnet_probe_module

    assert psdnet_probe_module.VALUE == 7
    del sys.modules["psdnet_probe_module"]


class CancelAtFirstLine(Collect):
    """Presses Cancel as soon as the installer reports anything (pip is then stopped)."""

    def pushInfo(self, info: str) -> None:
        super().pushInfo(info)
        self.cancel()


def test_install_cancel_stops_pip_and_leaves_nothing(psdnet_provider, deps_dir, tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    fb = CancelAtFirstLine()
    with pytest.raises(QgsProcessingException) as err:
        processing.run("psdnet:install_pytorch", {"VARIANT": "cpu", "FIND_LINKS": str(wheels), "OFFLINE": True},
                       feedback=fb)
    text = "\n".join(fb.text) + str(err.value)
    assert "Cancelled by the user" in text, text
    assert not deps_dir.exists() and not (deps_dir.parent / "py3.partial").exists()
    assert "cancelled by the user" in (deps_dir.parent / "install.log").read_text(encoding="utf-8")
