#!/usr/bin/env bash
# One command for a lent GPU machine (bare: python3 + torch/CUDA, numpy, pytest; no GDAL, no
# QGIS, no network). Everything it reports goes to $OUT (at most 8 files).
#
# Prepare here (GDAL + ../shared/data), then commit nothing of it (build/ is ignored):
#     make gpu-kit          # = python scripts/export_pairs.py --model vhr4 --dtype float32 \
#                           #     --train-scenes <the six VHR_LOSO scenes> --val-scenes none --out build/gpu/pairs
#                           #   then a CPU dry run of this script (GPU_QUICK=1 DEVICE=cpu NO_GDAL=1)
# A checkpoint of an earlier session goes to build/gpu/run/last.pt (copy it from that session's
# files); the training part resumes from it.
#
# Then the lead engineer makes ONE tool call (device time: 15 min per task in all):
#     run(command="bash scripts/gpu_session.sh", carry=["build/gpu"], timeout_s=560)
# and copies the returned files: last.pt -> build/gpu/run/last.pt (next session resumes),
# log.jsonl -> build/gpu/run/ (appended to by the loop), the exported weights wherever wanted.
#
# Parts, each under `timeout`, so one failing part does not sink the others (summary says which):
#   env    nvidia-smi -L, torch / CUDA / cuDNN versions         (scripts/gpu_checks.py env)
#   agree  bundled psdnet_vhr4 + psdnet_vhr4_fast, CPU vs CUDA, fp32 / TF32 / fp16 / bf16 with bounds
#   bench  MP/s at 16 and 100 MP output through the tiled predictor, fp32 / bf16 / fp16, batch 4 and
#          sized to GPU memory
#   tests  the model / training tests that need no GDAL (tests/model/test_cuda.py runs on the GPU)
#   train  python -m psdnet_qgis.training --pairs build/gpu/pairs --device cuda --resume ...
#          with the time left (epoch counts decide the schedule; `timeout` ends the session's share
#          and the loop's per-epoch checkpoint keeps what was done)
#
# Environment: OUT (required), DEVICE (cuda), GPU_QUICK=1 (tiny sizes: a CPU dry run),
#   NO_GDAL=1 (run python through scripts/nogdal.py: osgeo/qgis unimportable, as on the GPU machine),
#   PYTHON (python3), GPU_RUN (build/gpu/run; build/gpu-dryrun/run with GPU_QUICK=1), GPU_BUDGET_S (520: the whole script's wall-clock budget),
#   TRAIN_FLAGS (default: the LOSO "fast8_long" recipe of scripts/loso.py), TRAIN_MINUTES (optional
#   --minutes: a TOTAL over all resumed sessions, as the loop counts time already spent).
set -uo pipefail
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder that comes back}"
mkdir -p "$OUT"
DEVICE=${DEVICE:-cuda}
QUICK=${GPU_QUICK:-0}
BUDGET_S=${GPU_BUDGET_S:-520}
PY=${PYTHON:-python3}
PYRUN=("$PY")
[[ ${NO_GDAL:-0} == 1 ]] && PYRUN=("$PY" scripts/nogdal.py)
PAIRS=build/gpu/pairs
# the training run (resumed from its last.pt); a dry run (GPU_QUICK=1) uses its own folder outside
# build/gpu, so its tiny checkpoint never travels to the GPU as the run to resume
RUN=${GPU_RUN:-build/gpu/run}
[[ $QUICK == 1 && -z ${GPU_RUN:-} ]] && RUN=build/gpu-dryrun/run
WORK=$(mktemp -d)
LOG=$OUT/session.log
START=$(date +%s)
: > "$LOG"
touch "$WORK/start"
STATUS="$WORK/status.tsv"
: > "$STATUS"

if [[ $QUICK == 1 ]]; then
    BENCH_ARGS=(--sizes 0.6 --precisions fp32 --batches 1 --models psdnet_vhr4_fast --case-seconds 5)
    AGREE_ARGS=(--side 24)
    TESTS=(tests/training/test_pairs_io.py tests/model/test_cuda.py)
    DEFAULT_FLAGS="--width 4 --teacher-epochs 0 --lam 0 --epochs 2 --steps-per-epoch 2 --batch 2 --patch 64
                   --balance 0 --refine-from 2 --sam-weight 3 --ema 0.99 --threads 1"
    LIMITS=(env=60 agree=120 bench=120 tests=240)
