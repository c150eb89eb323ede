"""Registry of bundled PSDNet models (stdlib only: never imports torch).

Each bundled model is a weights file ``<name>.pt`` plus a sidecar ``<name>.json`` in
``resources/models``. The JSON carries everything a user or the engine needs to pick a
model without loading it: bands and their names, ratio, normalisation, sensor (for the
MTF gains of the reduced-resolution protocol), training scenes and licence. The weights
file is only opened (and its hash verified) by :func:`psdnet_qgis.model.weights.load_model`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PSDNetInputError


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (weights, exported pairs, diagnostics)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

PACKAGE_DIR = Path(__file__).resolve().parent.parent
#: Environment variable naming an extra/alternative models folder (tests, user models).
ENV_MODELS_DIR = "PSDNET_MODELS_DIR"


@dataclass(frozen=True)
class ModelInfo:
    """Metadata of one model (the fields of its JSON sidecar).

    Attributes:
        name: short unique name, e.g. ``"landsat_r2_8b"``.
        file: weights file name, relative to the JSON's folder.
        sha256: hex SHA-256 of the weights file.
        bands: number of MS bands ``C``.
        band_names: ``C`` band names, in input order.
        rgb: indices (0-based) of the red, green and blue bands (for previews).
        ratio: PAN/MS resolution ratio.
        width: network feature width.
        normalisation: input scaling, ``"zscore4"`` (see ``core.radiometry``).
        version: model version string.
        sensor: sensor name for MTF gains, e.g. ``"WorldView-3"``.
        training_scenes: scene identifiers used for training.
        validation_scenes: scene identifiers held out for validation.
        licence: licence of the weights.
        description: one-line description.
        path: absolute path of the weights file.
        meta_path: absolute path of the JSON sidecar.
        extra: any further JSON fields, kept verbatim.
    """

    name: str
    file: str
    sha256: str
    bands: int
    ratio: int
    band_names: tuple[str, ...] = ()
    rgb: tuple[int, ...] = ()
    width: int = 28
    normalisation: str = "zscore4"
    version: str = ""
    sensor: str = ""
    training_scenes: tuple[str, ...] = ()
    validation_scenes: tuple[str, ...] = ()
    licence: str = ""
    description: str = ""
    path: str = ""
    meta_path: str = ""
    extra: dict = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, meta_path: str | os.PathLike) -> ModelInfo:
        """Read a JSON sidecar.

        Args:
            meta_path: path of ``<name>.json``.

        Raises:
            PSDNetInputError: unreadable JSON or missing required fields.
        """
        p = Path(meta_path).resolve()
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PSDNetInputError(
                f"Model metadata '{p}' cannot be read ({exc}); restore it from the plugin package."
            ) from None
        if not isinstance(data, dict):
            raise PSDNetInputError(f"Model metadata '{p}' is not a JSON object; restore it from the plugin package.")
        return cls.from_dict(data, p)

    @classmethod
    def from_dict(cls, data: dict[str, Any], meta_path: Path | None = None) -> ModelInfo:
        """Build from a metadata dict; ``meta_path`` anchors the relative ``file``."""
        missing = [k for k in ("bands", "ratio") if k not in data]
        if missing:
            where = f"'{meta_path}'" if meta_path else "metadata"
            raise PSDNetInputError(
                f"Model metadata {where} lacks {', '.join(missing)}; it must state bands and ratio."
            )
        name = str(data.get("name") or (meta_path.stem if meta_path else "model"))
        file = str(data.get("file") or (meta_path.with_suffix(".pt").name if meta_path else f"{name}.pt"))
        known = {f for f in cls.__dataclass_fields__ if f not in ("path", "meta_path", "extra")}
        extra = {k: v for k, v in data.items() if k not in known}
        path = str((meta_path.parent / file).resolve()) if meta_path else ""
        bands = int(data["bands"])
        return cls(
            name=name,
            file=file,
            sha256=str(data.get("sha256", "")),
            bands=bands,
            ratio=int(data["ratio"]),
            band_names=tuple(str(b) for b in data.get("band_names") or [f"B{i + 1}" for i in range(bands)]),
            rgb=tuple(int(i) for i in data.get("rgb") or ()),
            width=int(data.get("width", 28)),
            normalisation=str(data.get("normalisation", "zscore4")),
            version=str(data.get("version", "")),
            sensor=str(data.get("sensor", "")),
            training_scenes=tuple(str(s) for s in data.get("training_scenes") or ()),
            validation_scenes=tuple(str(s) for s in data.get("validation_scenes") or ()),
            licence=str(data.get("licence", "")),
            description=str(data.get("description", "")),
            path=path,
            meta_path=str(meta_path) if meta_path else "",
            extra=extra,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready metadata (lists instead of tuples; no absolute paths)."""
        d = asdict(self)
        extra = d.pop("extra")
        d.pop("path")
        d.pop("meta_path")
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        d.update(extra)
        return d

    def summary(self) -> str:
        """One line for lists and log messages."""
        return f"{self.name} ({self.bands} bands, ratio {self.ratio})"


