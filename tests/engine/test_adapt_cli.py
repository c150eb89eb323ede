"""`python -m psdnet_qgis adapt` and `pansharpen --adapt-seconds`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.rasters import make_pair

pytestmark = pytest.mark.slow  # two CLI runs with adaptation each (15-20 s)


def _random_weights(path: Path) -> Path:
    import torch

    from psdnet_qgis.model.psdnet import PSDNet
    from psdnet_qgis.model.weights import save_model

    torch.manual_seed(0)
    save_model(PSDNet(4, 4, width=8), path, {"name": "rand4"})
    return path


def test_adapt_through_the_cli_writes_nothing_when_the_check_refuses(cli, tmp_path: Path) -> None:
    """20 steps of a random narrow network: the held-out crops improve (0.874 -> 0.935), but judged
    calibrated on the whole scene (engine.adaptation.scene_check) HQNR and D_s get worse: exit 2,
    a message naming the input and the way out, no weights. Saving and reusing a kept copy:
    tests/engine/test_adaptation.py and tests/processing/test_adapt.py."""
    pan, ms = make_pair(tmp_path, ms_shape=(40, 48), bands=4, ratio=4, seed=0)
    weights = _random_weights(tmp_path / "rand4.pt")
    out = tmp_path / "mine.pt"
    p = cli("adapt", str(pan), str(ms), str(out), "--model", str(weights), "--seconds", "120",
            "--max-steps", "20", "--losses", "fullres", "--json", "--quiet")
    assert p.returncode == 2, p.stderr
    assert "calibrated as the run" in p.stderr and "HQNR" in p.stderr and str(ms) in p.stderr
    assert "no weights were written" in p.stderr and "Traceback" not in p.stderr
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_pansharpen_adapt_seconds_reports_adaptation(cli, tmp_path: Path) -> None:
    pan, ms = make_pair(tmp_path, ms_shape=(64, 64), bands=4, ratio=4, seed=3)
    weights = _random_weights(tmp_path / "rand4.pt")
    p = cli("pansharpen", str(pan), str(ms), str(tmp_path / "o.tif"), "--model", str(weights),
            "--adapt-seconds", "3", "--json", "--quiet")
    assert p.returncode == 0, p.stderr
    a = json.loads(p.stdout)["adaptation"]
    assert a["steps"] >= 1 and a["budget_seconds"] == 3
