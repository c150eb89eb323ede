"""Slim models (model/slim.py) through the engine: zero residual -> bicubic whatever the tiling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from psdnet_qgis.engine.run import pansharpen
from psdnet_qgis.model.psdnet import PSDNet
from psdnet_qgis.model.slim import slim
from tests.helpers import bicubic_reference, read

MARGIN = 8


@pytest.fixture(scope="module")
def zero_slim():
    torch.manual_seed(0)
    return slim(PSDNet(4, 4, width=16).zero_residual_().eval(), 8)


@pytest.mark.parametrize("tile,overlap", [(12, 4), (64, 8)])
def test_zero_residual_slim_model_tiled_equals_whole(pair, zero_slim, tmp_path, tile, overlap):
    pan, ms = pair
    out = tmp_path / f"slim_{tile}.tif"
    pansharpen(pan, ms, out, model=zero_slim, tile=tile, overlap=overlap, out_dtype="float32",
               device="cpu", margin=MARGIN, precision="fp32", calibrate=False)
    # float32 rounding only (values up to 2047: 1 ulp = 1.2e-4), the same bound as the full model
    np.testing.assert_allclose(read(out), bicubic_reference(read(ms), 4, MARGIN), rtol=0, atol=2e-3)


def test_auto_keeps_the_full_model_and_auto_fast_picks_the_fast_one(tmp_path):
    from psdnet_qgis.core.registry import list_models
    from tests.rasters import make_pair

    names = [m.name for m in list_models()]
    if "psdnet_landsat3_fast" not in names or "psdnet_landsat3" not in names:
        pytest.skip("psdnet_landsat3 / psdnet_landsat3_fast not bundled")
    pan, ms = make_pair(tmp_path, ms_shape=(16, 16), bands=3, ratio=2, seed=1)
    full = pansharpen(pan, ms, tmp_path / "auto.tif", model="auto", device="cpu")
    fast = pansharpen(pan, ms, tmp_path / "fast.tif", model="auto_fast", device="cpu")
    assert (full.model, fast.model) == ("psdnet_landsat3", "psdnet_landsat3_fast")
