# psdnet-qgis — every target installs what it needs when it is missing (Debian 12 or 13, root or sudo).
#   make demo                 fuse the embedded Landsat 8 demo scene (or PAN=... MS=... OUT=...)
#   make test                 the whole test suite on real QGIS (3.40 / 3.44 LTR; CI runs this)
#   make test-fast            the same without the tests marked slow (pytest -m "not slow")
#   make lint                 ruff + mypy on core/, model/ and engine/ (pyproject.toml; CI runs this first)
#   make package              plugin zip for QGIS's "Install from ZIP"
#   make train MODEL=landsat3 retrain a bundled model from DATA (default ../shared/data)
#   make bench / bench-speed  quality and speed tables
#   make ablation             the vhr4 ablation table of docs/TRAINING_LOG.md
#   make gpu-kit              build/gpu for a lent GPU (exported pairs + a CPU dry run; docs/DEVELOPER.md)
SHELL := /bin/bash
PYTHON_SYS ?= /usr/bin/python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch: empty = keep a torch the venv already sees (Debian 13's python3-torch), else the pinned
# CPU wheel torch==2.13.0+cpu, else the index's default build (scripts/install_python.sh).
# Choose a build, e.g. CUDA: TORCH_SPEC="torch==2.13.0" (CUDA wheels from PyPI, about 3 GB).
TORCH_SPEC ?=
# Extra pip options, e.g. PIP_EXTRA="--extra-index-url https://download.pytorch.org/whl/cpu"
PIP_EXTRA ?=
DATA ?= ../shared/data
MODEL ?= landsat3
# Optional wall-clock budget in minutes; empty = the epoch counts of TRAIN_FLAGS decide.
MINUTES ?=
# Training recipes: the exact runs that made the bundled models (docs/TRAINING_LOG.md,
# "Reproduce / resume"). Epoch counts only, so the machine's speed or load does not change the schedule.
# vhr4: 15 student epochs of L1 + distillation, then SAM loss and EMA from epoch 16 (--refine-from).
TRAIN_FLAGS_vhr4 ?= --teacher-epochs 9 --epochs 30 --batch 4 --patch 64 --balance 0 --sam-weight 3 --ema 0.99 --refine-from 16
TRAIN_FLAGS_landsat3 ?= --teacher-epochs 5 --epochs 12 --batch 4 --patch 64 --steps-per-epoch 100
TRAIN_FLAGS_landsat3_fast ?= --width 8 --epochs 10 --batch 4 --patch 64 --steps-per-epoch 100 --threads 1
TRAIN_FLAGS_vhr4_fast ?= --width 8 --epochs 30 --batch 4 --patch 64 --steps-per-epoch 50 --threads 1
DEMO_DIR ?= build/demo
export QT_QPA_PLATFORM ?= offscreen
export XDG_RUNTIME_DIR ?= /tmp/psdnet-runtime-$(shell id -u)

STAMP := $(VENV)/.psdnet-deps

.PHONY: deps system demo test test-fast lint package train ablation bench bench-speed gpu-kit clean

system:
	@bash scripts/install_system.sh

# Python packages of the venv besides torch (pinned in constraints.txt where it matters).
PY_PKGS := tqdm pytest "pytest-qgis==5.0.2" "ruff==0.17.6" "mypy==2.4.1" "dask==2026.8.0" "distributed==2026.8.0"

$(STAMP): scripts/install_system.sh scripts/install_python.sh constraints.txt Makefile
	@PYTHON_SYS=$(PYTHON_SYS) bash scripts/install_system.sh
	@VENV=$(VENV) PYTHON_SYS=$(PYTHON_SYS) TORCH_SPEC='$(TORCH_SPEC)' PIP_EXTRA='$(PIP_EXTRA)' \
		bash scripts/install_python.sh $(PY_PKGS)
	@touch $@

deps: $(STAMP)

$(XDG_RUNTIME_DIR):
	@mkdir -p -m 0700 $@

demo: deps | $(XDG_RUNTIME_DIR)
	$(PY) scripts/demo.py --out-dir $(DEMO_DIR) $(if $(PAN),--pan $(PAN)) $(if $(MS),--ms $(MS)) $(if $(OUT),--out $(OUT))

test: deps | $(XDG_RUNTIME_DIR)
	$(PY) -m pytest

# the edit-test loop: everything but the tests marked slow (pyproject.toml markers)
test-fast: deps | $(XDG_RUNTIME_DIR)
	$(PY) -m pytest -m "not slow"

# ruff with the rules of pyproject.toml, then mypy on core/, model/ and engine/ ([tool.mypy]; CI runs both
# before the tests)
lint: deps
	$(PY) -m ruff check .
	$(PY) -m mypy

package:
	$(PYTHON_SYS) scripts/package.py --out dist

train: deps
	$(PY) -m psdnet_qgis.training --model $(MODEL) --data $(DATA) --out runs/$(MODEL) --resume $(TRAIN_FLAGS_$(MODEL)) $(if $(MINUTES),--minutes $(MINUTES))

ablation: deps
	$(PY) scripts/ablation.py --data $(DATA) --out runs/abl

# Every scene a bundled model can run: the validation scenes, then the others (rows say which the model saw).
BENCH_SCENES ?= pleiades_gizeh,osman_vhr,rotterdam1_wv2,rotterdam3_wv2,shanghai_wv3,sattest_l8,madrid_l8,istanbul_l8
bench: deps | $(XDG_RUNTIME_DIR)
	$(PY) scripts/bench_quality.py --data $(DATA) --out runs/bench --scenes $(BENCH_SCENES) $(BENCH_FLAGS)

# make bench-speed: in a few minutes, the CPU class, engine speed and peak RSS of both vhr4 models
# (classical "exp" rows: the tile loop's own memory), calibration cost and the runtime table
# (torch eager fp32 / bf16, the fused bf16 copy, ONNX Runtime, OpenVINO f32 / bf16; docs/RUNTIMES.md;
# rows a CPU cannot run say why). BENCH_LONG=1: the issue-23 sizes
# (1, 16, 100 MPx; the 100 MPx fast-model run takes about 12 minutes of one core, the 16 MPx
# full-model one 14) and the 1024 px runtime tile with torch.compile too.
# onnxruntime / openvino are not project dependencies: they go to BENCH_RT_PATH (pip --target).
BENCH_LONG ?=
, := ,
BENCH_RT_PATH ?= build/bench-runtimes
BENCH_SIZES := $(if $(BENCH_LONG),1024$(,)4096,1024)
BENCH_FAST_SIZES := $(if $(BENCH_LONG),10240,2048)
BENCH_RT_LIST := eager-fp32$(,)eager-bf16$(,)fused-bf16$(,)ort$(,)openvino$(,)openvino-bf16
BENCH_RT_FLAGS ?= $(if $(BENCH_LONG),--pan 1024 --runtimes $(BENCH_RT_LIST)$(,)compile,--pan 576 --repeat 1 --runtimes $(BENCH_RT_LIST))
bench-speed: deps
	@$(PY) -c "import onnxruntime, openvino" 2>/dev/null || PYTHONPATH=$(BENCH_RT_PATH) $(PY) -c "import onnxruntime, openvino" 2>/dev/null || \
		$(PY) -m pip install -q --target $(BENCH_RT_PATH) "numpy==$$($(PY) -c 'import numpy; print(numpy.__version__)')" \
			onnxruntime openvino onnx onnxscript || echo "onnxruntime/openvino not installed: their rows say so"
	$(PY) scripts/bench_speed.py --modes engine --threads 1 --models psdnet_vhr4,psdnet_vhr4_fast,exp \
		--sizes $(BENCH_SIZES) --fast-sizes $(BENCH_FAST_SIZES) $(BENCH_SPEED_FLAGS)
	$(PY) scripts/bench_speed.py --modes engine --sizes 2048 --threads 1 $(BENCH_SPEED_FLAGS) \
		--models psdnet_vhr4_fast,psdnet_vhr4_fast:nocal
	$(PY) scripts/bench_runtimes.py --threads 1 --extra-path $(abspath $(BENCH_RT_PATH)) $(BENCH_RT_FLAGS)

# A lent GPU (docs/DEVELOPER.md, "A lent GPU"): the Wald pairs of the six VHR scenes (training/scenes.py
# VHR_LOSO, float32: about 8 MiB) in build/gpu/pairs, then a tiny CPU dry run of scripts/gpu_session.sh
# with GDAL and QGIS made unimportable; fails when one of its parts failed.
gpu-kit: deps
	$(PY) scripts/export_pairs.py --model vhr4 --dtype float32 --val-scenes none --out build/gpu/pairs \
		--data $(DATA) --train-scenes "$$($(PY) -c 'from psdnet_qgis.training.scenes import VHR_LOSO; print(",".join(VHR_LOSO))')"
	rm -rf build/gpu-dryrun
	OUT=build/gpu-dryrun/out GPU_QUICK=1 DEVICE=cpu NO_GDAL=1 PYTHON=$(PY) PSDNET_THREADS=1 OMP_NUM_THREADS=1 \
		bash scripts/gpu_session.sh
	$(PY) -c 'import json, sys; p = json.load(open("build/gpu-dryrun/out/summary.json"))["parts"]; \
		bad = {k: v for k, v in p.items() if v["rc"] != "0"}; print("dry run:", bad or "all parts ok"); sys.exit(bool(bad))'
	du -sh build/gpu

clean:
	rm -rf build dist runs/bench
