"""Auto keeps the full model; "auto_fast" picks the distilled fast model (issue 11)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from psdnet_qgis.core import registry


def _write(d: Path, name: str, bands: int, ratio: int) -> None:
    (d / f"{name}.json").write_text(json.dumps({"name": name, "bands": bands, "ratio": ratio,
                                                "version": "1.0"}))


@pytest.fixture
def models(tmp_path: Path) -> Path:
    _write(tmp_path, "psdnet_vhr4", 4, 4)
    _write(tmp_path, "psdnet_vhr4_fast", 4, 4)
    _write(tmp_path, "psdnet_landsat3", 3, 2)
    return tmp_path


def test_auto_keeps_the_full_model(models: Path) -> None:
    assert registry.auto_select(4, 4, models).name == "psdnet_vhr4"
    assert registry.auto_select(3, 2, models).name == "psdnet_landsat3"


def test_auto_fast_picks_the_fast_model_or_falls_back(models: Path) -> None:
    assert registry.auto_select(4, 4, models, fast=True).name == "psdnet_vhr4_fast"
    # no fast model for these bands and ratio: the full one
    assert registry.auto_select(3, 2, models, fast=True).name == "psdnet_landsat3"
    assert registry.is_fast(registry.get_model("psdnet_vhr4_fast", models))
    assert "auto_fast" in registry.AUTO_CHOICES
