"""CPU seconds per output megapixel of the full and the fast (slimmed, distilled) models.

    python scripts/bench_fast.py [--models psdnet_landsat3,psdnet_landsat3_fast] [--ms 96]

Times the predictor (the engine's model call: channels-last fp32 or the bf16 fused copy,
as chosen automatically) on one random MS tile of ``--ms`` px a side, best of ``--repeats``,
and prints one JSON line per model plus the ratios to the first model and the CPU class.
For the AVX2 numbers on an AVX-512 machine set ``ONEDNN_MAX_CPU_ISA=AVX2`` and
``ATEN_CPU_CAPABILITY=avx2`` (the CPU class line then says AVX2).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    from psdnet_qgis.model import cpu
    from psdnet_qgis.model.predictor import TorchPredictor
    from psdnet_qgis.model.weights import load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="psdnet_landsat3,psdnet_landsat3_fast")
    ap.add_argument("--ms", type=int, default=96, help="MS tile side (px)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--precision", default="auto", help="auto | fp32 | bf16")
    a = ap.parse_args(argv)
    rows = []
    for name in [m for m in a.models.split(",") if m]:
        net, info = load_model(name)
        prec = a.precision
        if prec == "auto":
            prec = "bf16" if cpu.native_bf16() else "fp32"
        pred = TorchPredictor(net, info, device="cpu", precision=prec)
        rng = np.random.default_rng(0)
        r = net.ratio
        ms = rng.random((1, net.bands, a.ms, a.ms), dtype=np.float32)
        pan = rng.random((1, 1, a.ms * r, a.ms * r), dtype=np.float32)
        pred.predict(ms, pan)  # warm-up: oneDNN primitive creation
        best = float("inf")
        for _ in range(a.repeats):
            c0 = time.process_time()
            pred.predict(ms, pan)
            best = min(best, time.process_time() - c0)
        mp = (a.ms * r) ** 2 / 1e6
        rows.append({"model": name, "width": net.width,
                     "params": sum(p.numel() for p in net.parameters()),
                     "path": pred.device_report, "cpu_s_per_mp": round(best / mp, 3)})
    for row in rows:
        row["speed_vs_first"] = round(rows[0]["cpu_s_per_mp"] / row["cpu_s_per_mp"], 2)
        print(json.dumps(row))
    print(json.dumps({"cpu_class": cpu.cpu_class()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
