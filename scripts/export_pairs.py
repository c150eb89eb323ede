"""Export the normalised Wald training pairs of a model to ``.npz`` files (training without GDAL).

Runs where GDAL and the shared data are (this machine); the folder it writes travels to a
machine that has torch and numpy only (a lent GPU, ``scripts/gpu_session.sh``), where
``python -m psdnet_qgis.training --pairs DIR`` trains on exactly these pairs.

    python scripts/export_pairs.py --model vhr4 \
        --train-scenes shanghai_wv3,rotterdam1_wv2,rotterdam2_wv2,rotterdam3_wv2,osman_vhr,pleiades_gizeh \
        --val-scenes none --out build/gpu/pairs
    python scripts/export_pairs.py --model vhr4 --out build/gpu/pairs_bundled   # the model's own lists

The pairs are made by ``training.data.load_pairs`` (the same call ``python -m
psdnet_qgis.training --data`` makes) and stored by ``training.pairs_io.save_pairs``
(float16 by default; a loaded pair equals the exported one to float16 rounding). The
manifest records names, ratio, the MTF gains and sensor of each scene, the valid fraction
and a SHA-256 per file. ``--max-side N`` centre-crops every *training* pair to at most
N x N gt (MS) pixels on the ratio grid (a stated size rule for folders that would not
travel; off by default: the six VHR scenes take a few MiB). The total size is printed, and
the export fails when it is over ``--max-mb`` (default 50).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def centre_window(shape: tuple[int, int], side: int, ratio: int) -> tuple[int, int, int, int]:
    """(row, col, height, width) of the centred window of at most ``side`` px, on the r grid."""
    h, w = shape
    hh = min(h, side // ratio * ratio)
    ww = min(w, side // ratio * ratio)
    y = (h - hh) // 2 // ratio * ratio
    x = (w - ww) // 2 // ratio * ratio
    return y, x, hh, ww


def main(argv: list[str] | None = None) -> int:
    from psdnet_qgis.training.data import crop_pair, load_pairs, scene_gains
    from psdnet_qgis.training.fast import base_model
    from psdnet_qgis.training.pairs_io import save_pairs
    from psdnet_qgis.training.scenes import default_data_dir, scenes_for

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="vhr4")
    ap.add_argument("--data", type=Path, default=default_data_dir())
    ap.add_argument("--train-scenes", default="", help="as python -m psdnet_qgis.training (default: the model's)")
    ap.add_argument("--val-scenes", default="", help="as python -m psdnet_qgis.training; 'none': no validation")
    ap.add_argument("--norm", choices=("zscore4", "joint4"), default="zscore4")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "gpu" / "pairs")
    ap.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    ap.add_argument("--no-pan-full", action="store_true",
                    help="drop the full-resolution PAN (only --sensor-variety needs it)")
    ap.add_argument("--max-side", type=int, default=0,
                    help="centre-crop training pairs to at most this many gt px a side (0 = whole)")
    ap.add_argument("--max-mb", type=float, default=50.0, help="fail when the folder is larger")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    model = base_model(a.model)
    train, val = load_pairs(model, a.data, a.norm, a.train_scenes, a.val_scenes)
    if a.max_side:
        train = [crop_pair(p, centre_window(p.valid.shape, a.max_side, p.ratio)) for p in train]
    info = {}
    for role, names in (("train", a.train_scenes), ("val", a.val_scenes)):
        for spec in scenes_for(model, role, names):
            ms_g, pan_g = scene_gains(spec.sensor, len(spec.bands))
            info[spec.name] = {"sensor": spec.sensor, "gains": {"ms": list(ms_g), "pan": pan_g}}
    extra = {"made_by": "scripts/export_pairs.py", "argv": sys.argv[1:] if argv is None else list(argv),
             "train_scenes": a.train_scenes, "val_scenes": a.val_scenes, "max_side": a.max_side}
    m = save_pairs(a.out, train, val, model=model, norm=a.norm, dtype=a.dtype,
                   pan_full=not a.no_pan_full, scene_info=info, extra=extra)
    total = sum(e["bytes"] for e in m["pairs"].values())
    for name, e in m["pairs"].items():
        print(f"{name:16s} gt {e['shapes']['gt']} valid {e['valid_fraction']:.3f} "
              f"{e['bytes'] / 2**20:7.2f} MiB{' (val, cropped)' if e['cropped'] else ''}")
    print(f"{len(m['pairs'])} pairs, {total / 2**20:.2f} MiB in {a.out}")
    if total > a.max_mb * 2**20:
        print(f"over --max-mb {a.max_mb}: use --max-side or --no-pan-full", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
