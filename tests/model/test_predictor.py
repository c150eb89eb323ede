"""TorchPredictor: CPU path, batching, single tiles, device errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from psdnet_qgis.errors import PSDNetInputError, PSDNetResourceError
from psdnet_qgis.model import cpu
from psdnet_qgis.model.predictor import TorchPredictor
from psdnet_qgis.model.psdnet import PSDNet
from tests.cpu import requires_bf16


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PSDNET_THREADS", "1")


def test_cpu_predict_matches_model_and_batches() -> None:
    torch.manual_seed(0)
    net = PSDNet(4, 2, width=8).eval()
    rng = np.random.default_rng(0)
    ms = rng.random((5, 4, 10, 12), dtype=np.float32)
    pan = rng.random((5, 1, 20, 24), dtype=np.float32)
    with torch.inference_mode():
        ref = net(torch.from_numpy(ms), torch.from_numpy(pan)).out3.numpy()
    pred = TorchPredictor(net, "t", device="cpu", batch_size=2)
    assert pred.device_report == "cpu (1 threads), fp32 channels-last"
    assert pred.threads == 1 and torch.get_num_threads() == 1
    out = pred.predict(ms, pan)
    assert out.shape == (5, 4, 20, 24) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=1e-5)
    single = pred.predict(ms[0], pan[0])
    assert single.shape == (4, 20, 24)
    np.testing.assert_allclose(single, ref[0], atol=1e-5)


def test_zero_residual_model_returns_lms() -> None:
    net = PSDNet(3, 3, width=8).zero_residual_()
    ms = np.random.default_rng(1).random((2, 3, 9, 9), dtype=np.float32)
    pan = np.zeros((2, 1, 27, 27), np.float32)
    out = TorchPredictor(net, None, device="auto", batch_size=None).predict(ms, pan)
    lms = torch.nn.functional.interpolate(torch.from_numpy(ms), scale_factor=3, mode="bicubic", align_corners=False)
    assert np.array_equal(out, lms.numpy())


def test_cuda_unavailable_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(PSDNetInputError, match="CUDA was requested.*choose Auto or CPU"):
        TorchPredictor(PSDNet(1, 2, width=4), None, device="cuda")
    assert TorchPredictor(PSDNet(1, 2, width=4), None, device="auto").device.type == "cpu"
    with pytest.raises(PSDNetInputError, match="not one of"):
        TorchPredictor(PSDNet(1, 2, width=4), None, device="tpu")


def test_bad_threads_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PSDNET_THREADS", "many")
    with pytest.raises(PSDNetInputError, match="PSDNET_THREADS"):
        TorchPredictor(PSDNet(1, 2, width=4), None, device="cpu")


def test_cuda_oom_halves_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The back-off logic, simulated: a fake forward that runs out of memory above batch 1."""
    pred = TorchPredictor(PSDNet(1, 2, width=4), None, device="cpu", batch_size=4)
    notes: list[str] = []
    pred._log = notes.append
    pred.device = torch.device("cuda")  # only .type is consulted by the back-off
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)

    def fake_forward(ms: np.ndarray, pan: np.ndarray) -> np.ndarray:
        if ms.shape[0] > 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return np.repeat(ms, 2, axis=2).repeat(2, axis=3)

    monkeypatch.setattr(pred, "_forward", fake_forward)
    ms = np.ones((5, 1, 8, 8), np.float32)
    out = pred.predict(ms, np.ones((5, 1, 16, 16), np.float32))
    assert out.shape == (5, 1, 16, 16) and pred.batch_size == 1
    assert len(pred.messages) == 2 and notes == pred.messages and "batch 4" in notes[0]

    def always_oom(ms: np.ndarray, pan: np.ndarray) -> np.ndarray:
        raise RuntimeError("CUDA out of memory.")

    monkeypatch.setattr(pred, "_forward", always_oom)
    with pytest.raises(PSDNetResourceError, match="even on a 8 x 8 MS px"):
        pred.predict(ms, np.ones((5, 1, 16, 16), np.float32))


def test_cuda_oom_at_batch_one_splits_the_tile(monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulated: tiles wider than 40 MS px run out of memory even alone; the tile is fused
    as blended sub-tiles, which for a per-pixel "model" gives exactly the unsplit result."""
    pred = TorchPredictor(PSDNet(1, 2, width=4), None, device="cpu", batch_size=2)
    pred.device = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    sizes: list[int] = []

    def fake_forward(ms: np.ndarray, pan: np.ndarray) -> np.ndarray:
        if ms.shape[0] > 1 or ms.shape[-1] > 40:
            raise RuntimeError("CUDA out of memory. Tried to allocate 8.00 GiB")
        sizes.append(ms.shape[-1])
        return np.repeat(ms, 2, axis=2).repeat(2, axis=3) * 2 + pan

    monkeypatch.setattr(pred, "_forward", fake_forward)
    rng = np.random.default_rng(0)
    ms = rng.random((2, 1, 100, 90), dtype=np.float32)
    pan = rng.random((2, 1, 200, 180), dtype=np.float32)
    out = pred.predict(ms, pan)
    want = np.repeat(ms, 2, axis=2).repeat(2, axis=3) * 2 + pan
    np.testing.assert_allclose(out, want, atol=1e-5)
    assert max(sizes) <= 40 and pred.batch_size == 1
    assert any("sub-tiles" in m for m in pred.messages)


@requires_bf16
def test_bf16_precision_close_to_fp32() -> None:
    torch.manual_seed(6)
    net = PSDNet(2, 4, width=8)
    rng = np.random.default_rng(6)
    ms, pan = rng.random((1, 2, 8, 8), dtype=np.float32), rng.random((1, 1, 32, 32), dtype=np.float32)
    ref = TorchPredictor(net, None, device="cpu").predict(ms, pan)
    pred = TorchPredictor(net, None, device="cpu", precision="bf16")
    assert "bf16" in pred.device_report
    out = pred.predict(ms, pan)
    assert out.dtype == np.float32 and np.abs(out - ref).max() < 5e-2


def test_fp16_on_cpu_is_a_clear_error() -> None:
    net = PSDNet(2, 4, width=8)
    with pytest.raises(PSDNetInputError, match="fp16 needs a CUDA"):
        TorchPredictor(net, None, device="cpu", precision="fp16")


def test_bf16_refused_where_the_cpu_cannot_run_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # an AVX2-only CPU, as oneDNN reports it (the one thing simulated here)
    monkeypatch.setattr(cpu, "bf16_runnable", lambda: False)
    with pytest.raises(PSDNetInputError, match="bf16 is not available.*choose fp32"):
        TorchPredictor(PSDNet(2, 4, width=8), None, device="cpu", precision="bf16")


@pytest.mark.gpu
def test_cuda_predict_close_to_cpu() -> None:
    """The CUDA path (fp32, so TF32 convolutions at most) gives the CPU's result on the same tiles."""
    import copy

    torch.manual_seed(7)
    net = PSDNet(4, 4, width=8).eval()
    rng = np.random.default_rng(7)
    ms, pan = rng.random((3, 4, 16, 20), dtype=np.float32), rng.random((3, 1, 64, 80), dtype=np.float32)
    ref = TorchPredictor(copy.deepcopy(net), None, device="cpu", batch_size=2).predict(ms, pan)
    pred = TorchPredictor(net, None, device="cuda", batch_size=2, precision="fp32")
    assert pred.device.type == "cuda"
    out = pred.predict(ms, pan)
    assert out.shape == ref.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=1e-2)
