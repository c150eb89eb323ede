"""Full-resolution fine-tuning: the torch degradation twin, the no-reference losses, and a
fine-tuning smoke run from exported weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from psdnet_qgis.core.mtf import degrade
from psdnet_qgis.training.data import WaldPair
from psdnet_qgis.training.losses import Degrade, fullres_losses


@pytest.mark.parametrize("ratio", [2, 3, 4])
def test_degrade_matches_numpy_protocol(ratio):
    rng = np.random.default_rng(ratio)
    x = rng.random((3, 16 * ratio, 12 * ratio)).astype(np.float32)
    gains = [0.29, 0.3, 0.28]
    want = degrade(x, gains, ratio)
    got = Degrade(gains, ratio)(torch.from_numpy(x)[None])[0].numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_losses_zero_spectral_for_consistent_image_and_differentiable():
    r = 4
    rng = np.random.default_rng(0)
    fused = torch.from_numpy(rng.random((2, 3, 96, 96)).astype(np.float32)).requires_grad_(True)
    dm, dp = Degrade([0.3] * 3, r), Degrade([0.15], r)
    ms = dm(fused).detach()
    pan = fused.detach().mean(1, keepdim=True)
    spec, spat = fullres_losses(fused, ms, pan, dm, dp, margin=5)
    assert float(spec.detach()) < 1e-6
    assert 0.0 <= float(spat.detach()) <= 2.0
    (spec + spat).backward()
    assert fused.grad is not None and torch.isfinite(fused.grad).all()


def _full_pair(seed: int, name: str, r: int = 4) -> WaldPair:
    from psdnet_qgis.core.radiometry import Normalizer

    rng = np.random.default_rng(seed)
    ms = rng.random((4, 24, 24)).astype(np.float32) * 100
    pan = np.kron(ms.mean(0), np.ones((r, r), np.float32))[None] + rng.random((1, 96, 96)).astype(np.float32) * 5
    n = Normalizer.from_arrays(ms, pan)
    gt = np.broadcast_to(np.zeros((4, 1, 1), np.float32), (4, 96, 96))
    return WaldPair(name, n.norm_ms(ms), n.norm_pan(pan), gt, np.ones((96, 96), bool), n, r)


@pytest.mark.slow
def test_finetune_from_exported_weights(tmp_path, wald_pairs, train_config):
    from psdnet_qgis.model.weights import load_model
    from psdnet_qgis.training.loop import train

    train_pairs, val_pairs = wald_pairs
    first = tmp_path / "m" / "psdnet_vhr4.pt"
    train(train_config(export=str(first)), train_pairs, val_pairs, progress=False)
    tuned = tmp_path / "m2" / "psdnet_vhr4.pt"
    s = train(train_config(out=str(tmp_path / "ft"), init=str(first), fullres_epochs=1, fullres_patch=64,
                           fullres_batch=1, export=str(tuned)),
              train_pairs, val_pairs, progress=False, full_pairs=[_full_pair(3, "fa")], val_full=[])
    assert s["fullres"]["epochs"] == 1
    lines = [json.loads(x) for x in (tmp_path / "ft" / "log.jsonl").read_text().splitlines()]
    assert [x["phase"] for x in lines] == ["fullres", "fullres"]
    assert np.isfinite(lines[-1]["spectral"]) and np.isfinite(lines[-1]["spatial"])
    m0, _ = load_model(first)
    m1, meta = load_model(tuned)
    assert meta.extra["training"]["fullres_epochs"] == 1
    pairs = zip(m0.state_dict().values(), m1.state_dict().values(), strict=True)
    changed = any(not torch.equal(a, b) for a, b in pairs)
    assert changed
