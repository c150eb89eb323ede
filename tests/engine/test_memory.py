"""Heap tuning (engine.memory) and the calibration's compact windows: no value changes."""

from __future__ import annotations

import numpy as np

from psdnet_qgis.engine import memory
from psdnet_qgis.engine.calibration import _compact
from psdnet_qgis.engine.tileloop import _outside_heap


def test_mmap_threshold_blocks_nest_and_restore():
    with memory.map_large_buffers():
        assert memory._THRESHOLDS[-1:] in ([memory._SETUP_MMAP_BYTES], [])  # [] without glibc
        with memory.mmap_threshold(1 << 20):
            a = np.ones(300_000, np.float32)  # over both thresholds: a map of its own
            assert float(a.sum()) == 300_000.0
        assert memory._THRESHOLDS[-1:] in ([memory._SETUP_MMAP_BYTES], [])
    assert memory._THRESHOLDS == []


def test_compact_reference_is_exact():
    ints = np.array([[[0.0, 1.0], [65535.0, 1234.0]]], np.float32)
    small = _compact(ints)
    assert small.dtype == np.uint16 and np.array_equal(small.astype(np.float32), ints)
    for values in ([[[0.5, 1.0]]], [[[-1.0, 2.0]]], [[[np.nan, 2.0]]], [[[70000.0, 2.0]]]):
        a = np.array(values, np.float32)
        kept = _compact(a)
        assert kept.dtype == np.float32 and np.array_equal(kept, a, equal_nan=True)
    whole = np.arange(48, dtype=np.float32).reshape(3, 4, 4)
    assert _compact(whole[:, 1:3, 1:3]).base is None  # a copy, not a view of the read window


def test_outside_heap_arrays_are_zeroed_and_writable():
    a = _outside_heap((2, 3, 5))
    assert a.dtype == np.float32 and a.shape == (2, 3, 5) and not a.any()
    a[:, 1] = 7.0
    assert a.sum() == 7.0 * 10
    assert _outside_heap((2, 0, 5)).shape == (2, 0, 5)
