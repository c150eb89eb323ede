#!/usr/bin/env python3
"""Leave-one-scene-out (LOSO) selection of a vhr4 training recipe over every VHR scene we have.

For each scene of ``training.scenes.VHR_LOSO`` (Shanghai WV-3, Rotterdam 1-3 WV-2, the 0.5 m
scene, Pleiades 1B) a model is trained by ``RECIPE`` on the other five, with no validation
scene (``--val-scenes none``: nothing about the held-out scene chooses an epoch; the last
epoch, as its EMA, is exported), then run through the product path
(``engine.run.pansharpen``, calibrated as by default and uncalibrated) on the scene it never
saw, at reduced resolution (Wald, the sensor's MTF) and full resolution, exactly as
``scripts/bench_quality.py`` prepares and scores it. Runs checkpoint every epoch and a fold
whose export exists is not retrained, so the script resumes where it stopped.

The table puts each fold beside the rows of a ``bench_quality.json`` of the same scenes
(``--bench``; ``make bench``): the bundled ``psdnet_vhr4`` / ``psdnet_vhr4_fast`` (marked
"seen" where the scene was in their training) and the best classical method per metric.

Usage::

    python scripts/loso.py --data ../shared/data --recipe fast8 [--jobs 2] [--held-out a,b]
    python scripts/loso.py --recipe fast8 --final   # the recipe on all six scenes

Prints a markdown table; everything goes to ``runs/loso_<recipe>/loso.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

def _schedule(epochs: int, steps: int, refine_from: int, balance: str = "0", width: int = 8) -> list[str]:
    """Width 8, from scratch, batch 4 of 64 px; L1, then SAM loss 3 + EMA 0.99 from ``refine_from``."""
    return ["--width", str(width), "--teacher-epochs", "0", "--lam", "0", "--epochs", str(epochs),
            "--steps-per-epoch", str(steps), "--batch", "4", "--patch", "64", "--balance", balance,
            "--refine-from", str(refine_from), "--sam-weight", "3", "--ema", "0.99"]


#: Training recipes compared by LOSO (flags of ``python -m psdnet_qgis.training``). All train
#: from scratch without a teacher: a teacher trained on the bundled scenes would leak the
#: held-out scene into the fold.
RECIPES: dict[str, list[str]] = {
    # the bundled vhr4's two-phase schedule at the fast model's width 8: 1500 steps, scenes equally
    "fast8": _schedule(30, 50, 16),
    # a two-minute check of the script itself
    "smoke": _schedule(2, 5, 2),
    # the same, twice as long
    "fast8_long": _schedule(60, 50, 31),
    # fast8 with the 39 Landsat 7 pairs made ratio 4 as one more training scene (variety of
    # places, 8-bit data; training.scenes.LANDSAT7_GROUP), drawn like one scene (balance 0: 1/6)
    "fast8_l7": _schedule(30, 50, 16),
    # the same with scenes drawn by the square root of their area (the training default): the
    # Landsat 7 set, 39 times a VHR scene's area, then gives about 60 % of the patches
    "fast8_l7_b05": _schedule(30, 50, 16, balance="0.5"),
    # fast8 at the full model's width 28 (no teacher): what width alone adds on unseen scenes
    "w28": _schedule(30, 50, 16, width=28),
    # fast8 with the stems seeing high-pass detail instead of images (PanNet's idea; model
    # INPUT_MODES "detail"): nothing sensor-specific in the levels reaches the network
    "fast8_detail": [*_schedule(30, 50, 16), "--inputs", "detail"],
    # fast8 with every stage a residual on MTF-GLP-FS / -HPM of the same pair instead of on
    # bicubic (model BASE_MODES; scored by scripts/base_study.py: the engine has no base path)
    "fast8_fs": [*_schedule(30, 50, 16), "--base", "mtf_glp_fs"],
    "fast8_hpm": [*_schedule(30, 50, 16), "--base", "mtf_glp_hpm"],
}
#: Training scenes a recipe adds to the five VHR scenes of a fold (never held out).
EXTRA_SCENES: dict[str, list[str]] = {"fast8_l7": ["landsat7x4"], "fast8_l7_b05": ["landsat7x4"]}
BENCH_LABELS = {"vhr4": "PSDNet (psdnet_vhr4), default: calibrated",
                "vhr4 uncal": "PSDNet (psdnet_vhr4), uncalibrated",
                "vhr4_fast": "PSDNet (psdnet_vhr4_fast), calibrated"}


def train_fold(a: argparse.Namespace, held: str | None, scenes: list[str]) -> Path:
    """Train the recipe on ``scenes`` minus ``held`` (all of them when None); the weights' path."""
    out = Path(a.work) / (f"held_{held}" if held else "all")
    weights = out / "m.pt"
    if weights.exists():
        return weights
    out.mkdir(parents=True, exist_ok=True)
    train = [s for s in scenes if s != held] + EXTRA_SCENES.get(a.recipe, [])
    cmd = [sys.executable, "-m", "psdnet_qgis.training", "--model", "vhr4", "--data", str(a.data),
           *RECIPES[a.recipe], "--threads", str(a.threads), "--seed", str(a.seed), "--train-scenes", ",".join(train),
           "--val-scenes", "none", "--out", str(out), "--export", str(weights), "--resume", "--no-progress",
           "--notes", f"LOSO recipe {a.recipe}" + (f", held out {held}" if held else ", all VHR scenes")]
    with open(out / "train.log", "a", encoding="utf-8") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                       env={**os.environ, "PSDNET_THREADS": str(a.threads), "OMP_NUM_THREADS": str(a.threads)})
    return weights


