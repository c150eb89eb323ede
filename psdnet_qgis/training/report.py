"""A markdown table of a training run's ``log.jsonl`` (``--summary RUN_DIR``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np


def log_summary(run_dir: str | os.PathLike, every: int = 5) -> str:
    """Markdown table of a run's ``log.jsonl`` (every ``every``-th student epoch + the best).

    Args:
        run_dir: a training run folder.
        every: keep one student epoch in ``every`` (the first, last and best are kept).
    """
    lines = [json.loads(x) for x in Path(run_dir, "log.jsonl").read_text().splitlines() if x.strip()]
    teacher = [d for d in lines if d["phase"] == "teacher"]
    student = [d for d in lines if d["phase"] == "student"]
    out = []
    if teacher:
        t = teacher[-1]
        out.append(f"Teacher: {t['epoch']} epochs, {t['steps']} steps, {t['elapsed_s'] / 60:.1f} min, "
                   f"final L1 sum {t['loss']:.4f}, {np.mean([d['samples_per_s'] for d in teacher]):.2f} "
                   "samples/s.\n")
    if not student:
        return "".join(out)
    best = min(student, key=lambda d: d["val"]["score"] if "val" in d else 1e9)
    scene = next(iter(student[0]["val"]["scenes"]))
    out.append(f"Student (validation on {scene}, bf16 forward during training):\n\n")
    out.append("| epoch | steps | min | lr | L1 sum | lambda*feat | SAM | ERGAS | Q2n | SAM bic | ERGAS bic |\n")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|\n")
    keep = {0, len(student) - 1, student.index(best)} | set(range(every - 1, len(student), every))
    for i, d in enumerate(student):
        if i not in keep:
            continue
        v = d["val"]["scenes"][scene]
        mark = " **best**" if d is best else ""
        out.append(f"| {d['epoch']}{mark} | {d['steps']} | {d['elapsed_s'] / 60:.1f} | {d['lr']:.1e} | "
                   f"{d['l1']:.4f} | {d['distill_weighted']:.4f} | {v['psdnet']['SAM']:.3f} | "
                   f"{v['psdnet']['ERGAS']:.3f} | {v['psdnet']['Q2n']:.3f} | {v['bicubic']['SAM']:.3f} | "
                   f"{v['bicubic']['ERGAS']:.3f} |\n")
    out.append(f"\nMean student throughput {np.mean([d['samples_per_s'] for d in student]):.2f} "
               f"samples/s ({student[-1].get('steps', 0)} steps).\n")
    return "".join(out)
