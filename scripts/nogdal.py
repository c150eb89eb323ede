"""Run a module or script with GDAL and QGIS made unimportable (as on a bare GPU machine).

    python scripts/nogdal.py -m psdnet_qgis.training --pairs build/gpu/pairs ...
    python scripts/nogdal.py scripts/gpu_checks.py agree --device cpu

``sys.modules[name] = None`` makes ``import osgeo`` (and ``qgis``, ``processing``) raise
ImportError in this process, so a run that succeeds here proves its path needs neither,
even in a venv that has them (``scripts/gpu_session.sh`` with ``NO_GDAL=1``).
"""

from __future__ import annotations

import runpy
import sys

for _name in ("osgeo", "qgis", "processing"):
    sys.modules[_name] = None  # type: ignore[assignment]

if __name__ == "__main__":
    args = sys.argv[1:]
    if not args:
        raise SystemExit(__doc__)
    if args[0] == "-m":
        sys.argv = args[1:]
        sys.path.insert(0, "")  # as `python -m`: the working directory first
        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = args
        sys.path.insert(0, str(__import__("pathlib").Path(args[0]).resolve().parent))
        runpy.run_path(args[0], run_name="__main__")
