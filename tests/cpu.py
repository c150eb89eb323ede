"""Skip marks for tests of CPU-specific inference paths (the reason names the missing feature)."""

from __future__ import annotations

import pytest

from psdnet_qgis.model import cpu, fastcpu

#: The bf16 paths (autocast and the fused bf16 copy) need oneDNN bf16 convolutions.
requires_bf16 = pytest.mark.skipif(not cpu.bf16_runnable(), reason=f"bf16 path: {cpu.bf16_missing_reason()}")
#: The fused copy needs oneDNN's fused convolution ops in this torch build.
requires_fused = pytest.mark.skipif(not fastcpu.available(), reason="torch built without oneDNN fused convolutions")
