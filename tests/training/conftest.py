"""Shared fixtures of the training tier: tiny generated Wald pairs and a one-step configuration."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from psdnet_qgis.training.config import TrainConfig
from psdnet_qgis.training.data import WaldPair, make_wald_pair


def _pair(seed: int, name: str) -> WaldPair:
    rng = np.random.default_rng(seed)
    h = w = 40
    r = 4
    base = rng.random((h // 2, w // 2)).astype(np.float32)
    ms = np.stack([np.kron(base, np.ones((2, 2), np.float32)) * (1 + b) + b for b in range(4)])
    noise = rng.random((1, h * r, w * r)).astype(np.float32) * 0.1
    pan = np.kron(ms.mean(0), np.ones((r, r), np.float32))[None] + noise
    return make_wald_pair(ms * 100, pan * 100, r, 0.3, 0.15, name=name)


@pytest.fixture
def wald_pairs() -> tuple[list[WaldPair], list[WaldPair]]:
    """(train, val): two tiny 4-band ratio-4 Wald pairs to train on (seeds 0, 1), one to validate (seed 2)."""
    return [_pair(0, "a"), _pair(1, "b")], [_pair(2, "v")]


@pytest.fixture
def train_config(tmp_path: Path) -> Callable[..., TrainConfig]:
    """``train_config(**overrides)``: a one-step, width-4, fp32 CPU vhr4 run in ``tmp_path / "run"``."""
    def make(**kw: Any) -> TrainConfig:
        d = dict(model="vhr4", out=str(tmp_path / "run"), epochs=1, teacher_epochs=1,
                 steps_per_epoch=1, batch=2, patch=32, width=4, threads=1, precision="fp32",
                 device="cpu", export=None)
        d.update(kw)
        return TrainConfig(**d)

    return make
