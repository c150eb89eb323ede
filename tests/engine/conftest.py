"""Shared fixtures of the engine tier: small generated GeoTIFF pairs, a zero-residual PSDNet."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.rasters import make_pair

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("PSDNET_THREADS", "1")  # 2 shared cores: keep each test single-threaded


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    """Aligned ratio-4, 4-band uint16 pair: PAN 96 x 112, MS 24 x 28."""
    return make_pair(tmp_path, ms_shape=(24, 28), bands=4, ratio=4, seed=1)


@pytest.fixture(scope="session")
def zero_net():
    """Real PSDNet (4 bands, ratio 4) with zeroed heads: output = bicubic lms."""
    torch = pytest.importorskip("torch")
    from psdnet_qgis.model.psdnet import PSDNet

    torch.manual_seed(0)
    return PSDNet(4, 4, width=8).zero_residual_().eval()  # narrow: same graph, fast tests


@pytest.fixture
def noisy_net():
    """Real narrow PSDNet with random weights and amplified heads: a network that changes the image a lot."""
    torch = pytest.importorskip("torch")
    from psdnet_qgis.model.psdnet import PSDNet

    torch.manual_seed(3)
    net = PSDNet(4, 4, width=8).eval()
    with torch.no_grad():
        for head in (net.head1, net.head2, net.head3):
            head.last.weight.mul_(30)
            head.last.bias.mul_(30)
    return net


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PSDNET_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "psdnet_qgis", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def cli():
    """``cli(*args)``: ``python -m psdnet_qgis ARGS`` in a child process (one thread) ->
    ``subprocess.CompletedProcess`` (text stdout / stderr)."""
    return _run_cli
