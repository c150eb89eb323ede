"""The MAT-file reader of the Landsat 7 training pairs: real numeric arrays, compressed or not."""

from __future__ import annotations

import numpy as np
import pytest

from psdnet_qgis.errors import PSDNetInputError
from psdnet_qgis.training.matfile import read_mat_array
from tests.rasters import write_mat


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float64"])
def test_array_comes_back_in_matlab_shape(tmp_path, compress, dtype):
    arr = np.arange(2 * 3 * 5).reshape(2, 3, 5).astype(dtype)
    write_mat(tmp_path / "a.mat", "cropped_im", arr, compress)
    out = read_mat_array(tmp_path / "a.mat", "cropped_im")
    assert out.dtype == arr.dtype
    np.testing.assert_array_equal(out, arr)


def test_missing_name_and_other_files_are_named(tmp_path):
    write_mat(tmp_path / "a.mat", "cropped_gray", np.zeros((4, 4), np.uint8))
    with pytest.raises(PSDNetInputError, match=r"no array 'cropped_im' \(found: cropped_gray\)"):
        read_mat_array(tmp_path / "a.mat", "cropped_im")
    (tmp_path / "b.mat").write_bytes(b"\x89HDF\r\n" + bytes(200))
    with pytest.raises(PSDNetInputError, match="b.mat: not a little-endian MATLAB 5 MAT-file"):
        read_mat_array(tmp_path / "b.mat", "x")
