#!/usr/bin/env python3
"""Build the plugin zip for QGIS's Plugin Manager ("Install from ZIP").

Layout inside the zip: ``psdnet_qgis/`` holding the code, ``metadata.txt``, ``LICENSE`` and
``resources/`` (icon, bundled models, model card). No tests. Fails above the 25 MB limit of
the QGIS plugin repository.
"""

from __future__ import annotations

import argparse
import configparser
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = "psdnet_qgis"
LIMIT_BYTES = 25 * 1024 * 1024
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.aux.xml", ".DS_Store")


def stage_plugin(dest: Path) -> Path:
    """Copy the installable plugin folder to ``dest/psdnet_qgis`` and return that folder."""
    target = Path(dest) / PLUGIN
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(ROOT / PLUGIN, target, ignore=SKIP)
    shutil.copytree(ROOT / "resources", target / "resources", ignore=SKIP)
    shutil.copy2(ROOT / "metadata.txt", target / "metadata.txt")
    shutil.copy2(ROOT / "LICENSE", target / "LICENSE")
    return target


def version() -> str:
    meta = configparser.ConfigParser()
    meta.read(ROOT / "metadata.txt")
    return meta["general"]["version"]


def build_zip(out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    stage = out_dir / "stage"
    folder = stage_plugin(stage)
    zip_path = out_dir / f"{PLUGIN}-{version()}.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(stage))
    shutil.rmtree(stage)
    size = zip_path.stat().st_size
    if size > LIMIT_BYTES:
        zip_path.unlink()
        sys.exit(f"error: plugin zip is {size / 1e6:.1f} MB, over the 25 MB plugin repository limit")
    return zip_path


def qgis_process_env(zip_path: Path, plugins: Path, profile: Path, qgis_process: str) -> dict:
    """Install the plugin zip for ``qgis_process`` as QGIS's "Install from ZIP" does and enable it.

    Unpacks ``zip_path`` into the plugin folder ``plugins`` and enables the plugin in the fresh
    QGIS profile ``profile``. Returns the environment for ``qgis_process`` runs: those folders,
    an offscreen Qt platform, and this interpreter's site-packages on PYTHONPATH (qgis_process
    embeds the system Python; this makes the environment's torch importable).
    """
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(plugins)
    env = dict(os.environ)
    env.update({
        "QGIS_PLUGINPATH": str(plugins),
        "QGIS_CUSTOM_CONFIG_PATH": str(profile),
        "PYTHONPATH": os.pathsep.join([sysconfig.get_paths()["purelib"], env.get("PYTHONPATH", "")]),
        "QT_QPA_PLATFORM": "offscreen",
    })
    res = subprocess.run([qgis_process, "plugins", "enable", PLUGIN], env=env,
                         capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        raise RuntimeError(f"qgis_process plugins enable {PLUGIN} failed: {res.stdout}{res.stderr}")
    return env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="dist", type=Path)
    args = ap.parse_args()
    path = build_zip(args.out)
    print(f"plugin zip: {path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
