"""Save and load PSDNet weights: fp16 ``state_dict`` + JSON sidecar with a SHA-256.

``save_model(model, "x/name.pt", meta)`` writes ``x/name.pt`` (``torch.save`` of the
state_dict cast to float16, half the size of float32 for a plugin zip) and
``x/name.json`` (``meta`` + ``file``, ``sha256``, ``bands``, ``ratio``, ``width``).
``load_model`` only ever unpickles with ``weights_only=True`` after the hash matched,
so a tampered or truncated file is refused before it is read.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch

from psdnet_qgis.core import registry
from psdnet_qgis.core.options import is_model_path
from psdnet_qgis.core.registry import sha256_file
from psdnet_qgis.errors import PSDNetInputError
from psdnet_qgis.model.psdnet import PSDNet

#: Metadata defaults written when the caller does not give them.
META_DEFAULTS: dict[str, Any] = {
    "normalisation": "zscore4",
    "version": "1.0",
    "sensor": "",
    "band_names": None,
    "rgb": [],
    "training_scenes": [],
    "validation_scenes": [],
    "licence": "",
    "description": "",
}


def save_model(model: PSDNet, path: str | os.PathLike, meta: dict | None = None) -> dict:
    """Store fp16 weights and the JSON sidecar.

    Args:
        model: a :class:`PSDNet` (teacher or student; only the weights are stored).
        path: weights file, conventionally ``<name>.pt``; the JSON goes to
            ``<same stem>.json``.
        meta: metadata (name, band_names, rgb, sensor, training_scenes, ...);
            ``bands``, ``ratio``, ``width`` are taken from the model and must not
            contradict it.

    Returns:
        The metadata dict as written.

    Raises:
        PSDNetInputError: ``meta`` contradicts the model architecture.
    """
    p = Path(path)
    arch = model.arch_kwargs()
    out: dict[str, Any] = {k: (list(v) if isinstance(v, list) else v) for k, v in META_DEFAULTS.items()}
    given = dict(meta or {})
    out.update(given)
    for k, v in arch.items():
        if k in given and (str(given[k]) if isinstance(v, str) else int(given[k])) != v:
            raise PSDNetInputError(
                f"save_model meta: {k}={given[k]} but the model has {k}={v}; fix the metadata."
            )
        out[k] = v
    out.setdefault("name", p.stem)
    out["name"] = out["name"] or p.stem
    out["file"] = p.name
    if not out.get("band_names"):
        out["band_names"] = [f"B{i + 1}" for i in range(arch["bands"])]
    if len(out["band_names"]) != arch["bands"]:
        raise PSDNetInputError(
            f"save_model meta: {len(out['band_names'])} band_names for a {arch['bands']}-band "
            "model; give one name per band."
        )
    state = {k: (v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu())
             for k, v in model.state_dict().items()}
    p.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, p)
    out["sha256"] = sha256_file(p)
    p.with_suffix(".json").write_text(json.dumps(out, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out


def _resolve(path_or_name: str | os.PathLike | registry.ModelInfo) -> tuple[Path, registry.ModelInfo]:
    """Weights path + metadata for a path (``.pt`` or ``.json``), a bundled name, or a
    :class:`~psdnet_qgis.core.registry.ModelInfo` already looked up (used as it is: the registry
    is not consulted again)."""
    if isinstance(path_or_name, registry.ModelInfo):
        if path_or_name.path:
            return Path(path_or_name.path), path_or_name
        path_or_name = path_or_name.name  # metadata without a file: find it by name
    s = os.fspath(path_or_name)
    p = Path(s).expanduser()
    if not is_model_path(s) and not p.exists():
        info = registry.get_model(s)  # raises with the list of available models
        return Path(info.path), info
    if p.suffix == ".json":
        info = registry.ModelInfo.from_json(p)
        return Path(info.path), info
    meta_path = p.with_suffix(".json")
    if not p.is_file():
        raise PSDNetInputError(
            f"Model weights '{p}' do not exist; give an existing .pt file or a bundled model name "
            f"(available: {', '.join(m.name for m in registry.list_models()) or 'none installed'})."
        )
    if not meta_path.is_file():
        raise PSDNetInputError(
            f"Model weights '{p}' have no metadata file '{meta_path.name}' beside them; "
            "copy the .json written by save_model/make train next to the .pt."
        )
    return p, registry.ModelInfo.from_json(meta_path)


def load_model(
    path_or_name: str | os.PathLike | registry.ModelInfo,
    device: str | torch.device = "cpu",
    sha256: str | None = None,
) -> tuple[PSDNet, registry.ModelInfo]:
    """Load a model by bundled name, weights path or registry entry, verifying its SHA-256.

    Args:
        path_or_name: bundled model name (see ``core.registry``), a ``.pt`` path with
            its ``.json`` sidecar, the ``.json`` path itself, or the ``ModelInfo`` a registry
            look-up returned (``core.registry.get_model``, ``engine.mixed.auto_model``): its
            ``path`` is loaded without reading the metadata again.
        device: torch device for the returned model.
        sha256: expected hash; overrides the one in the JSON.

    Returns:
        ``(model, info)``: float32 :class:`PSDNet` in eval mode and its metadata, the
        :class:`~psdnet_qgis.core.registry.ModelInfo` of the JSON sidecar (bundled or custom;
        fields it does not know in ``extra``) with ``path`` the resolved weights file loaded.

    Raises:
        PSDNetInputError: unknown name, missing file, hash mismatch, or weights that
            do not fit the architecture in the metadata.
    """
    pt, info = _resolve(path_or_name)
    if not pt.is_file():
        raise PSDNetInputError(
            f"Model '{info.name}': weights file '{pt}' is missing; reinstall the plugin "
            "or run `make train` to recreate it."
        )
    expected = (sha256 or info.sha256 or "").lower()
    if not expected:
        raise PSDNetInputError(
            f"Model weights '{pt}': the metadata has no sha256, so the file cannot be verified; "
            "re-save it with save_model."
        )
    actual = sha256_file(pt)
    if actual != expected:
        raise PSDNetInputError(
            f"Model weights '{pt}': SHA-256 mismatch (expected {expected[:12]}..., file has "
            f"{actual[:12]}...); the file is corrupt or was modified. Reinstall the plugin or "
            "re-download/re-train the model."
        )
    try:
        state = torch.load(pt, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file for the user
        raise PSDNetInputError(
            f"Model weights '{pt}' cannot be read ({exc}); re-save them with save_model."
        ) from None
    model = PSDNet(bands=info.bands, ratio=info.ratio, width=info.width,
                   stage1=str(info.extra.get("stage1", "multipatch")),
                   inputs=str(info.extra.get("inputs", "image")),
                   base=str(info.extra.get("base", "bicubic")))
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise PSDNetInputError(
            f"Model weights '{pt}' do not fit PSDNet(bands={info.bands}, ratio={info.ratio}, "
            f"width={info.width}) ({str(exc).splitlines()[0]}); the .json does not belong to this .pt."
        ) from None
    model.to(device).eval()
    return model, dataclasses.replace(info, path=str(pt.resolve()))
