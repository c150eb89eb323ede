"""Wald training pairs stored as compressed ``.npz`` files: training without GDAL.

``scripts/export_pairs.py`` (on a machine with GDAL and the shared data) calls
:func:`save_pairs` on what ``training.data.load_pairs`` returns; ``python -m
psdnet_qgis.training --pairs DIR`` calls :func:`load_pairs_dir` instead of ``load_pairs``,
so a machine with torch and numpy only (a lent GPU) trains on exactly those pairs.

A folder holds one ``<name>.npz`` per scene and ``manifest.json``::

    {"format": "psdnet-wald-pairs", "version": 1, "model": "vhr4", "norm": "zscore4",
     "ratio": 4, "bands": 4, "dtype": "float16",
     "train": ["a", ...], "val": ["v", ...],
     "pairs": {"a": {"file": "a.npz", "cropped": false, "ratio": 4, "sensor": "WV2",
                     "gains": {"ms": [...], "pan": 0.11}, "normalizer": {...},
                     "shapes": {"ms": [...], ...}, "valid_fraction": 0.97,
                     "arrays": {"ms": "float16", ...}, "sha256": "..."}, ...}}

Each ``.npz`` has ``ms``, ``pan``, ``gt`` (``dtype``, float16 by default: a relative rounding
of at most 2**-11, about 5e-4 of a normalised value, i.e. 1/4000 of two band standard
deviations), ``valid`` (bool) and, when kept, ``pan_full``. An array that float16 cannot
hold (a finite value beyond 65504) is stored as float32 (``arrays`` says which). The
:class:`~psdnet_qgis.core.radiometry.Normalizer` goes through its JSON form (exact:
Python floats round-trip through JSON). Loading casts every image back to float32, so a
loaded :class:`~psdnet_qgis.training.data.WaldPair` equals the exported one to float16
rounding (exactly with ``dtype="float32"``).

Validation pairs are stored as ``load_pairs`` made them (cropped to their largest fully
valid window, ``cropped: true``). ``train_scenes`` / ``val_scenes`` of
:func:`load_pairs_dir` choose among the stored pairs like ``--train-scenes`` /
``--val-scenes`` choose among the scenes: a stored training pair asked for as validation
is cropped here the same way (``crop_pair(largest_valid_window(...))``); a cropped pair
cannot train (export it as a training scene).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from psdnet_qgis.core.radiometry import Normalizer
from psdnet_qgis.core.registry import sha256_file
from psdnet_qgis.errors import PSDNetInputError
from psdnet_qgis.training.data import WaldPair, crop_pair, largest_valid_window

FORMAT = "psdnet-wald-pairs"
VERSION = 1
MANIFEST = "manifest.json"
_IMAGES = ("ms", "pan", "gt", "pan_full")


def _store(a: np.ndarray, dtype: str) -> np.ndarray:
    """``a`` in ``dtype``, or float32 where ``dtype`` would turn a finite value infinite."""
    a = np.asarray(a, dtype=np.float32)
    if dtype == "float32":
        return a
    with np.errstate(over="ignore"):
        b = a.astype(dtype)
    if np.array_equal(np.isfinite(b), np.isfinite(a)):
        return b
    return a


def save_pairs(folder: str | os.PathLike, train: Sequence[WaldPair], val: Sequence[WaldPair], *,
               model: str, norm: str = "zscore4", dtype: str = "float16", pan_full: bool = True,
               scene_info: dict[str, dict[str, Any]] | None = None,
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the pairs and ``manifest.json`` to ``folder`` (created; old ``.npz`` replaced).

    Args:
        folder: output folder.
        train, val: pairs as ``training.data.load_pairs`` returns them.
        model: the model they were made for (``--model``; checked when loading).
        norm: their normalisation method.
        dtype: "float16" (default) or "float32" for the images.
        pan_full: keep the full-resolution PAN (needed by ``--sensor-variety`` only).
        scene_info: per scene name, e.g. ``{"sensor": ..., "gains": {"ms": [...], "pan": ...}}``,
            copied into its manifest entry.
        extra: more top-level manifest keys (how the folder was made).

    Returns:
        The manifest as written.
    """
    if dtype not in ("float16", "float32"):
        raise PSDNetInputError(f"save_pairs: dtype {dtype!r}; use float16 or float32")
    pairs = list(train) + list(val)
    if not pairs:
        raise PSDNetInputError("save_pairs: no pairs to write")
    names = [p.name for p in pairs]
    if len(set(names)) != len(names):
        raise PSDNetInputError(f"save_pairs: a scene is both a training and a validation pair: {names}")
    ratios = {p.ratio for p in pairs}
    bands = {p.gt.shape[0] for p in pairs}
    if len(ratios) != 1 or len(bands) != 1:
        raise PSDNetInputError(f"save_pairs: pairs differ in ratio {ratios} or band count {bands}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.npz"):
        old.unlink()
    entries: dict[str, dict[str, Any]] = {}
    val_names = {p.name for p in val}
    for p in pairs:
        arrays: dict[str, np.ndarray] = {}
        for key in _IMAGES:
            a = getattr(p, key)
            if a is None or (key == "pan_full" and not pan_full):
                continue
            arrays[key] = _store(a, dtype)
        arrays["valid"] = np.asarray(p.valid, dtype=bool)
        path = out / f"{p.name}.npz"
        np.savez_compressed(path, **arrays)
        entries[p.name] = {
            "file": path.name, "cropped": p.name in val_names, "ratio": int(p.ratio),
            "normalizer": p.normalizer.to_dict(),
            "shapes": {k: list(v.shape) for k, v in arrays.items()},
            "arrays": {k: str(v.dtype) for k, v in arrays.items()},
            "valid_fraction": float(arrays["valid"].mean()),
            "bytes": path.stat().st_size, "sha256": sha256_file(path),
            **(scene_info or {}).get(p.name, {}),
        }
    manifest = {
        "format": FORMAT, "version": VERSION, "model": model, "norm": norm,
        "ratio": ratios.pop(), "bands": bands.pop(), "dtype": dtype, "pan_full": bool(pan_full),
        "train": [p.name for p in train], "val": [p.name for p in val],
        "pairs": entries, **(extra or {}),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """The folder's ``manifest.json``, checked for format and version."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise PSDNetInputError(f"--pairs {folder}: no {MANIFEST} there; make the folder with "
                               "scripts/export_pairs.py")
    m = json.loads(path.read_text(encoding="utf-8"))
    if m.get("format") != FORMAT or int(m.get("version", 0)) > VERSION:
        raise PSDNetInputError(f"--pairs {folder}: {MANIFEST} is not a {FORMAT} v{VERSION} manifest")
    return m


def load_pair(folder: str | os.PathLike, name: str, manifest: dict[str, Any] | None = None,
              check: bool = True) -> WaldPair:
    """One stored pair as a :class:`WaldPair` (images cast back to float32)."""
    m = manifest if manifest is not None else read_manifest(folder)
    if name not in m["pairs"]:
        raise PSDNetInputError(f"--pairs {folder}: no pair {name!r}; it holds {sorted(m['pairs'])}")
    e = m["pairs"][name]
    path = Path(folder) / e["file"]
    if check and "sha256" in e and sha256_file(path) != e["sha256"]:
        raise PSDNetInputError(f"--pairs {folder}: {path.name} does not match its sha256 in {MANIFEST} "
                               "(damaged or replaced); export the pairs again")
    with np.load(path, allow_pickle=False) as z:
        arr = {k: z[k] for k in z.files}
    img = {k: arr[k].astype(np.float32) for k in _IMAGES if k in arr}
    return WaldPair(name=name, ms=img["ms"], pan=img["pan"], gt=img["gt"],
                    valid=arr["valid"].astype(bool), normalizer=Normalizer.from_dict(e["normalizer"]),
                    ratio=int(e["ratio"]), pan_full=img.get("pan_full"))


def _names(spec: str, default: list[str]) -> list[str]:
    chosen = [n.strip() for n in spec.split(",") if n.strip()]
    if chosen == ["none"]:
        return []
    return chosen or list(default)


def load_pairs_dir(folder: str | os.PathLike, model: str | None = None, norm: str | None = None,
                   train_scenes: str = "", val_scenes: str = "") -> tuple[list[WaldPair], list[WaldPair]]:
    """The stored (train, val) pairs, as ``training.data.load_pairs`` returned them when exported.

    Args:
        folder: a folder written by :func:`save_pairs`.
        model, norm: when given, must match the manifest (pairs made for another model or
            normalisation would train the wrong thing silently).
        train_scenes, val_scenes: comma-separated stored names replacing the manifest's lists
            (``"none"``: no validation), as ``--train-scenes`` / ``--val-scenes``.
    """
    m = read_manifest(folder)
    if model is not None and m["model"] != model:
        raise PSDNetInputError(f"--pairs {folder}: exported for model {m['model']!r}, not {model!r}")
    if norm is not None and m["norm"] != norm:
        raise PSDNetInputError(f"--pairs {folder}: normalised with {m['norm']!r}, not --norm {norm!r}; "
                               "export the pairs again with that --norm")
    train_names = _names(train_scenes, m["train"])
    val_names = _names(val_scenes, m["val"])
    if not train_names:
        raise PSDNetInputError(f"--pairs {folder}: no training pairs chosen")
    train = []
    for n in train_names:
        if m["pairs"].get(n, {}).get("cropped"):
            raise PSDNetInputError(f"--pairs {folder}: {n!r} was stored as a cropped validation pair; "
                                   "export it as a training scene to train on it")
        train.append(load_pair(folder, n, m))
    val = []
    for n in val_names:
        p = load_pair(folder, n, m)
        if not m["pairs"][n].get("cropped"):
            p = crop_pair(p, largest_valid_window(p.valid, p.ratio))
        val.append(p)
    return train, val
