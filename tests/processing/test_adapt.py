"""``psdnet:adapt`` and ADAPT_SECONDS of ``psdnet:pansharpen`` through real Processing runs."""

from __future__ import annotations

import json
from pathlib import Path

import processing
import pytest
from osgeo import gdal

from tests.rasters import make_pair

gdal.UseExceptions()


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # 2 shared cores: two torch threads beside other jobs make each adaptation step crawl
    monkeypatch.setenv("PSDNET_THREADS", "1")


@pytest.fixture
def scene(tmp_path: Path) -> tuple[Path, Path]:
    """64 x 64 MS px: room for the 32-px adaptation crops (3 train + 1 held out)."""
    return make_pair(tmp_path, ms_shape=(64, 64), bands=4, ratio=4, seed=3)


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory) -> Path:
    """A seeded, untrained narrow PSDNet: adaptation has something to improve on."""
    import torch

    from psdnet_qgis.model.psdnet import PSDNet
    from psdnet_qgis.model.weights import save_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "rand4.pt"
    save_model(PSDNet(4, 4, width=8), path, {"name": "rand4", "rgb": [2, 1, 0]})
    return path


@pytest.mark.slow
def test_adapt_writes_weights_that_pansharpen_loads(psdnet_provider, random_weights, tmp_path, monkeypatch):
    from psdnet_qgis.engine import adaptation
    from psdnet_qgis.model.weights import load_model, sha256_file

    # What is tested here is writing and loading the weights through Processing, so the whole-scene
    # check (tests/engine/test_adaptation.py) is told to keep the copy: 20 steps of a random narrow
    # network do not beat its calibrated original on any synthetic scene tried.
    monkeypatch.setattr(adaptation, "scene_check", lambda *a, **k: (True, "kept for this test", {}, {}))
    pan, ms = make_pair(tmp_path, seed=0)
    zero_weights = random_weights
    out = tmp_path / "adapted.pt"
    res = processing.run("psdnet:adapt", {"PAN": str(pan), "MS": str(ms), "MODEL_FILE": str(zero_weights),
                                          "SECONDS": 120, "MAX_STEPS": 20, "LOSSES": "fullres", "OUTPUT": str(out)})
    meta = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert res["SHA256"] == meta["sha256"] == sha256_file(out)
    assert meta["base_model"] == "rand4" and meta["adaptation"]["budget_seconds"] == 120
    assert meta["adaptation"]["steps"] == 20  # a fixed count: the same weights on any machine
    load_model(out)
    fused = tmp_path / "fused.tif"
    processing.run("psdnet:pansharpen", {"PAN": str(pan), "MS": str(ms), "MODEL_FILE": str(out),
                                         "OUTPUT": str(fused)})
    assert gdal.Open(str(fused)).RasterXSize == gdal.Open(str(pan)).RasterXSize


@pytest.mark.slow
def test_pansharpen_adapt_seconds(psdnet_provider, scene, zero_weights, tmp_path):
    from qgis.core import QgsProcessingFeedback

    class Log(QgsProcessingFeedback):
        lines: list[str] = []

        def pushInfo(self, info: str) -> None:
            self.lines.append(info)

    pan, ms = scene
    fb = Log()
    processing.run("psdnet:pansharpen", {"PAN": str(pan), "MS": str(ms), "MODEL_FILE": str(zero_weights),
                                         "ADAPT_SECONDS": 4, "OUTPUT": str(tmp_path / "o.tif")}, feedback=fb)
    assert any(line.startswith("Adaptation (head, both)") for line in fb.lines), fb.lines
