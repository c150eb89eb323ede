"""Weights I/O and the model registry (the registry must not import torch)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from psdnet_qgis.core import registry
from psdnet_qgis.errors import PSDNetInputError
from psdnet_qgis.model.psdnet import PSDNet
from psdnet_qgis.model.weights import load_model, save_model, sha256_file

ROOT = Path(__file__).resolve().parents[2]
META = {
    "name": "tiny_r4_3b",
    "band_names": ["red", "green", "blue"],
    "rgb": [0, 1, 2],
    "sensor": "WorldView-3",
    "training_scenes": ["a"],
    "validation_scenes": ["b"],
    "licence": "CC-BY-4.0",
    "description": "test model",
    "version": "0.1",
}


@pytest.fixture()
def saved(tmp_path: Path) -> tuple[PSDNet, Path]:
    torch.manual_seed(0)
    net = PSDNet(3, 4, width=8)
    save_model(net, tmp_path / "tiny_r4_3b.pt", META)
    return net, tmp_path / "tiny_r4_3b.pt"


def test_round_trip(saved: tuple[PSDNet, Path]) -> None:
    net, pt = saved
    meta = json.loads(pt.with_suffix(".json").read_text())
    assert meta["sha256"] == sha256_file(pt)
    assert (meta["bands"], meta["ratio"], meta["width"], meta["normalisation"]) == (3, 4, 8, "zscore4")
    assert meta["file"] == "tiny_r4_3b.pt" and meta["sensor"] == "WorldView-3"
    stored = torch.load(pt, weights_only=True)
    assert all(v.dtype == torch.float16 for v in stored.values() if v.is_floating_point())

    for target in (pt, pt.with_suffix(".json"), str(pt)):
        model, m = load_model(target)
        assert not model.training and m.name == "tiny_r4_3b"
        for (k, a), b in zip(net.state_dict().items(), model.state_dict().values(), strict=True):
            assert b.dtype == torch.float32
            assert torch.equal(a.half().float(), b), k
    ms, pan = torch.rand(1, 3, 8, 8), torch.rand(1, 1, 32, 32)
    with torch.inference_mode():
        assert torch.allclose(model(ms, pan).out3, net.eval()(ms, pan).out3, atol=2e-2)


def test_tampered_and_missing_files_are_rejected(saved: tuple[PSDNet, Path]) -> None:
    _, pt = saved
    with pytest.raises(
        PSDNetInputError,
        match=(
            r"Model weights '.*tiny_r4_3b\.pt': SHA-256 mismatch \(expected 0{12}\.\.\., "
            r"file has [0-9a-f]{12}\.\.\.\); .*Reinstall the plugin or re-download/re-train the model\."
        ),
    ):
        load_model(pt, sha256="0" * 64)
    data = bytearray(pt.read_bytes())
    data[-10] ^= 0xFF
    pt.write_bytes(bytes(data))
    with pytest.raises(
        PSDNetInputError,
        match=(
            r"Model weights '.*tiny_r4_3b\.pt': SHA-256 mismatch \(expected [0-9a-f]{12}\.\.\., "
            r"file has [0-9a-f]{12}\.\.\.\); .*Reinstall the plugin or re-download/re-train the model\."
        ),
    ):
        load_model(pt)
    with pytest.raises(
        PSDNetInputError,
        match=(
            r"Model weights '.*nope\.pt' do not exist; give an existing \.pt file or a bundled model name "
            r"\(available: .*\)\."
        ),
    ):
        load_model(pt.with_name("nope.pt"))
    pt.with_suffix(".json").unlink()
    with pytest.raises(
        PSDNetInputError,
        match=(
            r"Model weights '.*tiny_r4_3b\.pt' have no metadata file 'tiny_r4_3b\.json' beside them; "
            r"copy the \.json written by save_model/make train next to the \.pt\."
        ),
    ):
        load_model(pt)


def test_meta_must_match_architecture(tmp_path: Path) -> None:
    with pytest.raises(
        PSDNetInputError,
        match=r"save_model meta: bands=4 but the model has bands=3; fix the metadata\.",
    ):
        save_model(PSDNet(3, 4, width=8), tmp_path / "x.pt", {"bands": 4})


def test_registry_lists_selects_and_resolves(saved: tuple[PSDNet, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    _, pt = saved
    monkeypatch.setenv(registry.ENV_MODELS_DIR, str(pt.parent))
    (pt.parent / "notes.json").write_text('{"hello": 1}')  # not model metadata: skipped
    models = registry.list_models()
    assert [m.name for m in models] == ["tiny_r4_3b"]
    info = registry.auto_select(3, 4)
    assert info.path == str(pt.resolve()) and info.rgb == (0, 1, 2) and info.sensor == "WorldView-3"
    assert info.band_names == ("red", "green", "blue") and info.training_scenes == ("a",)
    assert registry.get_model("tiny_r4_3b") == info
    with pytest.raises(
        PSDNetInputError,
        match=(
            r"Model 'auto': no bundled model for 8 MS bands at ratio 2\. Available: tiny_r4_3b \(3 bands, ratio 4\)\. "
            r"Select matching MS bands, train a model for this sensor \(make train\), or use a classical method\."
        ),
    ):
        registry.auto_select(8, 2)
    with pytest.raises(
        PSDNetInputError,
        match=(
            r"Model 'missing': no bundled model of that name\. Available: tiny_r4_3b \(3 bands, ratio 4\)\. "
            r"Give one of these names, 'auto', or the path of a \.pt weights file with its \.json\."
        ),
    ):
        registry.get_model("missing")
    model, meta = load_model("tiny_r4_3b")  # bundled-name resolution
    assert meta.path == str(pt.resolve()) and model.bands == 3


def test_models_dir_supports_both_layouts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(registry.ENV_MODELS_DIR, raising=False)
    pkg = tmp_path / "psdnet_qgis"
    monkeypatch.setattr(registry, "PACKAGE_DIR", pkg)
    beside = tmp_path / "resources" / "models"  # source checkout
    inside = pkg / "resources" / "models"  # packaged plugin zip
    assert registry.models_dir() == beside
    beside.mkdir(parents=True)
    assert registry.models_dir() == beside
    inside.mkdir(parents=True)
    assert registry.models_dir() == inside
    assert registry.list_models() == []


def test_registry_does_not_import_torch() -> None:
    code = (
        "import sys; import psdnet_qgis.core.registry as r; r.list_models(); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr


def test_load_model_takes_a_registry_entry_without_reading_it_again(
        saved: tuple[PSDNet, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    _, pt = saved
    monkeypatch.setenv(registry.ENV_MODELS_DIR, str(pt.parent))
    info = registry.get_model("tiny_r4_3b")
    _, by_name = load_model("tiny_r4_3b")

    def no_second_read(*args: object, **kwargs: object) -> None:
        raise AssertionError("the registry was read again")

    monkeypatch.setattr(registry, "list_models", no_second_read)
    monkeypatch.setattr(registry.ModelInfo, "from_json", no_second_read)
    model, meta = load_model(info)
    assert meta == by_name and meta.extra == by_name.extra and meta.path == str(pt.resolve()) and model.bands == 3


def test_load_model_of_a_custom_file_returns_its_sidecar_as_a_model_info(tmp_path: Path) -> None:
    pt = tmp_path / "elsewhere" / "mine.pt"
    save_model(PSDNet(3, 4, width=8, stage1="whole"), pt,
               {**META, "name": "mine", "notes": "field campaign", "training": {"epochs": 2}})
    model, info = load_model(pt)
    assert isinstance(info, registry.ModelInfo) and model.stage1 == "whole"
    assert (info.name, info.file, info.bands, info.ratio, info.width) == ("mine", "mine.pt", 3, 4, 8)
    assert info.band_names == ("red", "green", "blue") and info.rgb == (0, 1, 2)
    assert (info.sensor, info.version, info.licence) == ("WorldView-3", "0.1", "CC-BY-4.0")
    assert info.training_scenes == ("a",) and info.validation_scenes == ("b",)
    assert info.sha256 == sha256_file(pt) and info.path == str(pt.resolve())
    assert info.meta_path == str(pt.with_suffix(".json").resolve())
    assert info.extra == {"notes": "field campaign", "training": {"epochs": 2}, "stage1": "whole"}
