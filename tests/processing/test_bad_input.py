"""Every bad input stops before any work with a message naming the input and the fix."""

from __future__ import annotations

import importlib.util

import numpy as np
import processing
import pytest
from qgis.core import QgsProcessingException

from tests.rasters import make_pair, write_geotiff


def run(params: dict):
    return processing.run("psdnet:pansharpen", params)


def expect_error(params: dict, *fragments: str, out=None) -> str:
    with pytest.raises(QgsProcessingException) as err:
        run(params)
    msg = str(err.value)
    for f in fragments:
        assert f.lower() in msg.lower(), msg
    assert "Traceback" not in msg
    if out is not None:
        assert not out.exists()
    return msg


def test_multiband_pan_without_band(psdnet_provider, tmp_path, zero_weights):
    pan, ms = make_pair(tmp_path)
    out = tmp_path / "o.tif"
    # The 4-band MS used as PAN: several bands and none chosen.
    expect_error({"PAN": str(ms), "MS": str(ms), "MODEL_FILE": str(zero_weights), "OUTPUT": str(out)},
                 "PAN layer", "4 bands", "PAN band", out=out)


def test_single_band_ms(psdnet_provider, tmp_path, zero_weights):
    pan, ms = make_pair(tmp_path)
    out = tmp_path / "o.tif"
    expect_error({"PAN": str(pan), "MS": str(pan), "MODEL_FILE": str(zero_weights), "OUTPUT": str(out)},
                 "MS layer", "single band", "Build Virtual Raster", out=out)


def test_no_model_for_band_count(psdnet_provider, tmp_path):
    pan, ms = make_pair(tmp_path, bands=6)
    out = tmp_path / "o.tif"
    msg = expect_error({"PAN": str(pan), "MS": str(ms), "OUTPUT": str(out)}, "6", out=out)
    assert "model" in msg.lower()


def test_weights_for_other_band_count(psdnet_provider, tmp_path, zero_weights):
    pan, ms = make_pair(tmp_path, bands=3)
    out = tmp_path / "o.tif"
    expect_error({"PAN": str(pan), "MS": str(ms), "MODEL_FILE": str(zero_weights), "OUTPUT": str(out)},
                 "3", "4", out=out)


def test_layers_do_not_overlap(psdnet_provider, tmp_path, zero_weights):
    pan, _ = make_pair(tmp_path, name="a")
    _, ms = make_pair(tmp_path, name="b", origin=(600000.0, 5700000.0))
    out = tmp_path / "o.tif"
    expect_error({"PAN": str(pan), "MS": str(ms), "MODEL_FILE": str(zero_weights), "OUTPUT": str(out)},
                 "overlap", out=out)


def test_missing_layer(psdnet_provider, tmp_path, zero_weights):
    _, ms = make_pair(tmp_path)
    with pytest.raises(QgsProcessingException):
        run({"PAN": str(tmp_path / "nope.tif"), "MS": str(ms), "MODEL_FILE": str(zero_weights),
             "OUTPUT": str(tmp_path / "o.tif")})


def test_output_folder_missing(psdnet_provider, tmp_path, zero_weights):
    pan, ms = make_pair(tmp_path)
    out = tmp_path / "no" / "such" / "dir" / "o.tif"
    # Processing creates missing folders for destinations itself; a folder we cannot create is the
    # real failure: a path below a regular file.
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    out = blocker / "o.tif"
    expect_error({"PAN": str(pan), "MS": str(ms), "MODEL_FILE": str(zero_weights), "OUTPUT": str(out)},
                 "output")


def test_cuda_requested_but_unavailable(psdnet_provider, tmp_path, zero_weights):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    pan, ms = make_pair(tmp_path)
    out = tmp_path / "o.tif"
    expect_error({"PAN": str(pan), "MS": str(ms), "MODEL_FILE": str(zero_weights), "DEVICE": 1,
                  "OUTPUT": str(out)}, "CUDA", "CPU", out=out)


def test_torch_not_importable(psdnet_provider, tmp_path, zero_weights, monkeypatch):
    pan, ms = make_pair(tmp_path)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    expect_error({"PAN": str(pan), "MS": str(ms), "MODEL_FILE": str(zero_weights), "OUTPUT": str(tmp_path / "o.tif")},
                 "PyTorch is not importable", "psdnet:install_pytorch", "Install PyTorch…")


def test_all_nodata_input(psdnet_provider, tmp_path, zero_weights):
    pan, ms = make_pair(tmp_path)
    zeros = np.zeros((4, 40, 48))
    ms = write_geotiff(tmp_path / "ms_empty.tif", zeros, (500000.0, 5700000.0), 2.0, nodata=0)
    out = tmp_path / "o.tif"
    expect_error({"PAN": str(pan), "MS": str(ms), "MODEL_FILE": str(zero_weights), "OUTPUT": str(out)},
                 "nodata", out=out)


@pytest.mark.slow
def test_disk_full_while_writing(tmp_path, zero_weights):
    """A real write failure (a file size limit, as a full disk) mid-run, through processing.run.

    In a child process (tests/full_disk.py): the limit would also cut pytest's own output file.
    """
    from tests.full_disk import run_with_file_size_limit

    pan, ms = make_pair(tmp_path, ms_shape=(64, 64))
    out = tmp_path / "o.tif"
    result, _ = run_with_file_size_limit(20_000, "processing", {
        "PAN": str(pan), "MS": str(ms), "MODEL_FILE": str(zero_weights), "OUTPUT": str(out)})
    assert result["error"] == "QgsProcessingException", result
    for fragment in (str(out), "disk is probably full", "partial file was removed"):
        assert fragment.lower() in result["message"].lower(), result
    assert "Traceback" not in result["message"]
    assert not out.exists()
