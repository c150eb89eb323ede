"""The run report of engine.run.pansharpen: typed, frozen, one dict / JSON form."""

from __future__ import annotations

import dataclasses
import json

import pytest

from psdnet_qgis.engine.run import PansharpenReport, pansharpen

KEYS = ["out", "method", "model", "model_version", "device", "ratio", "tiles", "tile", "overlap", "margin",
        "batch_size", "threads", "width", "height", "bands", "dtype", "nodata", "ms_warped", "seconds",
        "mpx_per_s", "rgb", "normalizer", "adaptation", "band_methods", "calibration"]


def test_report_is_a_frozen_dataclass_with_a_json_dict(pair, tmp_path):
    rep = pansharpen(*pair, tmp_path / "o.tif", method="gsa", tile=12, overlap=2)
    assert isinstance(rep, PansharpenReport)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rep.tiles = 0  # type: ignore[misc]
    d = rep.to_dict()
    assert list(d) == KEYS
    assert (d["method"], d["model"], d["ratio"], d["bands"], d["dtype"]) == ("gsa", "gsa", 4, 4, "UInt16")
    assert (d["width"], d["height"], d["batch_size"], d["threads"]) == (112, 96, 1, 1)
    assert d["tiles"] == rep.tiles > 1 and d["out"] == str((tmp_path / "o.tif").resolve())
    assert set(d["normalizer"]) >= {"ms_mean", "ms_std", "pan_mean", "pan_std"}
    assert json.loads(json.dumps(d)) == d


def test_a_model_without_true_colour_bands_reports_none(pair, tmp_path):
    """A custom model whose sidecar has no ``rgb``: the report says "unknown" (None), so QGIS
    does not try to style three bands it does not know."""
    torch = pytest.importorskip("torch")
    from psdnet_qgis.model.psdnet import PSDNet
    from psdnet_qgis.model.weights import save_model

    torch.manual_seed(0)
    path = tmp_path / "norgb.pt"
    save_model(PSDNet(4, 4, width=8), path, {"name": "norgb", "normalisation": "zscore4"})
    rep = pansharpen(*pair, tmp_path / "o.tif", model=str(path), calibrate=False)
    assert rep.model == "norgb" and rep.rgb is None