def score(weights: Path, held: str, data: Path) -> dict[str, dict[str, Any]]:
    """The product path on the held-out scene: calibrated and uncalibrated, RR and FR metrics."""
    import bench_quality as bq

    from psdnet_qgis.engine import calibration

    out: dict[str, dict[str, Any]] = {}
    default = calibration.CONSISTENT
    with tempfile.TemporaryDirectory() as tmp:
        sc = bq.prepare_scene("vhr4", data, Path(tmp), held)
        sensor = sc["spec"].sensor
        # the default; without the calibration; calibrated without the consistency step (its share)
        for label, cal, step in (("calibrated", True, default), ("uncalibrated", False, default),
                                 ("calibrated, no consistency step", True, False)):
            cals: list[dict[str, Any]] = []  # reduced resolution first: cals[0] is its calibration
            calibration.CONSISTENT = step
            try:
                rr, fr, _ = bq.score_method(
                    lambda p, m, o, c=cal, k=cals: bq.run_engine("psdnet", p, m, o, model=str(weights),
                                                                 sensor=sensor, calibrate=c, calibrations=k),
                    sc, label.replace(" ", "_").replace(",", ""))
            finally:
                calibration.CONSISTENT = default
            row = {k: rr["metrics"][k] for k in bq.REDUCED_KEYS}
            row.update({k: fr["metrics"][k] for k in bq.FULL_KEYS})
            if cals:
                row["weights"] = cals[0]["weights"]
            out[label] = row
    return out


def bench_rows(path: Path | None) -> dict[str, dict[str, dict[str, Any]]]:
    """scene -> method -> row of a bench_quality.json (empty when absent)."""
    if path is None or not path.exists():
        return {}
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    for r in json.loads(path.read_text())["rows"]:
        rows.setdefault(r["scene"], {})[r["method"]] = r
    return rows