else
    BENCH_ARGS=(--sizes 16,100 --precisions fp32,bf16,fp16 --batches 4,mem --case-seconds 5)
    AGREE_ARGS=(--side 136)
    TESTS=(tests/model/test_cuda.py tests/model/test_predictor.py tests/model/test_psdnet.py
           tests/model/test_weights.py tests/training/test_pairs_io.py tests/training/test_train.py)
    DEFAULT_FLAGS="--width 8 --teacher-epochs 0 --lam 0 --epochs 60 --steps-per-epoch 50 --batch 4
                   --patch 64 --balance 0 --refine-from 31 --sam-weight 3 --ema 0.99"
    LIMITS=(env=60 agree=90 bench=220 tests=100)
fi
limit() { local kv; for kv in "${LIMITS[@]}"; do [[ ${kv%%=*} == "$1" ]] && echo "${kv#*=}"; done; }
left() { echo $(( BUDGET_S - ($(date +%s) - START) )); }

# part NAME SECONDS CMD...: run under timeout, log, record rc and seconds
part() {
    local name=$1 secs=$2; shift 2
    local t0 rc
    t0=$(date +%s)
    echo "=== $name (limit ${secs}s, $(left)s of the budget left): $*" | tee -a "$LOG"
    timeout -k 10 "$secs" "$@" >> "$LOG" 2>&1
    rc=$?
    printf '%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - t0 ))" >> "$STATUS"
    echo "=== $name: rc $rc in $(( $(date +%s) - t0 ))s" | tee -a "$LOG"
}

# shellcheck disable=SC2016
part env "$(limit env)" bash -c 'nvidia-smi -L || echo "nvidia-smi: not available"
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true
    nvidia-smi -L > "$0/nvidia-smi.txt" 2>&1
    exec "$@"' "$WORK" "${PYRUN[@]}" scripts/gpu_checks.py env --out "$WORK/env.json"
part agree "$(limit agree)" "${PYRUN[@]}" scripts/gpu_checks.py agree --device "$DEVICE" --pairs "$PAIRS" \
    "${AGREE_ARGS[@]}" --out "$WORK/agree.json"
part bench "$(limit bench)" "${PYRUN[@]}" scripts/gpu_checks.py bench --device "$DEVICE" "${BENCH_ARGS[@]}" \
    --out "$WORK/bench.json"
part tests "$(limit tests)" "${PYRUN[@]}" -m pytest -q -p no:pytest_qgis -p no:cacheprovider "${TESTS[@]}"

# ---- training: whatever the budget leaves, minus 40 s for copying and the summary
mkdir -p "$RUN"
TRAIN_S=$(( $(left) - 40 ))
read -r -d "" -a FLAGS <<< "${TRAIN_FLAGS:-$DEFAULT_FLAGS}" || true
[[ -n ${TRAIN_MINUTES:-} ]] && FLAGS+=(--minutes "$TRAIN_MINUTES")
if [[ -f $RUN/last.pt ]]; then echo "resuming from $RUN/last.pt" | tee -a "$LOG"; fi
if (( TRAIN_S >= 30 )); then
    part train "$TRAIN_S" "${PYRUN[@]}" -m psdnet_qgis.training --model vhr4 --pairs "$PAIRS" \
        --device "$DEVICE" --resume --out "$RUN" --export "$RUN/psdnet_vhr4_gpu.pt" --no-progress \
        --notes "lent GPU session (scripts/gpu_session.sh), pairs of scripts/export_pairs.py" "${FLAGS[@]}"
else
    printf 'train\tskipped\t0\n' >> "$STATUS"
fi

# ---- files back: at most 8 (session.log, summary.json, summary.md + up to 5 below), 16 MiB each
for f in last.pt log.jsonl psdnet_vhr4_gpu.pt psdnet_vhr4_gpu.json; do
    [[ -f $RUN/$f ]] || continue
    if [[ $f == psdnet_* && ! $RUN/$f -nt $WORK/start ]]; then
        echo "not copied: $RUN/$f was exported before this session" | tee -a "$LOG"; continue
    fi
    if (( $(stat -c %s "$RUN/$f") > 15 * 1024 * 1024 )); then
        echo "not copied: $RUN/$f is $(( $(stat -c %s "$RUN/$f") >> 20 )) MiB (> 15 MiB per file)" | tee -a "$LOG"
    else
        cp "$RUN/$f" "$OUT/"
    fi
done
"${PYRUN[@]}" scripts/gpu_checks.py summary --work "$WORK" --run "$RUN" --out "$OUT/summary.json" \
    --md "$OUT/summary.md" >> "$LOG" 2>&1 || echo "summary failed" | tee -a "$LOG"
echo "=== done in $(( $(date +%s) - START ))s; files: $(ls "$OUT" | tr '\n' ' ')" | tee -a "$LOG"
rm -rf "$WORK"
