"""The automatic precision is decided per model and CPU class from measurements (model.precision)."""

from __future__ import annotations

import pytest

from psdnet_qgis.model import cpu, precision

pytest.importorskip("torch")


@pytest.fixture
def cpu_as(monkeypatch: pytest.MonkeyPatch):
    def set_cpu(cls: str, native: bool) -> None:
        monkeypatch.setattr(cpu, "cpu_class", lambda: cls)
        monkeypatch.setattr(cpu, "native_bf16", lambda: native)
        monkeypatch.setattr(cpu, "bf16_runnable", lambda: native)
    return set_cpu


def test_avx2_always_fp32(cpu_as) -> None:
    cpu_as("AVX2 (no AVX-512)", False)
    for model, width in (("psdnet_vhr4", 28), ("psdnet_vhr4_fast", 8), (None, None)):
        prec, why = precision.precision_choice("cpu", model, width)
        assert prec == "fp32" and "bf16" in why


def test_measured_model_takes_its_faster_precision(cpu_as, monkeypatch: pytest.MonkeyPatch) -> None:
    cpu_as("AVX-512 + bf16", True)
    assert precision.auto_precision("cpu", "psdnet_landsat3", 28) == "bf16"
    prec, why = precision.precision_choice("cpu", "psdnet_landsat3_fast", 8)
    assert prec == "bf16" and "measured faster for psdnet_landsat3_fast" in why
    slower = precision.Measured("AVX-512 + bf16", "psdnet_landsat3_fast", 8, 3.5, 4.1, "a slower bf16")
    monkeypatch.setattr(precision, "MEASUREMENTS", (slower,))
    assert precision.precision_choice("cpu", "psdnet_landsat3_fast", 8)[0] == "fp32"


def test_unmeasured_model_follows_a_measured_one_of_its_width(cpu_as) -> None:
    cpu_as("AVX-512 + bf16", True)
    prec, why = precision.precision_choice("cpu", "psdnet_custom_w8", 8)
    assert prec == "bf16" and "same width 8" in why
    assert precision.auto_precision("cpu", "psdnet_vhr4", 28) == "bf16"


def test_narrow_networks_run_bf16_autocast_not_the_padded_fused_copy() -> None:
    from psdnet_qgis.model import fastcpu

    assert fastcpu.worth_fusing(28) and fastcpu.worth_fusing(32) and fastcpu.worth_fusing(16)
    assert not fastcpu.worth_fusing(8) and not fastcpu.worth_fusing(12)


def test_unmeasured_width_defaults_by_width(cpu_as) -> None:
    cpu_as("AVX-512 + AMX", True)
    assert precision.auto_precision("cpu", "psdnet_vhr4", 28) == "bf16"  # measured
    assert precision.auto_precision("cpu", "psdnet_vhr4_fast", 8) == "fp32"  # narrow, unmeasured here
    assert precision.auto_precision("cpu", None, None) == "bf16"  # unknown custom module


def test_every_measurement_names_a_known_cpu_class_and_bundled_model() -> None:
    from psdnet_qgis.core import registry

    names = {m.name for m in registry.list_models()}
    for m in precision.MEASUREMENTS:
        assert m.cpu_class in ("AVX-512 + bf16", "AVX-512 + AMX") and m.model in names and m.source
