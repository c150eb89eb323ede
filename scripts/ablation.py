"""Ablations of the vhr4 recipe (docs/TRAINING_LOG.md): short, fixed-length student runs that differ
in one setting each, sharing one teacher, validated on Rotterdam 2 (never trained on).

    python scripts/ablation.py [--data ../shared/data] [--out runs/abl] [--epochs 10] [--jobs 2]
    python scripts/ablation.py --table            # only print the table of finished runs

Each run is ``python -m psdnet_qgis.training --model vhr4`` with the bundled vhr4
settings (batch 4, 64 px patches, equal scene sampling, SAM loss 3, EMA 0.99), a fixed
number of student epochs (no time budget, so contention on the machine does not change
what is trained) and ``--teacher-from`` the shared teacher. The table reports the last
epoch (no selection on the validation scene) and the best epoch.
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
BASE = ["--model", "vhr4", "--batch", "4", "--patch", "64", "--balance", "0", "--sam-weight", "3",
        "--ema", "0.99", "--threads", "1", "--no-progress", "--export", "none"]
TEACHER_EPOCHS = 3  # short: the ablation budget; the bundled models use 9 (vhr4) and 5 (landsat3)
#: name -> extra flags (one change each from "paper").
VARIANTS: dict[str, list[str]] = {
    "paper": [],
    "paper_seed1": ["--seed", "1"],
    "no_distill": ["--lam", "0"],
    "distill_x5": ["--distill-ratio", "1.0"],
    "stage1_whole": ["--stage1", "whole"],
    "no_distill_joint4": ["--lam", "0", "--norm", "joint4"],
}
LABELS = {
    "paper": "paper recipe: multipatch stage 1, distillation (feature term 0.2 x L1), zscore4",
    "paper_seed1": "same, seed 1 (run-to-run noise)",
    "no_distill": "no distillation (lambda = 0)",
    "distill_x5": "distillation 5x stronger (feature term 1.0 x L1)",
    "stage1_whole": "stage 1 on the whole patch instead of 4 sub-patches",
    "no_distill_joint4": "no distillation, joint4 normalisation (compare with no_distill)",
}


def _run(args: list[str], log: Path) -> int:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with open(log, "w", encoding="utf-8") as f:
        return subprocess.call([sys.executable, "-m", "psdnet_qgis.training", *args],
                               stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env)


def _records(run: Path) -> list[dict]:
    p = run / "log.jsonl"
    if not p.exists():
        return []
    recs = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    return [r for r in recs if r.get("phase") == "student" and "val" in r]


def table(out: Path) -> str:
    rows = ["| run | change | epochs | SAM last | ERGAS last | Q2n last | SAM best | ERGAS best | best epoch |",
            "|---|---|---|---|---|---|---|---|---|"]
    bic = None
    for name in VARIANTS:
        recs = _records(out / name)
        if not recs:
            rows.append(f"| {name} | {LABELS[name]} | not run | | | | | | |")
            continue
        scene = next(iter(recs[-1]["val"]["scenes"]))
        last = recs[-1]["val"]["scenes"][scene]["psdnet"]
        bic = recs[-1]["val"]["scenes"][scene]["bicubic"]
        best = min(recs, key=lambda r: r["val"]["score"])
        b = best["val"]["scenes"][scene]["psdnet"]
        rows.append(f"| {name} | {LABELS[name]} | {recs[-1]['epoch']} | {last['SAM']:.3f} | {last['ERGAS']:.3f} | "
                    f"{last['Q2n']:.3f} | {b['SAM']:.3f} | {b['ERGAS']:.3f} | {best['epoch']} |")
    if bic:
        rows.append(f"| bicubic | (reference) | | {bic['SAM']:.3f} | {bic['ERGAS']:.3f} | {bic['Q2n']:.3f} | | | |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", default="runs/abl")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=None, help="subset of: " + " ".join(VARIANTS))
    ap.add_argument("--table", action="store_true")
    a = ap.parse_args()
    out = Path(a.out)
    if not a.table:
        out.mkdir(parents=True, exist_ok=True)
        data = ["--data", a.data] if a.data else []
        teacher = out / "teacher" / "last.pt"
        if not teacher.exists():
            rc = _run(BASE + data + ["--out", str(out / "teacher"), "--teacher-epochs", str(TEACHER_EPOCHS),
                                     "--epochs", "0"], out / "teacher.log")
            if rc:
                print(f"teacher failed (rc {rc}), see {out / 'teacher.log'}")
                return rc
        names = a.only or list(VARIANTS)
        with ThreadPoolExecutor(max_workers=a.jobs) as pool:
            futs = {n: pool.submit(_run, BASE + data + VARIANTS[n] + [
                "--out", str(out / n), "--epochs", str(a.epochs), "--teacher-from", str(teacher), "--resume"],
                out / f"{n}.log") for n in names}
            for n, f in futs.items():
                print(f"{n}: rc {f.result()}")
    print(table(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
