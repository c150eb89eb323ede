#!/usr/bin/env bash
# Does the training code of this checkout compute what an earlier commit's computed, bit for bit,
# on this CPU? Runs the same short recipe (teacher, lambda calibration, student, validation,
# export) in a git worktree of OLD and in this checkout, and compares every tensor of the final
# checkpoints (weights, EMA, optimiser state) and of the exported weights.
#
#   bash scripts/check_train_repro.sh [OLD_COMMIT] [MODEL] [PRECISION]
#   e.g. bash scripts/check_train_repro.sh 3eb4946 landsat3 auto   # auto: bf16 where the CPU has it
#
# About 6 minutes per side for landsat3 on one core. Exit status 0 when identical.
set -euo pipefail
OLD=${1:-3eb4946}
MODEL=${2:-landsat3}
PRECISION=${3:-auto}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY="$ROOT/.venv/bin/python"
DATA=${DATA:-$ROOT/../shared/data}
WORK=$(mktemp -d /tmp/train-repro.XXXXXX)
trap 'git -C "$ROOT" worktree remove --force "$WORK/old" >/dev/null 2>&1 || true' EXIT
FLAGS=(--teacher-epochs 2 --epochs 2 --batch 4 --patch 64 --steps-per-epoch 25 --threads 1
       --precision "$PRECISION" --no-progress)

git -C "$ROOT" worktree add --detach "$WORK/old" "$OLD" >/dev/null
run() {  # run <tree> <side>
    local entry=psdnet_qgis.training
    [ -f "$1/psdnet_qgis/training/__main__.py" ] || entry=psdnet_qgis.model.train
    mkdir -p "$WORK/$2"
    (cd "$1" && PYTHONPATH="$1" "$PY" -m "$entry" --model "$MODEL" --data "$DATA" --out "$WORK/$2/run" \
        "${FLAGS[@]}" --export "$WORK/$2/export/m.pt" > "$WORK/$2.log" 2>&1)
}
echo "old ($OLD) and this checkout, model $MODEL, precision $PRECISION, in $WORK"
run "$WORK/old" old
run "$ROOT" new
"$PY" - "$WORK" <<'EOF'
import sys
from pathlib import Path

import torch

work = Path(sys.argv[1])


def flat(d, p=""):
    if isinstance(d, dict):
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{p}/{k}"))
        return out
    return {p: d}


bad = 0
for rel in ("run/last.pt", "export/m.pt"):
    a = flat(torch.load(work / "old" / rel, map_location="cpu", weights_only=False))
    b = flat(torch.load(work / "new" / rel, map_location="cpu", weights_only=False))
    tensors = [k for k in a if isinstance(a[k], torch.Tensor)]
    diff = [k for k in tensors if k not in b or a[k].shape != b[k].shape or not torch.equal(a[k], b[k])]
    print(f"{rel}: {len(tensors)} tensors, {len(diff)} differ" + (f" (first: {diff[0]})" if diff else ""))
    bad += len(diff)
print("IDENTICAL" if bad == 0 else "DIFFERENT")
sys.exit(1 if bad else 0)
EOF