def models_dir() -> Path:
    """Folder holding the bundled models.

    The packaged plugin zip puts ``resources/`` inside the plugin folder
    (``psdnet_qgis/resources/models``); a source checkout has it beside the package
    (``<repo>/resources/models``). ``$PSDNET_MODELS_DIR`` overrides both.

    Returns:
        The first existing candidate, else the in-repository path.
    """
    env = os.environ.get(ENV_MODELS_DIR)
    if env:
        return Path(env).expanduser().resolve()
    inside = PACKAGE_DIR / "resources" / "models"
    beside = PACKAGE_DIR.parent / "resources" / "models"
    for cand in (inside, beside):
        if cand.is_dir():
            return cand
    return beside


def list_models(directory: str | os.PathLike | None = None) -> list[ModelInfo]:
    """All models whose JSON sidecar is in ``directory`` (default :func:`models_dir`).

    JSON files that are not model metadata (no ``bands``/``ratio``) are skipped.

    Returns:
        Models sorted by name.
    """
    d = Path(directory) if directory is not None else models_dir()
    if not d.is_dir():
        return []
    out = []
    for p in sorted(d.glob("*.json")):
        try:
            out.append(ModelInfo.from_json(p))
        except PSDNetInputError:
            continue
    return sorted(out, key=lambda m: m.name)


def _available(models: list[ModelInfo]) -> str:
    return ", ".join(m.summary() for m in models) if models else "none installed"


def get_model(name: str, directory: str | os.PathLike | None = None) -> ModelInfo:
    """Look a bundled model up by name.

    Raises:
        PSDNetInputError: no model of that name; the message lists the available ones.
    """
    models = list_models(directory)
    for m in models:
        if m.name == name:
            return m
    raise PSDNetInputError(
        f"Model '{name}': no bundled model of that name. Available: {_available(models)}. "
        "Give one of these names, 'auto', or the path of a .pt weights file with its .json."
    )


#: Name suffix of the distilled fast models (slimmed copies, training/fast.py).
FAST_SUFFIX = "_fast"
#: Model choices that pick a bundled model by band count and ratio.
AUTO_CHOICES = ("auto", "auto_fast")


def is_fast(m: ModelInfo) -> bool:
    """True for a distilled fast model (``psdnet_*_fast``)."""
    return m.name.endswith(FAST_SUFFIX)


def auto_select(n_bands: int, ratio: int, directory: str | os.PathLike | None = None,
                fast: bool = False) -> ModelInfo:
    """Pick the bundled model for ``n_bands`` MS bands at resolution ratio ``ratio``.

    When several fit, the one with the highest version (then name) wins. The full models
    are picked unless ``fast`` ("auto_fast"): then a fast model that fits wins, and the full
    model is the fallback where no fast one exists for these bands and ratio.

    Raises:
        PSDNetInputError: none fits; the message lists every model with its bands/ratio.
    """
    models = list_models(directory)
    fits = [m for m in models if m.bands == int(n_bands) and m.ratio == int(ratio)]
    if not fits:
        raise PSDNetInputError(
            f"Model 'auto': no bundled model for {n_bands} MS bands at ratio {ratio}. "
            f"Available: {_available(models)}. Select matching MS bands, train a model for "
            "this sensor (make train), or use a classical method."
        )
    return best(fits, fast)


def best(fits: list[ModelInfo], fast: bool = False) -> ModelInfo:
    """Of models that fit an MS, the one Auto takes: the full models unless ``fast`` (then a fast
    one if any), then the highest version, then the name.

    Args:
        fits: at least one model.
        fast: prefer the distilled fast models ("auto_fast").
    """
    full = [m for m in fits if not is_fast(m)]
    quick = [m for m in fits if is_fast(m)]
    fits = (quick or full) if fast else (full or quick)

    def key(m: ModelInfo) -> tuple:
        parts = tuple(int(x) if x.isdigit() else 0 for x in m.version.split(".")) if m.version else ()
        return (parts, m.name)

    return max(fits, key=key)
