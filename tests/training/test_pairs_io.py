"""Exported Wald pairs (training/pairs_io.py, scripts/export_pairs.py): the .npz round trip and
training from them without GDAL (the lent-GPU path, scripts/gpu_session.sh)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from psdnet_qgis.errors import PSDNetInputError
from psdnet_qgis.training.data import crop_pair, largest_valid_window, make_wald_pair
from psdnet_qgis.training.pairs_io import load_pairs_dir, read_manifest, save_pairs

ROOT = Path(__file__).resolve().parents[2]


def _pair(seed: int, name: str, hole: bool = False):
    rng = np.random.default_rng(seed)
    h = w = 40
    r = 4
    base = rng.random((h // 2, w // 2)).astype(np.float32)
    ms = np.stack([np.kron(base, np.ones((2, 2), np.float32)) * (1 + b) + b for b in range(4)])
    pan = np.kron(ms.mean(0), np.ones((r, r), np.float32))[None] + rng.random((1, h * r, w * r)) * 0.1
    mv = np.ones((h, w), bool)
    if hole:
        mv[:6, :10] = False
    return make_wald_pair(ms * 700 + 90, pan * 700 + 90, r, [0.3, 0.3, 0.28, 0.27], 0.15, ms_valid=mv, name=name)


def _assert_same(a, b, exact: bool) -> None:
    assert a.name == b.name and a.ratio == b.ratio
    assert a.normalizer.to_dict() == b.normalizer.to_dict()
    np.testing.assert_array_equal(a.valid, b.valid)
    for key in ("ms", "pan", "gt", "pan_full"):
        x, y = getattr(a, key), getattr(b, key)
        if x is None or y is None:
            assert x is None and y is None, key
            continue
        assert y.dtype == np.float32 and y.shape == x.shape, key
        if exact:
            np.testing.assert_array_equal(y, x)
        else:  # float16 rounding: half an ulp, 2**-11 relative (subnormals: 2**-25 absolute)
            np.testing.assert_allclose(y, x, rtol=2.0**-11, atol=2.0**-25, err_msg=key)
            assert not np.array_equal(y, x), f"{key}: float16 should round something"


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_round_trip_equals_the_pairs(tmp_path, dtype):
    train = [_pair(0, "a", hole=True), _pair(1, "b")]
    v = _pair(2, "v", hole=True)
    val = [crop_pair(v, largest_valid_window(v.valid, v.ratio))]  # as load_pairs makes it
    info = {"a": {"sensor": "WV2", "gains": {"ms": [0.3] * 4, "pan": 0.11}}}
    save_pairs(tmp_path, train, val, model="vhr4", dtype=dtype, scene_info=info)
    m = read_manifest(tmp_path)
    assert m["train"] == ["a", "b"] and m["val"] == ["v"] and m["ratio"] == 4 and m["bands"] == 4
    assert m["pairs"]["a"]["sensor"] == "WV2" and m["pairs"]["a"]["valid_fraction"] < 1
    assert m["pairs"]["v"]["cropped"] and not m["pairs"]["a"]["cropped"]
    t2, v2 = load_pairs_dir(tmp_path, "vhr4", "zscore4")
    for x, y in zip(train + val, t2 + v2, strict=True):
        _assert_same(x, y, exact=dtype == "float32")


def test_scene_choice_crop_and_refusals(tmp_path):
    a, b = _pair(0, "a", hole=True), _pair(1, "b")
    save_pairs(tmp_path, [a, b], [], model="vhr4", pan_full=False)
    t, v = load_pairs_dir(tmp_path, train_scenes="b", val_scenes="a")
    assert [p.name for p in t] == ["b"] and t[0].pan_full is None
    assert v[0].valid.all() and v[0].gt.shape[1] < a.gt.shape[1]
    assert load_pairs_dir(tmp_path, val_scenes="none")[1] == []
    with pytest.raises(PSDNetInputError, match="landsat3"):
        load_pairs_dir(tmp_path, model="landsat3")
    with pytest.raises(PSDNetInputError, match="joint4"):
        load_pairs_dir(tmp_path, norm="joint4")
    with pytest.raises(PSDNetInputError, match="no pair"):
        load_pairs_dir(tmp_path, train_scenes="zz")
    (tmp_path / "a.npz").write_bytes(b"damaged")
    with pytest.raises(PSDNetInputError, match="sha256"):
        load_pairs_dir(tmp_path)


def test_float16_overflow_is_stored_as_float32(tmp_path):
    p = _pair(0, "a")
    p.gt[0, 0, 0] = 1e6
    save_pairs(tmp_path, [p], [], model="vhr4")
    assert read_manifest(tmp_path)["pairs"]["a"]["arrays"]["gt"] == "float32"
    assert load_pairs_dir(tmp_path)[0][0].gt[0, 0, 0] == np.float32(1e6)


@pytest.mark.slow
def test_cli_trains_from_pairs_without_gdal(tmp_path):
    save_pairs(tmp_path / "pairs", [_pair(0, "a"), _pair(1, "b")], [_pair(2, "v")], model="vhr4")
    run = tmp_path / "run"
    argv = ["--model", "vhr4", "--pairs", str(tmp_path / "pairs"), "--out", str(run), "--device", "cpu",
            "--epochs", "1", "--teacher-epochs", "1", "--steps-per-epoch", "1", "--batch", "2",
            "--patch", "32", "--width", "4", "--threads", "1", "--precision", "fp32", "--export",
            str(tmp_path / "w" / "psdnet_vhr4.pt"), "--no-progress", "--resume"]
    code = ("import sys; sys.modules['osgeo'] = None\n"
            "from psdnet_qgis.training.cli import main\n"
            f"rc = main({argv!r})\n"
            "assert 'osgeo' not in [m.split('.')[0] for m in sys.modules if sys.modules[m] is not None]\n"
            "raise SystemExit(rc)\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (run / "last.pt").exists() and (tmp_path / "w" / "psdnet_vhr4.pt").exists()
    meta = json.loads((tmp_path / "w" / "psdnet_vhr4.json").read_text())
    assert meta["training_scenes"] == ["a", "b"] and meta["validation_scenes"] == ["v"]
    lines = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [x["phase"] for x in lines] == ["teacher", "student"]
