"""core.options: one list per choice, checked once with a message naming the option and its values."""

from __future__ import annotations

import re

import pytest

from psdnet_qgis.core import options
from psdnet_qgis.core.classical import METHODS as CLASSICAL
from psdnet_qgis.core.options import DEVICES, PRECISIONS, RunOptions, is_model_path
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
