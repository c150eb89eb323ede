"""The command line, the batch command and the engine take their choices from core.options."""

from __future__ import annotations

import argparse
import inspect
from dataclasses import MISSING, fields

import pytest

from psdnet_qgis.__main__ import _parser
from psdnet_qgis.core.options import (
    ADAPT_LOSSES,
    ADAPT_PARTS,
    DEVICES,
    OTHER_METHODS,
    PRECISIONS,
    TORCH_VARIANTS,
    RunOptions,
    run_methods,
)
from psdnet_qgis.engine.batch import jobs as batch_jobs
from psdnet_qgis.engine.run import pansharpen
from psdnet_qgis.errors import PSDNetInputError


def _choices(command: str) -> dict[str, tuple]:
    """{option dest: its choices} of a subcommand of ``python -m psdnet_qgis``."""
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: tuple(a.choices) for a in sub.choices[command]._actions if a.choices}


def test_cli_choices_are_the_option_lists() -> None:
    assert _choices("pansharpen") == {"method": run_methods(), "device": DEVICES, "precision": PRECISIONS,
                                      "other_bands_method": OTHER_METHODS}
    assert _choices("batch") == {"device": DEVICES, "precision": PRECISIONS}
    assert _choices("adapt") == {"losses": ADAPT_LOSSES, "part": ADAPT_PARTS}
    assert _choices("install-torch") == {"variant": TORCH_VARIANTS}


def test_run_options_are_the_engines_keywords() -> None:
    """RunOptions' fields and defaults are pansharpen's keywords besides paths and feedback."""
    params = inspect.signature(pansharpen).parameters
    engine = {n: p.default for n, p in params.items() if n not in ("pan", "ms", "out", "feedback")}
    ours = {f.name: f.default for f in fields(RunOptions)}
    assert MISSING not in ours.values()
    assert ours == engine


def test_the_engine_refuses_a_device_before_reading_the_inputs(tmp_path) -> None:
    with pytest.raises(PSDNetInputError, match="device 'tpu' is unknown; use one of auto, cuda, cpu"):
        pansharpen(str(tmp_path / "none.tif"), str(tmp_path / "none.tif"), str(tmp_path / "o.tif"), device="tpu")


def test_a_jobs_cell_is_checked_against_the_same_list(tmp_path) -> None:
    p = tmp_path / "jobs.csv"
    p.write_text("pan,ms,precision\na.tif,b.tif,fp8\n")
    with pytest.raises(PSDNetInputError) as err:
        batch_jobs.read_jobs(str(p), str(tmp_path))
    assert "line 2: precision 'fp8' is unknown; use one of auto, fp32, bf16, fp16." in str(err.value)


def test_the_engine_refuses_an_adaptation_option_before_reading_the_inputs(tmp_path) -> None:
    from psdnet_qgis.engine.adapt_scene import adapt_scene

    none = str(tmp_path / "none.tif")
    with pytest.raises(PSDNetInputError, match=r"^adapt_options part 'body' is unknown; use one of head, all\.$"):
        pansharpen(none, none, str(tmp_path / "o.tif"), adapt_seconds=5, adapt_options={"part": "body"})
    with pytest.raises(PSDNetInputError, match=r"^adapt_options losses 'l1' is unknown; use one of both, "):
        adapt_scene(none, none, str(tmp_path / "w.pt"), seconds=5, adapt_options={"losses": "l1"})
