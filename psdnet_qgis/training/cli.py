"""Train the bundled PSDNet models (reduced-resolution Wald pairs, knowledge distillation).

Command line::

    python -m psdnet_qgis.training --model vhr4 --data ../shared/data --out runs/vhr4 \
        --minutes 60 [--epochs N] [--resume]
    python -m psdnet_qgis.training --model vhr4 --evaluate resources/models/psdnet_vhr4.pt
    python -m psdnet_qgis.training --model vhr4 --summary runs/vhr4

``make train MODEL=...`` runs the recipes that made the bundled weights
(``docs/TRAINING_LOG.md``, "Reproduce / resume"). The schedule is described in
``training.loop``; on CPU, bf16 autocast + channels-last is used when available
(``training.runtime``).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from dataclasses import fields

from psdnet_qgis.training.config import MODELS, REPO_ROOT, TrainConfig


def build_parser() -> argparse.ArgumentParser:
    """The options; every one named like a :class:`TrainConfig` field sets that field."""
    ap = argparse.ArgumentParser(prog="python -m psdnet_qgis.training", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=sorted(MODELS), required=True)
    ap.add_argument("--data", default=None, help="shared data folder (default ../shared/data)")
    ap.add_argument("--out", default=None, help="run folder (default runs/<model>)")
    ap.add_argument("--minutes", type=float, default=None, help="total time budget (teacher + student)")
    ap.add_argument("--epochs", type=int, default=200, help="max student epochs")
    ap.add_argument("--teacher-epochs", type=int, default=9)
    ap.add_argument("--teacher-frac", type=float, default=0.15, help="share of --minutes for the teacher")
    ap.add_argument("--steps-per-epoch", type=int, default=50)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=64, help="gt patch side in pixels (MS px at full res)")
    ap.add_argument("--balance", type=float, default=0.5,
                    help="scene sampling weight = valid area ** balance (0 = equal per scene)")
    ap.add_argument("--width", type=int, default=28)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--lam", type=float, default=None, help="distillation weight (default: calibrated)")
    ap.add_argument("--distill-ratio", type=float, default=0.2)
    ap.add_argument("--sam-weight", type=float, default=0.0,
                    help="weight of a spectral-angle loss on out3 (radiometric scale)")
    ap.add_argument("--ema", type=float, default=0.0,
                    help="EMA decay of the student weights validated/exported (0 = off, e.g. 0.99)")
    ap.add_argument("--refine-from", type=int, default=0, metavar="EPOCH",
                    help="two-phase student: SAM loss and EMA only from this student epoch on "
                         "(the EMA starts there; no SAM loss for the teacher); 0 = from the start")
    ap.add_argument("--norm", choices=("zscore4", "joint4"), default="zscore4",
                    help="input normalisation (core.radiometry): per-band or pooled MS statistics")
    ap.add_argument("--stage1", choices=("multipatch", "whole"), default="multipatch",
                    help="student stage 1 on four sub-patches (paper) or the whole patch (ablation)")
    ap.add_argument("--teacher-from", default=None, metavar="CKPT",
                    help="take the frozen teacher from another run's last.pt (ablations)")
    ap.add_argument("--fullres-epochs", type=int, default=0,
                    help="epochs of full-resolution no-reference fine-tuning after the student")
    ap.add_argument("--fullres-patch", type=int, default=128, help="full-resolution patch side (PAN px)")
    ap.add_argument("--fullres-batch", type=int, default=2)
    ap.add_argument("--fullres-spectral", type=float, default=1.0, help="weight of the spectral term")
    ap.add_argument("--fullres-spatial", type=float, default=0.2, help="weight of the spatial term")
    ap.add_argument("--fullres-lr", type=float, default=1e-4)
    ap.add_argument("--init", default=None, metavar="WEIGHTS",
                    help="start from exported weights and only run the fine-tuning stage")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--export", default=None,
                    help="weights path (default resources/models/psdnet_<model>.pt; 'none' to skip)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--sensor-variety", type=float, default=0.0, metavar="P",
                    help="probability that a training patch is redrawn as another sensor would make it "
                         "(random MTF gains, PAN band mixing, radiometry; training/augment.py); 0 = off")
    ap.add_argument("--variety-parts", default="mtf,pan,radiometry",
                    help="parts of --sensor-variety: mtf (always), pan (band mixing), radiometry (gain/offset)")
    ap.add_argument("--train-scenes", default="", metavar="A,B",
                    help="training scenes instead of the model's (training/scenes.py SCENES names)")
    ap.add_argument("--val-scenes", default="", metavar="C",
                    help="validation scenes instead of the model's; 'none': no validation, the last epoch "
                         "(its EMA when on) is exported (leave-one-scene-out)")
    ap.add_argument("--notes", default="", help="free text stored in the exported metadata")
    ap.add_argument("--evaluate", default=None, metavar="WEIGHTS",
                    help="only evaluate these weights on the validation scene(s) and exit")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--summary", default=None, metavar="RUN_DIR",
                    help="print a markdown summary of a run's log.jsonl and exit")
    return ap


def _evaluate(a: argparse.Namespace) -> int:
    """``--evaluate WEIGHTS``: validation metrics, scale check and no-reference metrics as JSON."""
    import torch

    from psdnet_qgis.model.weights import load_model
    from psdnet_qgis.training.data import load_pairs
    from psdnet_qgis.training.evaluate import evaluate, full_resolution_eval, scale_check
    from psdnet_qgis.training.fast import base_model
    from psdnet_qgis.training.runtime import resolve_device

    model, meta = load_model(a.evaluate)
    norm = str(meta.get("normalisation", "zscore4"))
    a.model = base_model(a.model)  # a fast model is evaluated on its teacher's scenes
    _, val_pairs = load_pairs(a.model, a.data, norm, val_scenes=a.val_scenes)
    dev = resolve_device(a.device)
    model.to(dev, memory_format=torch.channels_last)
    res = evaluate(model, val_pairs, dev, classical=True)
    res["scale_check"] = scale_check(model, val_pairs, dev)
    res["full_resolution"] = full_resolution_eval(model, a.model, a.data, dev, norm)
    print(json.dumps(res, indent=2))
    return 0


def _train(a: argparse.Namespace) -> int:
    """Load the scenes, fill a :class:`TrainConfig` from the options, train, print the summary."""
    from psdnet_qgis.training.data import fullres_val_inputs, load_fullres_pairs, load_pairs
    from psdnet_qgis.training.fast import FAST_SUFFIX, base_model, train_fast
    from psdnet_qgis.training.loop import train

    train_pairs, val_pairs = load_pairs(base_model(a.model), a.data, a.norm, a.train_scenes, a.val_scenes)
    full_pairs = val_full = None
    if a.fullres_epochs > 0:
        full_pairs = load_fullres_pairs(a.model, a.data, a.norm)
        val_full = fullres_val_inputs(a.model, a.data, a.norm)
    export = a.export or str(REPO_ROOT / "resources" / "models" / f"psdnet_{a.model}.pt")
    # Every option named like a TrainConfig field sets it; out and export get their defaults.
    given = {f.name: getattr(a, f.name) for f in fields(TrainConfig) if hasattr(a, f.name)}
    given.update(out=a.out or f"runs/{a.model}", export=None if export.lower() == "none" else export)
    cfg = TrainConfig(**given)
    if a.model.endswith(FAST_SUFFIX):
        print(json.dumps(train_fast(cfg, train_pairs, val_pairs, progress=not a.no_progress),
                         indent=2, default=str))
        return 0
    summary = train(cfg, train_pairs, val_pairs, progress=not a.no_progress,
                    full_pairs=full_pairs, val_full=val_full)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see module docstring)."""
    a = build_parser().parse_args(argv)
    if a.summary:
        from psdnet_qgis.training.report import log_summary

        print(log_summary(a.summary))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    return _evaluate(a) if a.evaluate else _train(a)
