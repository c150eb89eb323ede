"""Grid arithmetic shared by inference, assessment and training (pure stdlib/numpy).

The project's geometry convention (docs/ARCHITECTURE.md): MS pixel (i, j) covers PAN
pixels [i*r, (i+1)*r) x [j*r, (j+1)*r), pixel corners aligned.
"""

from __future__ import annotations

#: Largest relative distance of the MS/PAN pixel-size ratio to an integer that is accepted.
RATIO_TOLERANCE = 0.02
#: Misregistration (in pixels of the grid being matched, over the whole raster) below which
#: a raster is read directly on the working grid instead of being resampled onto it.
ALIGN_TOLERANCE_PX = 0.05
