"""What can be trained and how: the bundled models' catalogue and the training settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from psdnet_qgis.errors import PSDNetInputError
from psdnet_qgis.training.augment import SensorVariety

#: The repository root (default export folder ``resources/models``).
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ModelDef:
    """What a bundled model is: bands, ratio and the text that goes into its metadata."""

    bands: int
    ratio: int
    band_names: tuple[str, ...]
    rgb: tuple[int, ...]
    sensor: str
    licence: str
    description: str


MODELS: dict[str, ModelDef] = {
    "vhr4": ModelDef(
        4, 4, ("blue", "green", "red", "nir"), (2, 1, 0),
        "4-band VHR, ratio 4 (trained on WorldView-2/3 and one unknown 0.5 m sensor)",
        "CC BY-SA 4.0 (weights derived from SpaceNet imagery, CC BY-SA 4.0; also trained on "
        "one 0.5 m scene redistributed in an MIT-licensed repository whose imagery source is "
        "not stated)",
        "PSDNet for Blue, Green, Red, NIR MS with a PAN 4x finer (WorldView, GeoEye, "
        "Pleiades class sensors)."),
    "landsat3": ModelDef(
        3, 2, ("blue", "green", "red"), (2, 1, 0),
        "Landsat 8/9 OLI (B2, B3, B4 + B8 PAN), ratio 2",
        "Public domain imagery (USGS Landsat); weights released with the plugin's licence",
        "PSDNet for Landsat 8/9 Blue, Green, Red (30 m) with the 15 m PAN band."),
}
# The distilled fast models (training/fast.py): a slimmed copy of the bundled model, same
# bands, scenes and licence, trained against it.
for _base in ("vhr4", "landsat3"):
    _d = MODELS[_base]
    MODELS[f"{_base}_fast"] = ModelDef(
        _d.bands, _d.ratio, _d.band_names, _d.rgb, _d.sensor, _d.licence,
        _d.description.replace("PSDNet for", "PSDNet-Fast (slimmed, distilled from "
                               f"psdnet_{_base}; faster, slightly lower quality) for", 1))
del _base, _d


@dataclass
class TrainConfig:
    """Training settings (all stored in checkpoints and in the exported metadata)."""

    model: str = "vhr4"
    out: str = "runs/vhr4"
    minutes: float | None = None
    epochs: int = 200
    teacher_epochs: int = 9
    teacher_frac: float = 0.15
    steps_per_epoch: int = 50
    batch: int = 8
    patch: int = 64
    balance: float = 0.5
    width: int = 28
    lr: float = 5e-4
    lr_floor: float = 0.05
    lam: float | None = None
    distill_ratio: float = 0.2
    sam_weight: float = 0.0
    ema: float = 0.0
    # Two-phase student: from this student epoch (1-based) on, the SAM loss and the EMA are
    # on (the EMA starts from the weights of that moment); before it, neither is, and the
    # teacher has no SAM loss. 0 = both from the start as set.
    refine_from: int = 0
    seed: int = 0
    threads: int | None = None
    precision: str = "auto"
    device: str = "auto"
    export: str | None = None
    resume: bool = False
    reserve_s: float = 60.0
    norm: str = "zscore4"
    stage1: str = "multipatch"
    inputs: str = "image"
    base: str = "bicubic"
    teacher_from: str | None = None
    # Full-resolution fine-tuning (beyond the paper; training/losses.py), after the student
    # or from --init weights: each step adds a batch of real full-resolution patches with
    # the no-reference losses to the usual Wald batch.
    fullres_epochs: int = 0
    fullres_patch: int = 128
    fullres_batch: int = 2
    fullres_spectral: float = 1.0
    fullres_spatial: float = 0.2
    fullres_lr: float = 1e-4
    init: str | None = None
    notes: str = ""
    # Sensor-variety augmentation (training/augment.py): the probability that a training patch
    # is redrawn with random MTF gains, PAN mixing and radiometry; 0 = off.
    sensor_variety: float = 0.0
    # Which parts of it: "mtf" (always), "pan" (PAN band mixing), "radiometry" (gain/offset).
    variety_parts: str = "mtf,pan,radiometry"
    # Scene lists overriding the model's (training/scenes.py MODEL_SCENES), comma separated:
    # leave-one-scene-out experiments; empty = the model's own.
    train_scenes: str = ""
    val_scenes: str = ""

    def variety(self) -> SensorVariety | None:
        """The sampler's sensor-variety setting (None when off)."""
        if self.sensor_variety <= 0:
            return None
        parts = {p.strip() for p in self.variety_parts.split(",") if p.strip()}
        unknown = parts - {"mtf", "pan", "radiometry"}
        if unknown or "mtf" not in parts:
            raise PSDNetInputError(f"--variety-parts {self.variety_parts!r}: give mtf, optionally with pan "
                                   "and radiometry (comma separated)")
        d = SensorVariety()
        return SensorVariety(p=self.sensor_variety, pan_mix=d.pan_mix if "pan" in parts else 0.0,
                             gain=d.gain if "radiometry" in parts else 0.0,
                             offset=d.offset if "radiometry" in parts else 0.0)
