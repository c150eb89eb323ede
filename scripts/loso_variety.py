"""Leave-one-scene-out test of sensor-variety augmentation (``training/augment.py``).

For each held-out scene, one small PSDNet (``--width``, L1 only, no teacher) is trained on the
other training scenes of the model without and with ``--sensor-variety``, the best epoch is
chosen on the model's validation scene (Rotterdam 2 for vhr4), and both are evaluated at
reduced resolution on the scene left out, which they never saw. Runs checkpoint every
epoch and are skipped when their export exists, so the script resumes where it stopped.

Usage::

    python scripts/loso_variety.py --data ../shared/data [--model vhr4] [--hold-out shanghai_wv3,osman_vhr]
        [--variety 0.5] [--epochs 15] [--jobs 2]

Prints a markdown table (SAM, ERGAS, Q2n on each held-out scene and on the validation scene).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _train_cmd(a: argparse.Namespace, train: list[str], p: float, out: Path) -> list[str]:
    return [sys.executable, "-m", "psdnet_qgis.training", "--model", a.model, "--data", a.data,
            "--width", str(a.width), "--teacher-epochs", "0", "--lam", "0", "--epochs", str(a.epochs),
            "--steps-per-epoch", str(a.steps), "--batch", "4", "--patch", "64", "--threads", "1",
            "--seed", str(a.seed), "--sensor-variety", str(p), "--variety-parts", a.parts,
            "--train-scenes", ",".join(train),
            "--out", str(out), "--export", str(out / "m.pt"), "--resume", "--no-progress"]


def _evaluate(a: argparse.Namespace, weights: Path, scene: str) -> dict:
    cmd = [sys.executable, "-m", "psdnet_qgis.training", "--model", a.model, "--data", a.data,
           "--evaluate", str(weights), "--val-scenes", scene, "--threads", "1"]
    res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout)
    return res["scenes"][scene]["psdnet"]


def _one(a: argparse.Namespace, held: str, train: list[str], p: float) -> dict:
    parts = "" if not p or a.parts == "mtf,pan,radiometry" else "_" + a.parts.replace(",", "+")
    out = Path(a.work) / f"{held}_p{p:g}{parts}"
    weights = out / "m.pt"
    if not weights.exists():
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "train.log", "a", encoding="utf-8") as log:
            subprocess.run(_train_cmd(a, train, p, out), check=True, stdout=log, stderr=subprocess.STDOUT,
                           cwd=ROOT, env={**os.environ, "PSDNET_THREADS": "1"})
    row = {"held_out": held, "variety": p, "parts": a.parts if p else "-", "train": train}
    row["held"] = _evaluate(a, weights, held)
    row["val"] = _evaluate(a, weights, a.val_scene)
    return row


def main(argv: list[str] | None = None) -> int:
    from psdnet_qgis.training.scenes import MODEL_SCENES

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--model", default="vhr4")
    ap.add_argument("--hold-out", default="shanghai_wv3,osman_vhr")
    ap.add_argument("--variety", type=float, default=0.5)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--parts", default="mtf,pan,radiometry", help="--variety-parts of the augmented runs")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--work", default=str(ROOT / "runs" / "loso"))
    a = ap.parse_args(argv)
    scenes = list(MODEL_SCENES[a.model]["train"])
    a.val_scene = MODEL_SCENES[a.model]["val"][0]
    cases = [(h, [s for s in scenes if s != h], p) for h in a.hold_out.split(",") for p in (0.0, a.variety)]
    with ThreadPoolExecutor(a.jobs) as pool:
        rows = list(pool.map(lambda c: _one(a, *c), cases))
    (Path(a.work) / f"loso_{a.parts.replace(',', '+')}.json").write_text(json.dumps(rows, indent=2))
    print(f"| held-out scene | sensor variety | parts | SAM | ERGAS | Q2n | {a.val_scene} SAM | ERGAS | Q2n |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        h, v = r["held"], r["val"]
        print(f"| {r['held_out']} | {r['variety']:g} | {r['parts']} | {h['SAM']:.3f} | {h['ERGAS']:.3f} | "
              f"{h['Q2n']:.4f} | {v['SAM']:.3f} | {v['ERGAS']:.3f} | {v['Q2n']:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
