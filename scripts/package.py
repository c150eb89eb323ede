#!/usr/bin/env python3
"""Build the plugin zip for QGIS's Plugin Manager ("Install from ZIP").

Layout inside the zip: ``psdnet_qgis/`` holding the code, ``metadata.txt``, ``LICENSE`` and
``resources/`` (icon, bundled models, model card). No tests. Fails above the 25 MB limit of
the QGIS plugin repository.
"""

from __future__ import annotations

import argparse
import configparser
import shutil
import sys
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="dist", type=Path)
    args = ap.parse_args()
    path = build_zip(args.out)
    print(f"plugin zip: {path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
