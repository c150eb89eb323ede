"""The optional OpenVINO path (model.ovruntime) against torch, and its fallback to torch."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from psdnet_qgis.model import ovruntime  # noqa: E402
from psdnet_qgis.model.predictor import TorchPredictor  # noqa: E402


def _tile(seed: int = 0, side: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ms = (0.5 + 0.15 * rng.standard_normal((1, 4, side, side))).astype(np.float32)
    pan = (0.5 + 0.15 * rng.standard_normal((1, 1, side * 4, side * 4))).astype(np.float32)
    return ms, pan


@pytest.fixture
def fast_net():
    from psdnet_qgis.model.weights import load_model

    net, meta = load_model("psdnet_vhr4_fast")
    return net.eval(), meta


def test_not_wanted_without_the_package_or_when_turned_off(monkeypatch) -> None:
    monkeypatch.setattr(ovruntime, "available", lambda: False)
    monkeypatch.setenv(ovruntime.ENV_RUNTIME, "openvino")
    use, why = ovruntime.wanted("AVX2 (no AVX-512)")
    assert not use and "not installed" in why
    monkeypatch.setattr(ovruntime, "available", lambda: True)
    monkeypatch.setenv(ovruntime.ENV_RUNTIME, "torch")
    assert ovruntime.wanted("AVX2 (no AVX-512)") == (False, f"{ovruntime.ENV_RUNTIME}=torch")
    monkeypatch.setenv(ovruntime.ENV_RUNTIME, "auto")  # only measured (CPU class, model) pairs
    monkeypatch.setattr(ovruntime, "MEASURED_FASTER", (("AVX2 (no AVX-512)", "psdnet_vhr4"),))
    assert ovruntime.wanted("AVX2 (no AVX-512)", "psdnet_vhr4")[0]
    use, why = ovruntime.wanted("AVX2 (no AVX-512)", "psdnet_vhr4_fast")
    assert not use and "opts in" in why
    assert not ovruntime.wanted("AVX-512 + AMX", "psdnet_vhr4")[0]


def test_predictor_falls_back_to_torch_when_openvino_fails(monkeypatch, fast_net) -> None:
    net, meta = fast_net

    class Broken:
        version = "0"

        def __init__(self, *a, **k) -> None:
            pass

        def __call__(self, ms, pan):
            raise RuntimeError("simulated conversion failure")

    monkeypatch.setattr(ovruntime, "wanted", lambda cls, model=None: (True, "test"))
    monkeypatch.setattr(ovruntime, "OpenVINORunner", Broken)
    monkeypatch.setenv("PSDNET_THREADS", "1")
    pred = TorchPredictor(net, meta, device="cpu", precision="fp32")
    assert pred.path == "fp32 openvino 0"
    ms, pan = _tile()
    got = pred.predict(ms, pan)
    assert pred.path == "fp32 channels-last" and any("simulated" in m for m in pred.messages)
    monkeypatch.setenv(ovruntime.ENV_RUNTIME, "torch")
    ref = TorchPredictor(net, meta, device="cpu", precision="fp32").predict(ms, pan)
    np.testing.assert_array_equal(got, ref)


def test_openvino_matches_torch_within_the_bound(monkeypatch, tmp_path, fast_net) -> None:
    if not ovruntime.available():
        pytest.skip("the openvino package is not installed (pip install openvino)")
    net, meta = fast_net
    monkeypatch.setenv("PSDNET_THREADS", "1")
    monkeypatch.setenv(ovruntime.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.setenv(ovruntime.ENV_RUNTIME, "openvino")
    ms, pan = _tile(1)
    ov_pred = TorchPredictor(net, meta, device="cpu", precision="fp32")
    assert ov_pred.path.startswith("fp32 openvino"), ov_pred.path
    got = ov_pred.predict(ms, pan)
    assert len(list((tmp_path / "cache").glob("*.xml"))) == 1  # converted once, kept on disk
    monkeypatch.setenv(ovruntime.ENV_RUNTIME, "torch")
    ref = TorchPredictor(net, meta, device="cpu", precision="fp32").predict(ms, pan)
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= ovruntime.MAX_ABS_DIFF
    # a second runner reads the cached conversion and gives the same result
    again = ovruntime.OpenVINORunner(net, 1, meta.name, folder=tmp_path / "cache")(ms, pan)
    np.testing.assert_array_equal(again, got)