def table(folds: list[dict[str, Any]], bench: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Markdown: per fold the recipe's model (calibrated / uncalibrated), the bundled models and
    the best classical method, RR ERGAS and SAM and FR HQNR."""
    import bench_quality as bq

    from psdnet_qgis.training.scenes import MODEL_SCENES

    seen = set(MODEL_SCENES["vhr4"]["train"])
    lines = ["| held-out scene | LOSO cal. ERGAS | SAM | HQNR | LOSO uncal. ERGAS | SAM | HQNR "
             "| bundled vhr4 cal. ERGAS | SAM | HQNR | vhr4_fast cal. ERGAS | SAM | best classical ERGAS | SAM |",
             "|---|" + "---|" * 14]
    sums: dict[str, list[float]] = {}

    def cell(v: Any, key: str) -> str:
        if v is None:
            return "-"
        sums.setdefault(key, []).append(float(v))
        return f"{v:.3f}" if key.split()[-1] != "HQNR" else f"{v:.4f}"

    for f in folds:
        h, b = f["held_out"], bench.get(f["held_out"], {})
        mark = " (seen)" if h in seen else ""
        c, u = f["scores"]["calibrated"], f["scores"]["uncalibrated"]
        v4, v4f = b.get(BENCH_LABELS["vhr4"], {}), b.get(BENCH_LABELS["vhr4_fast"], {})
        best_e = bq.best_peer(list(b.values()), "ERGAS")
        best_s = bq.best_peer(list(b.values()), "SAM")
        lines.append(
            f"| {h} | {cell(c['ERGAS'], 'c ERGAS')} | {cell(c['SAM'], 'c SAM')} | {cell(c['HQNR'], 'c HQNR')} "
            f"| {cell(u['ERGAS'], 'u ERGAS')} | {cell(u['SAM'], 'u SAM')} | {cell(u['HQNR'], 'u HQNR')} "
            f"| {cell(v4.get('ERGAS'), 'v ERGAS')}{mark} | {cell(v4.get('SAM'), 'v SAM')} "
            f"| {cell(v4.get('HQNR'), 'v HQNR')} | {cell(v4f.get('ERGAS'), 'f ERGAS')}{mark} "
            f"| {cell(v4f.get('SAM'), 'f SAM')} "
            f"| {cell(best_e[1] if best_e else None, 'b ERGAS')} ({best_e[0] if best_e else '-'}) "
            f"| {cell(best_s[1] if best_s else None, 'b SAM')} ({best_s[0] if best_s else '-'}) |")
    if len(folds) > 1:
        keys = ["c ERGAS", "c SAM", "c HQNR", "u ERGAS", "u SAM", "u HQNR", "v ERGAS", "v SAM", "v HQNR",
                "f ERGAS", "f SAM", "b ERGAS", "b SAM"]
        means = [(sum(sums[k]) / len(sums[k]) if len(sums.get(k, [])) == len(folds) else None) for k in keys]
        lines.append("| **mean** | " + " | ".join("-" if m is None else (f"{m:.4f}" if k.endswith("HQNR")
                                                                         else f"{m:.3f}")
                                                   for k, m in zip(keys, means, strict=True)) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    from psdnet_qgis.training.scenes import VHR_LOSO, default_data_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=default_data_dir())
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="fast8")
    ap.add_argument("--held-out", default=",".join(VHR_LOSO), help="folds to run (default: all six)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1, help="folds trained at once (one thread each)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each training (a lone --final: 2)")
    ap.add_argument("--work", default=None, help="default runs/loso_<recipe>")
    ap.add_argument("--bench", type=Path, default=ROOT / "runs" / "bench" / "bench_quality.json",
                    help="bench_quality.json with the bundled models' and classical rows of these scenes")
    ap.add_argument("--final", action="store_true", help="train the recipe on all six scenes and stop")
    a = ap.parse_args(argv)
    a.work = a.work or str(ROOT / "runs" / f"loso_{a.recipe}")
    logging.basicConfig(level=logging.WARNING)
    scenes = list(VHR_LOSO)
    if a.final:
        print(train_fold(a, None, scenes))
        return 0
    held = [h.strip() for h in a.held_out.split(",") if h.strip()]

    def fold(h: str, weights: Path) -> dict[str, Any]:
        cache = Path(a.work) / f"held_{h}" / "scores.json"
        if cache.exists():
            return json.loads(cache.read_text())
        res = {"held_out": h, "recipe": a.recipe, "train": [s for s in scenes if s != h],
               "weights": str(weights), "scores": score(weights, h, a.data)}
        cache.write_text(json.dumps(res, indent=2))
        return res

    # Training runs in subprocesses from worker threads; each fold is scored in the main
    # thread as its training ends (the engine installs signal handlers: main thread only).
    with ThreadPoolExecutor(a.jobs) as pool:
        futures = {pool.submit(train_fold, a, h, scenes): h for h in held}
        done = {futures[f]: fold(futures[f], f.result()) for f in as_completed(futures)}
    folds = [done[h] for h in held]
    (Path(a.work) / "loso.json").write_text(json.dumps(folds, indent=2))
    text = "\n".join(table(folds, bench_rows(a.bench)))
    (Path(a.work) / "loso.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
