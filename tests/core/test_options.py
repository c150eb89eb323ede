"""core.options: one list per choice, checked once with a message naming the option and its values."""

from __future__ import annotations

import re

import pytest

from psdnet_qgis.core import options
from psdnet_qgis.core.classical import METHODS as CLASSICAL
from psdnet_qgis.core.options import DEVICES, PRECISIONS, AdaptOptions, RunOptions, is_model_path
from psdnet_qgis.errors import PSDNetInputError


def test_defaults_are_valid_and_validate_returns_the_options() -> None:
    opts = RunOptions()
    assert opts.validate() is opts
    assert opts.device in DEVICES and opts.precision in PRECISIONS
    assert options.run_methods() == ("psdnet", *CLASSICAL)


@pytest.mark.parametrize("field, value, needle", [
    ("method", "pca", "method 'pca' is unknown; use one of psdnet, "),
    ("device", "tpu", "device 'tpu' is unknown; use one of auto, cuda, cpu (or cuda:N"),
    ("precision", "fp8", "precision 'fp8' is unknown; use one of auto, fp32, bf16, fp16."),
])
def test_a_value_outside_its_list_names_the_option_and_the_values(field, value, needle) -> None:
    with pytest.raises(PSDNetInputError) as err:
        RunOptions(**{field: value}).validate()
    assert needle in str(err.value)


@pytest.mark.parametrize("device", ["cuda:1", "CPU", " Auto ", None, ""])
def test_devices_as_the_model_spells_them(device) -> None:
    RunOptions(device=device).validate()


@pytest.mark.parametrize("device", ["cuda:", "cuda:x", "cpu:0"])
def test_only_cuda_takes_an_index(device) -> None:
    with pytest.raises(
        PSDNetInputError,
        match=re.escape(f"device {device!r} is unknown; use one of auto, cuda, cpu (or cuda:N for the N-th GPU)."),
    ):
        RunOptions(device=device).validate()


def test_precision_without_case_and_empty_is_auto() -> None:
    RunOptions(precision="BF16").validate()
    RunOptions(precision=None).validate()


@pytest.mark.parametrize("value, path", [
    ("auto", False), ("psdnet_vhr4", False), ("w.pt", True), ("w.pth", True), ("w.json", True),
    ("runs/w", True),
])
def test_is_model_path(value, path) -> None:
    assert is_model_path(value) is path


@pytest.mark.parametrize("field, value, message", [
    ("part", "body", "adapt_options part 'body' is unknown; use one of head, all."),
    ("losses", "l2", "adapt_options losses 'l2' is unknown; use one of both, fullres, wald."),
    ("lr", 0.0, "adapt_options lr 0.0: give a positive learning rate (default 0.001)."),
    ("lr", "1e-3", "adapt_options lr '1e-3': give a positive learning rate (default 0.001)."),
    ("spatial_weight", -1.0, "adapt_options spatial_weight -1.0: give a number >= 0 (default 1)."),
    ("max_steps", 2.5, "adapt_options max_steps 2.5: give a whole number of steps >= 0, or None to let "
                       "the budget decide."),
])
def test_adapt_options_refuse_a_value_naming_the_option_and_the_fix(field, value, message) -> None:
    with pytest.raises(PSDNetInputError, match=f"^{re.escape(message)}$"):
        AdaptOptions(**{field: value})
    with pytest.raises(PSDNetInputError, match=f"^{re.escape(message)}$"):  # the same through a dict
        AdaptOptions.of({field: value})


def test_adapt_options_of_a_dict_is_the_defaults_with_its_values() -> None:
    assert AdaptOptions.of(None) is None
    opts = AdaptOptions(losses="wald", max_steps=20)
    assert AdaptOptions.of(opts) is opts
    assert AdaptOptions.of({"losses": "wald", "max_steps": 20}) == opts
    assert AdaptOptions.of({}) == AdaptOptions() == AdaptOptions(part="head", losses="both", lr=1e-3,
                                                                   spatial_weight=1.0, max_steps=None)
    assert RunOptions(adapt_options=opts).validate().adapt_options is opts


def test_adapt_options_of_a_dict_refuses_an_unknown_key() -> None:
    with pytest.raises(PSDNetInputError, match=re.escape(
            "adapt_options has no option 'loss', 'steps'; use part, losses, lr, spatial_weight, max_steps.")):
        AdaptOptions.of({"loss": "wald", "steps": 3})
    with pytest.raises(PSDNetInputError, match=re.escape("adapt_options 'wald': give an AdaptOptions")):
        AdaptOptions.of("wald")  # type: ignore[arg-type]
