"""The no-reference losses of scene adaptation on hand-computable cases."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from psdnet_qgis.model.losses import (  # noqa: E402
    Degrade,
    local_correlation,
    spatial_loss,
    spatial_threshold,
    spectral_loss,
)


def test_constant_scene_has_zero_spectral_loss() -> None:
    ms = torch.full((1, 3, 8, 8), 0.4)
    fused = torch.full((1, 3, 32, 32), 0.4)
    assert float(spectral_loss(fused, ms, Degrade([0.3] * 3, 4))) == pytest.approx(0.0, abs=1e-6)


def test_known_spectral_misfit_is_the_offset() -> None:
    # the MTF filter sums to 1: a constant offset d survives degradation unchanged, |d| = 0.05
    ms = torch.full((1, 3, 8, 8), 0.4)
    fused = torch.full((1, 3, 32, 32), 0.45)
    assert float(spectral_loss(fused, ms, Degrade([0.3] * 3, 4))) == pytest.approx(0.05, abs=1e-5)


def test_band_equal_to_pan_has_zero_spatial_loss() -> None:
    g = torch.Generator().manual_seed(0)
    pan = torch.rand((1, 1, 32, 32), generator=g)
    ms = torch.rand((1, 3, 8, 8), generator=g)
    rho_max = spatial_threshold(ms, pan, Degrade([0.15], 4), 9)
    assert float(spatial_loss(pan.expand(1, 3, 32, 32), pan, rho_max, 9)) == pytest.approx(0.0, abs=1e-5)


def test_known_spatial_misfit() -> None:
    # a band equal to -PAN has local correlation -1 everywhere: max(0, 0.5 - (-1)) = 1.5
    pan = torch.rand((1, 1, 24, 24), generator=torch.Generator().manual_seed(1))
    fused = torch.cat([pan, -pan], dim=1)
    rho = local_correlation(fused, pan, 5)
    assert np.allclose(rho[0, 0].numpy(), 1.0, atol=1e-4) and np.allclose(rho[0, 1].numpy(), -1.0, atol=1e-4)
    # band 0: 0 (correlation 1 >= 0.5), band 1: 1.5 -> mean 0.75
    assert float(spatial_loss(fused, pan, torch.tensor(0.5), 5)) == pytest.approx(0.75, abs=1e-4)
