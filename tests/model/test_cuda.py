"""The predictor and the network on a real CUDA device (``gpu``: skipped without one;
``scripts/gpu_session.sh`` runs them on a lent GPU): strict fp32 against the CPU, autocast,
batching, the out-of-memory split on the device, a training step. test_predictor.py has the
simulated CUDA tests and one fp32 CUDA-vs-CPU check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from psdnet_qgis.model.predictor import TorchPredictor
from psdnet_qgis.model.psdnet import PSDNet

pytestmark = pytest.mark.gpu


def _net(seed: int = 0) -> PSDNet:
    torch.manual_seed(seed)
    return PSDNet(4, 4, width=8)


def _inputs(b: int = 3, side: int = 40):
    rng = np.random.default_rng(0)
    return (rng.random((b, 4, side, side), dtype=np.float32),
            rng.random((b, 1, side * 4, side * 4), dtype=np.float32))


@pytest.fixture
def strict_fp32():
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def test_cuda_fp32_matches_cpu(strict_fp32):
    ms, pan = _inputs()
    want = TorchPredictor(_net(), None, device="cpu", batch_size=3).predict(ms, pan)
    pred = TorchPredictor(_net(), None, device="cuda", batch_size=3)
    assert pred.device.type == "cuda" and "cuda:" in pred.device_report
    got = pred.predict(ms, pan)
    assert np.abs(got - want).max() < 1e-4


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_autocast_close_to_fp32(precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("no bf16 on this GPU")
    ms, pan = _inputs()
    want = TorchPredictor(_net(), None, device="cuda").predict(ms, pan)
    got = TorchPredictor(_net(), None, device="cuda", precision=precision).predict(ms, pan)
    assert got.dtype == np.float32 and np.isfinite(got).all()
    d = np.abs(got - want)
    # relative bounds: a random-weights network's output scale is arbitrary
    assert d.max() <= 0.05 * np.abs(want).max() + 1e-3 and d.mean() <= 0.01 * np.abs(want).mean() + 1e-3


def test_cuda_batches_agree_with_single_tiles(strict_fp32):
    ms, pan = _inputs()
    pred = TorchPredictor(_net(), None, device="cuda", batch_size=3)
    whole = pred.predict(ms, pan)
    for i in range(3):
        assert np.abs(pred.predict(ms[i], pan[i]) - whole[i]).max() < 1e-5


def test_cuda_oom_split_on_the_device(monkeypatch, strict_fp32):
    """A tile that "runs out of memory" above 60 MS px is fused on the GPU as 2 x 2 blended
    sub-tiles; close to the whole tile (CPU simulation of this case: mean |diff| 7e-4)."""
    ms, pan = _inputs(1, 96)
    pred = TorchPredictor(_net(), None, device="cuda", batch_size=1)
    want = pred.predict(ms, pan)
    real = pred._forward

    def limited(m: np.ndarray, p: np.ndarray) -> np.ndarray:
        if m.shape[-1] > 60:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(m, p)

    monkeypatch.setattr(pred, "_forward", limited)
    got = pred.predict(ms, pan)
    assert got.shape == want.shape and any("sub-tiles" in m for m in pred.messages)
    assert np.abs(got - want).mean() < 0.01


def test_cuda_training_step_runs():
    from psdnet_qgis.model.psdnet import PSDNet as Net

    net = Net(4, 4, width=8).cuda().to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    ms, pan = (torch.from_numpy(a).cuda() for a in _inputs(2, 16))
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=torch.cuda.is_bf16_supported()):
        out = net(ms, pan).out3
    loss = out.float().abs().mean()
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
