"""Plugin contract: provider, plugin life cycle through qgis.utils, cheap import."""

from __future__ import annotations

import subprocess
import sys

import qgis.utils
from qgis.core import Qgis, QgsApplication

from tests.conftest import ROOT


def test_import_is_cheap():
    code = ("import sys, psdnet_qgis; from psdnet_qgis.core import registry; "
            "bad = [m for m in ('torch', 'osgeo', 'rasterio', 'qgis') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_provider_contract(psdnet_provider):
    assert psdnet_provider.id() == "psdnet"
    assert psdnet_provider.name() == "PSDNet"
    assert not psdnet_provider.icon().isNull()
    ids = sorted(a.id() for a in psdnet_provider.algorithms())
    assert ids == ["psdnet:adapt", "psdnet:assess", "psdnet:classical", "psdnet:diagnostics",
                   "psdnet:install_pytorch", "psdnet:pansharpen"]
    alg = QgsApplication.processingRegistry().algorithmById("psdnet:pansharpen")
    assert alg.displayName() == "Pansharpen (PSDNet)"
    assert "classical" in alg.shortHelpString()
    # Runs in Processing's background thread: never FlagNoThreading.
    assert not alg.flags() & Qgis.ProcessingAlgorithmFlag.NoThreading


def test_plugin_load_initgui_unload(qgis_iface, qgis_processing):
    registry = QgsApplication.processingRegistry()
    if registry.providerById("psdnet") is not None:  # another test's instance
        registry.removeProvider(registry.providerById("psdnet"))
    assert qgis.utils.loadPlugin("psdnet_qgis")
    assert qgis.utils.startPlugin("psdnet_qgis")
    plugin = qgis.utils.plugins["psdnet_qgis"]
    assert registry.providerById("psdnet") is not None
    assert plugin.action is not None and plugin.action.text().startswith("Pansharpen (PSDNet)")
    assert [a.text() for a in plugin.menu_actions] == ["Install PyTorch…", "About / diagnostics…"]
    menus = [c.args for c in qgis_iface.addPluginToRasterMenu.call_args_list]
    assert ("&PSDNet", plugin.menu_actions[0]) in menus and ("&PSDNet", plugin.menu_actions[1]) in menus
    qgis_iface.addRasterToolBarIcon.assert_called()
    assert qgis.utils.unloadPlugin("psdnet_qgis")
    assert registry.providerById("psdnet") is None
    qgis_iface.removePluginRasterMenu.assert_called()
    assert qgis_iface.removePluginRasterMenu.call_count >= 3
    qgis_iface.removeRasterToolBarIcon.assert_called()


def test_headless_plugin_without_iface(qgis_processing):
    import psdnet_qgis

    registry = QgsApplication.processingRegistry()
    if registry.providerById("psdnet") is not None:
        registry.removeProvider(registry.providerById("psdnet"))

    plugin = psdnet_qgis.classFactory(None)
    plugin.initProcessing()
    plugin.initProcessing()  # idempotent
    plugin.initGui()  # no iface: registers the provider only
    assert QgsApplication.processingRegistry().providerById("psdnet") is plugin.provider
    plugin.unload()
    assert QgsApplication.processingRegistry().providerById("psdnet") is None
