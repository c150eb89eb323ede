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
from typing import Any

from psdnet_qgis.core.options import TRAINING_PRECISIONS
from psdnet_qgis.training.config import MODELS, REPO_ROOT, TrainConfig


def build_parser() -> argparse.ArgumentParser:
    """The options; every one named like a :class:`TrainConfig` field sets that field, and its
    default is that field's default (written once, in :class:`TrainConfig`)."""
    ap = argparse.ArgumentParser(prog="python -m psdnet_qgis.training", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    base = TrainConfig()

    def setting(flag: str, **kw: Any) -> None:
        """``--a-b`` sets the field ``a_b`` (AttributeError for a name TrainConfig lacks)."""
        ap.add_argument(flag, default=getattr(base, flag[2:].replace("-", "_")), **kw)

    ap.add_argument("--model", choices=sorted(MODELS), required=True)
    ap.add_argument("--data", default=None, help="shared data folder (default ../shared/data)")
    ap.add_argument("--pairs", default=None, metavar="DIR",
                    help="train on the Wald pairs of scripts/export_pairs.py instead of reading --data "
                         "(no GDAL needed; training/pairs_io.py)")
    ap.add_argument("--out", default=None, help="run folder (default runs/<model>)")
    setting("--minutes", type=float, help="total time budget (teacher + student)")
    setting("--epochs", type=int, help="max student epochs")
    setting("--teacher-epochs", type=int)
    setting("--teacher-frac", type=float, help="share of --minutes for the teacher")
    setting("--steps-per-epoch", type=int)
    setting("--batch", type=int)
    setting("--patch", type=int, help="gt patch side in pixels (MS px at full res)")
    setting("--balance", type=float,
            help="scene sampling weight = valid area ** balance (0 = equal per scene)")
    setting("--width", type=int)
    setting("--lr", type=float)
    setting("--lam", type=float, help="distillation weight (default: calibrated)")
    setting("--distill-ratio", type=float)
    setting("--sam-weight", type=float,
            help="weight of a spectral-angle loss on out3 (radiometric scale)")
    setting("--ema", type=float,
            help="EMA decay of the student weights validated/exported (0 = off, e.g. 0.99)")
    setting("--refine-from", type=int, metavar="EPOCH",
            help="two-phase student: SAM loss and EMA only from this student epoch on "
                 "(the EMA starts there; no SAM loss for the teacher); 0 = from the start")
    setting("--norm", choices=("zscore4", "joint4"),
            help="input normalisation (core.radiometry): per-band or pooled MS statistics")
    setting("--stage1", choices=("multipatch", "whole"),
            help="student stage 1 on four sub-patches (paper) or the whole patch (ablation)")
    setting("--inputs", choices=("image", "detail"),
            help="what the network's stems see: the images (paper) or their high-pass detail "
                 "and the previous stage's residual (model/psdnet.py INPUT_MODES)")
    setting("--base", choices=("bicubic", "mtf_glp_fs", "mtf_glp_hpm"),
            help="what the stages' residuals are added to: bicubic MS (paper) or a classical "
                 "fusion of each training pair (model/psdnet.py BASE_MODES)")
    setting("--teacher-from", metavar="CKPT",
            help="take the frozen teacher from another run's last.pt (ablations)")
    setting("--fullres-epochs", type=int,
            help="epochs of full-resolution no-reference fine-tuning after the student")
    setting("--fullres-patch", type=int, help="full-resolution patch side (PAN px)")
    setting("--fullres-batch", type=int)
    setting("--fullres-spectral", type=float, help="weight of the spectral term")
    setting("--fullres-spatial", type=float, help="weight of the spatial term")
    setting("--fullres-lr", type=float)
    setting("--init", metavar="WEIGHTS",
            help="start from exported weights and only run the fine-tuning stage")
    setting("--seed", type=int)
    setting("--threads", type=int)
    setting("--precision", choices=TRAINING_PRECISIONS)
    setting("--device")
    ap.add_argument("--export", default=None,
                    help="weights path (default resources/models/psdnet_<model>.pt; 'none' to skip)")
    setting("--resume", action="store_true")
    setting("--sensor-variety", type=float, metavar="P",
            help="probability that a training patch is redrawn as another sensor would make it "
                 "(random MTF gains, PAN band mixing, radiometry; training/augment.py); 0 = off")
    setting("--variety-parts",
            help="parts of --sensor-variety: mtf (always), pan (band mixing), radiometry (gain/offset)")
    setting("--train-scenes", metavar="A,B",
            help="training scenes instead of the model's (training/scenes.py SCENES names)")
    setting("--val-scenes", metavar="C",
            help="validation scenes instead of the model's; 'none': no validation, the last epoch "
                 "(its EMA when on) is exported (leave-one-scene-out)")
    setting("--notes", help="free text stored in the exported metadata")
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

    model, info = load_model(a.evaluate)
    norm = info.normalisation
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

    if a.pairs:
        from psdnet_qgis.training.pairs_io import load_pairs_dir

        train_pairs, val_pairs = load_pairs_dir(a.pairs, base_model(a.model), a.norm, a.train_scenes, a.val_scenes)
    else:
        train_pairs, val_pairs = load_pairs(base_model(a.model), a.data, a.norm, a.train_scenes, a.val_scenes,
                                            base=a.base)
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
