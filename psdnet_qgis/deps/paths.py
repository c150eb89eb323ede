"""Where the managed PyTorch lives, and putting it on ``sys.path`` (no torch import).

Layout inside the QGIS profile folder (``QgsApplication.qgisSettingsDirPath()``)::

    <profile>/python/psdnet_deps/            deps_root(): install.log
    <profile>/python/psdnet_deps/py3.11/     managed_dir(): torch and its dependencies
    <profile>/python/psdnet_deps/py3.11/psdnet_deps.json   what was installed, from where

One folder per Python minor version: the wheels are built for one interpreter, and a QGIS
upgrade that changes Python must not load the previous one's binaries.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

#: Environment variable naming the managed folder itself (overrides the profile's; tests, CLI).
ENV_DEPS_DIR = "PSDNET_DEPS_DIR"
#: The marker file written after a successful install.
MARKER = "psdnet_deps.json"
LOG_NAME = "install.log"


def python_tag(version_info: tuple[int, ...] | None = None) -> str:
    """``py3.11``: the folder name for the running (or the given) Python minor version."""
    major, minor = (version_info or sys.version_info)[:2]
    return f"py{major}.{minor}"


def deps_root(profile_dir: str | os.PathLike) -> Path:
    """``<profile>/python/psdnet_deps``: the plugin's own folder inside a QGIS profile."""
    return Path(profile_dir) / "python" / "psdnet_deps"


def managed_dir(profile_dir: str | os.PathLike, version_info: tuple[int, ...] | None = None,
                env: Mapping[str, str] | None = None) -> Path:
    """The folder pip installs torch into and the plugin puts on ``sys.path``.

    Args:
        profile_dir: the QGIS profile folder (``QgsApplication.qgisSettingsDirPath()``).
        version_info: Python version the folder is for (default: the running one).
        env: environment (default ``os.environ``); ``$PSDNET_DEPS_DIR`` overrides the profile.
    """
    env = os.environ if env is None else env
    if env.get(ENV_DEPS_DIR):
        return Path(env[ENV_DEPS_DIR]).expanduser()
    return deps_root(profile_dir) / python_tag(version_info)


def default_profile_dir(platform: str | None = None, env: Mapping[str, str] | None = None,
                        home: str | os.PathLike | None = None) -> Path:
    """The QGIS 3 "default" profile folder as QGIS itself computes it, without QGIS (the CLI).

    ``$QGIS_CUSTOM_CONFIG_PATH`` wins (as in QGIS); else the per-OS location: Windows
    ``%APPDATA%/QGIS/QGIS3``, macOS ``~/Library/Application Support/QGIS/QGIS3``, elsewhere
    ``$XDG_DATA_HOME/QGIS/QGIS3`` (``~/.local/share``). A user of another profile passes
    ``--target`` or sets ``$PSDNET_DEPS_DIR``.
    """
    platform = platform or sys.platform
    env = os.environ if env is None else env
    home = Path(home) if home is not None else Path.home()
    if env.get("QGIS_CUSTOM_CONFIG_PATH"):
        base = Path(env["QGIS_CUSTOM_CONFIG_PATH"])
    elif platform.startswith("win"):
        base = Path(env.get("APPDATA") or home / "AppData" / "Roaming") / "QGIS" / "QGIS3"
    elif platform == "darwin":
        base = home / "Library" / "Application Support" / "QGIS" / "QGIS3"
    else:
        base = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share") / "QGIS" / "QGIS3"
    return base / "profiles" / "default"


def activate(target: str | os.PathLike) -> bool:
    """Put ``target`` first on ``sys.path`` when it holds an install; cheap, imports nothing.

    First, so the managed torch wins over an older or broken one elsewhere (user site, an old
    manual install). Idempotent.

    Returns:
        True when the folder is (now) on ``sys.path``.
    """
    path = Path(target)
    if not (path / MARKER).is_file():
        return False
    entry = str(path)
    if entry not in sys.path:
        sys.path.insert(0, entry)
        importlib.invalidate_caches()
    return True


def deactivate(target: str | os.PathLike) -> None:
    """Remove ``target`` from ``sys.path`` (before the folder is deleted)."""
    entry = str(Path(target))
    while entry in sys.path:
        sys.path.remove(entry)
    importlib.invalidate_caches()


def read_marker(target: str | os.PathLike) -> dict:
    """What :func:`psdnet_qgis.deps.installer.install` recorded in ``target``; {} when none."""
    try:
        return json.loads((Path(target) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def is_inside(path: str | os.PathLike | None, folder: str | os.PathLike) -> bool:
    """True when ``path`` (e.g. ``torch.__file__``) lies in ``folder``."""
    if not path:
        return False
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
    except ValueError:
        return False
    return True
