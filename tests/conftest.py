"""Test-wide settings: small thread counts (2-core CI machine), repository on sys.path, and the
``qgis`` / ``gpu`` markers set from what a test uses (pyproject.toml registers them)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: pytest-qgis fixtures every test gets (its autouse qgis_app and qgis_show_map, and what they
#: request): not a sign that a test needs QGIS.
_AUTOUSE_QGIS = {"qgis_app", "qgis_show_map", "qgis_iface", "qgis_parent"}
_QGIS_TIER = ROOT / "tests" / "processing"


def _needs_qgis(item: pytest.Item) -> bool:
    """A QGIS test: in the processing tier, or using a QGIS fixture (pytest-qgis' qgis_*, the
    registered provider, the qgis_process environment)."""
    if _QGIS_TIER in Path(str(item.fspath)).parents:
        return True
    names = set(getattr(item, "fixturenames", ())) - _AUTOUSE_QGIS
    return any(n.startswith("qgis_") or n == "psdnet_provider" for n in names)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark QGIS tests ``qgis`` (``-m "not qgis"`` runs the pure, torch and GDAL tiers), and skip
    ``gpu`` tests where torch sees no CUDA device."""
    gpu_items = []
    for item in items:
        if _needs_qgis(item):
            item.add_marker(pytest.mark.qgis)
        if item.get_closest_marker("gpu") is not None:
            gpu_items.append(item)
    if gpu_items:
        try:
            import torch

            cuda = bool(torch.cuda.is_available())
        except ImportError:
            cuda = False
        if not cuda:
            for item in gpu_items:
                item.add_marker(pytest.mark.skip(reason="gpu: torch sees no CUDA device"))
