"""Which pixels of a raster window hold data (pure numpy).

One rule for every reader (the engine's tile windows and statistics sample, the assessment's
on-grid reads, the training scenes): a pixel is valid when every band is finite and no band
equals the declared nodata. The nodata value is compared in float32, the type the readers
convert every window to, so that a declared value not exactly representable in float32
(e.g. -3.4028234663852886e+38) still matches the pixels that carry it.
"""

from __future__ import annotations

import numpy as np


def valid_pixels(arr: np.ndarray, nodata: float | None = None, *,
                 fill_below: float | None = None) -> np.ndarray:
    """Validity mask of a channels-first window.

    Args:
        arr: (C, H, W) pixel values (float32 as read).
        nodata: declared nodata value (None: none declared; NaN matches nothing beyond the
            finiteness test).
        fill_below: when given, a value at or below it in any band is fill too (a float
            raster whose fill is a huge negative number that no header declares).

    Returns:
        (H, W) bool, True where every band is finite, none equals ``nodata`` and none is at
        or below ``fill_below``.
    """
    valid = np.isfinite(arr).all(axis=0)
    if nodata is not None:
        valid &= ~(arr == np.float32(nodata)).any(axis=0)
    if fill_below is not None:
        valid &= (arr > fill_below).all(axis=0)
    return valid
