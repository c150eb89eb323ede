"""The error hierarchy at the engine's boundary: each kind of problem has its class, and every
entry point turns any PSDNetError into the same one-line message and exit code."""

from __future__ import annotations

import sys

import pytest

import psdnet_qgis.__main__ as cli
from psdnet_qgis.engine.run import pansharpen
from psdnet_qgis.errors import (
    EXIT_INPUT,
    PSDNetCanceled,
    PSDNetError,
    PSDNetInputError,
    PSDNetOutputError,
    PSDNetResourceError,
)


def test_one_base_for_every_user_error() -> None:
    for kind in (PSDNetInputError, PSDNetOutputError, PSDNetResourceError):
        assert issubclass(kind, PSDNetError)
    assert issubclass(PSDNetInputError, ValueError)  # as before the hierarchy
    assert not issubclass(PSDNetCanceled, PSDNetError)  # a wish, not an error: its own exit code


@pytest.mark.parametrize("kind", [PSDNetInputError, PSDNetOutputError, PSDNetResourceError])
def test_cli_reports_every_kind_on_one_line_with_exit_2(kind, monkeypatch, capsys) -> None:
    def fail(args):
        raise kind("Output 'o.tif' could not be written\n  (No space left); free disk space.")

    monkeypatch.setattr(cli, "_pansharpen", fail)
    assert cli.main(["pansharpen", "p.tif", "m.tif", "o.tif"]) == EXIT_INPUT == 2
    err = capsys.readouterr().err
    assert err == "error: Output 'o.tif' could not be written (No space left); free disk space.\n"


def test_psdnet_without_torch_is_a_resource_error(pair, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "psdnet_qgis.model.weights", None)  # import fails like a missing torch
    out = tmp_path / "o.tif"
    with pytest.raises(PSDNetResourceError, match="torch cannot be imported.*classical method"):
        pansharpen(*pair, out, method="psdnet", model="auto")
    assert not out.exists()


def test_a_study_model_on_a_classical_base_is_refused_by_name(pair, tmp_path) -> None:
    torch = pytest.importorskip("torch")
    from psdnet_qgis.model.psdnet import PSDNet
    from psdnet_qgis.model.weights import save_model

    torch.manual_seed(0)
    save_model(PSDNet(4, 4, 8, base="mtf_glp_fs"), tmp_path / "onfs.pt")
    out = tmp_path / "o.tif"
    with pytest.raises(PSDNetInputError, match=r"Model 'onfs' adds its residual to a classical fusion \(mtf_glp_fs\)"):
        pansharpen(*pair, out, model=str(tmp_path / "onfs.pt"))
    assert not out.exists()
