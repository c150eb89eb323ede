"""Fixtures for the QGIS tier: real QGIS 3.40 (pytest-qgis), real Processing, real GeoTIFFs."""

from __future__ import annotations

from pathlib import Path

import pytest
from qgis.core import QgsApplication

from tests.rasters import make_pair

_KEEP: list = []  # Python references keep registered providers (and their algorithms) alive


@pytest.fixture
def psdnet_provider(qgis_processing):
    """The plugin's provider, registered when missing (plugin tests unload it)."""
    from psdnet_qgis.processing.provider import PSDNetProvider

    registry = QgsApplication.processingRegistry()
    provider = registry.providerById("psdnet")
    if provider is None:
        provider = PSDNetProvider()
        assert registry.addProvider(provider)
        _KEEP.append(provider)
    return provider


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    """A 4-band ratio-4 uint16 pair: PAN 160 x 192, MS 40 x 48, EPSG:32631."""
    return make_pair(tmp_path)


@pytest.fixture(scope="session")
def zero_weights(tmp_path_factory) -> Path:
    """A real PSDNet (4 bands, ratio 4, narrow) whose heads are zeroed: output == bicubic MS."""
    from psdnet_qgis.model.psdnet import PSDNet
    from psdnet_qgis.model.weights import save_model

    model = PSDNet(bands=4, ratio=4, width=8)
    model.zero_residual_()
    path = tmp_path_factory.mktemp("weights") / "zero4.pt"
    save_model(model, path, {
        "name": "zero4", "bands": 4, "band_names": ["Blue", "Green", "Red", "NIR"], "rgb": [2, 1, 0],
        "ratio": 4, "width": 8, "normalisation": "zscore4", "version": "test", "sensor": "unknown",
        "training_scenes": [], "validation_scenes": [], "licence": "GPL-2.0-or-later",
        "description": "zero-residual test model",
    })
    return path
