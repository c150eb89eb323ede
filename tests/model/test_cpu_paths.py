"""The automatic precision, end to end on whatever CPU runs the suite (AVX2, AVX-512, AMX)."""

from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal

from psdnet_qgis.engine.run import pansharpen
from psdnet_qgis.model import cpu
from tests.rasters import make_pair


def _read(path) -> np.ndarray:
    return gdal.Open(str(path)).ReadAsArray().astype(np.float64)


def test_cpu_class_is_named() -> None:
    assert cpu.cpu_class() and "unknown" not in cpu.cpu_class().lower()
    assert cpu.native_bf16() <= cpu.bf16_runnable()  # native implies runnable


def test_automatic_precision_runs_the_path_this_cpu_has(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Auto picks bf16 only where the CPU has native bf16, runs, and stays close to fp32."""
    monkeypatch.setenv("PSDNET_THREADS", "1")
    pan, ms = make_pair(tmp_path, ms_shape=(24, 24), bands=4, ratio=4, seed=3)
    auto = pansharpen(pan, ms, tmp_path / "auto.tif", model="psdnet_vhr4", device="cpu")
    ref = pansharpen(pan, ms, tmp_path / "fp32.tif", model="psdnet_vhr4", device="cpu", precision="fp32")
    # the log names the path (issue 11)
    expected = "bf16 fused" if cpu.native_bf16() else "fp32 channels-last"
    assert auto.device.endswith(expected), (auto.device, cpu.cpu_class())
    assert ref.device.endswith("fp32 channels-last")
    d = np.abs(_read(tmp_path / "auto.tif") - _read(tmp_path / "fp32.tif"))
    # uint16 output of 11-bit data: bf16 rounding moves a pixel by a few DN (measured mean 0.8, max 7)
    assert d.mean() < 2.0 and d.max() < 40, (d.mean(), d.max())


def test_the_fast_model_runs_bf16_autocast_where_the_cpu_has_native_bf16(tmp_path, monkeypatch: pytest.MonkeyPatch
                                                                         ) -> None:
    """Width 8 pads to 16 channels in the fused copy: bf16 autocast instead (measured faster)."""
    if not cpu.native_bf16():
        pytest.skip(f"{cpu.cpu_class()}: no native bf16, the fast model runs fp32 here")
    monkeypatch.setenv("PSDNET_THREADS", "1")
    pan, ms = make_pair(tmp_path, ms_shape=(24, 24), bands=4, ratio=4, seed=3)
    bf16 = pansharpen(pan, ms, tmp_path / "bf16.tif", model="psdnet_vhr4_fast", device="cpu", precision="bf16")
    pansharpen(pan, ms, tmp_path / "fp32.tif", model="psdnet_vhr4_fast", device="cpu", precision="fp32")
    assert bf16.device.endswith("bf16 autocast"), bf16.device
    d = np.abs(_read(tmp_path / "bf16.tif") - _read(tmp_path / "fp32.tif"))
    assert d.mean() < 2.0 and d.max() < 40, (d.mean(), d.max())


_HG_PROBE = """
import sys
import psdnet_qgis.model, torch
t = torch.ones(3 << 20, dtype=torch.uint8)  # 3 MB: over torch's 2 MB huge-page size
p = t.data_ptr()
flags, inside = "", False
for line in open("/proc/self/smaps"):
    if "-" in line.split(" ")[0] and ":" not in line.split(" ")[0]:
        lo, hi = (int(v, 16) for v in line.split(" ")[0].split("-"))
        inside = lo <= p < hi
    elif inside and line.startswith("VmFlags:"):
        flags = line.split(":", 1)[1].split()
from psdnet_qgis.model import cpu
print("hg" in flags, cpu.huge_pages())
"""


@pytest.mark.parametrize("user_value", [None, "0"])
def test_big_torch_buffers_get_huge_pages_unless_the_user_says_no(user_value) -> None:
    """Importing the model layer before torch asks torch for huge pages (the full model's bf16 heap
    stayed at a fraction of its fragmented size, docs/RUNTIMES.md); THP_MEM_ALLOC_ENABLE=0 wins."""
    import os
    import subprocess
    import sys

    if not sys.platform.startswith("linux") or cpu._thp_mode() not in ("always", "madvise"):
        pytest.skip(f"transparent huge pages are not available here ({cpu._thp_mode() or 'no sysfs entry'})")
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    if user_value is not None:
        env["THP_MEM_ALLOC_ENABLE"] = user_value
    root = str(__import__("pathlib").Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", _HG_PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    madvised, report = out.stdout.strip().split(" ", 1)
    if user_value is None:
        assert madvised == "True" and report.startswith("on (THP "), out.stdout
    else:
        assert madvised == "False" and report == "off: THP_MEM_ALLOC_ENABLE set to 0", out.stdout
