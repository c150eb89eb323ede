"""`python -m psdnet_qgis.training`: the options' defaults are TrainConfig's (written once)."""

from __future__ import annotations

from dataclasses import fields

from psdnet_qgis.training.cli import build_parser
from psdnet_qgis.training.config import TrainConfig

#: Fields the command line resolves itself: --model is required, --out and --export default
#: to paths that depend on the model (runs/<model>, resources/models/psdnet_<model>.pt).
RESOLVED_BY_THE_CLI = {"model", "out", "export"}
#: Fields without an option (internal settings of the loops).
NO_OPTION = {"lr_floor", "reserve_s"}


def test_parser_defaults_are_the_config_defaults() -> None:
    args = vars(build_parser().parse_args(["--model", "vhr4"]))
    config = TrainConfig()
    for f in fields(TrainConfig):
        if f.name in RESOLVED_BY_THE_CLI | NO_OPTION:
            continue
        assert f.name in args, f"TrainConfig.{f.name} has no --{f.name.replace('_', '-')} option"
        assert args[f.name] == getattr(config, f.name), f.name


def test_every_option_named_like_a_field_sets_it() -> None:
    args = build_parser().parse_args(["--model", "landsat3", "--epochs", "3", "--sam-weight", "0.5",
                                      "--refine-from", "2", "--resume", "--notes", "x"])
    assert (args.model, args.epochs, args.sam_weight, args.refine_from, args.resume, args.notes) == (
        "landsat3", 3, 0.5, 2, True, "x")
    assert args.teacher_epochs == TrainConfig().teacher_epochs
