"""A real full disk for the tests: one pansharpening run in a child process under a file size limit.

The kernel refuses writes past the process's file size limit (RLIMIT_FSIZE: EFBIG; Python
ignores SIGXFSZ) exactly where a full disk refuses them (ENOSPC): GDAL's own error path,
nothing mocked. The limit covers every regular file the process writes, pytest's own output
included when it goes to a file (``make test > log``), so it is set in a child process only.

Run as ``python -m tests.full_disk LIMIT engine|processing ARGS_JSON``; prints one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run_with_file_size_limit(limit: int, entry: str, args: dict[str, Any], timeout: float = 120.0
                             ) -> tuple[dict[str, Any], str]:
    """Run one pansharpening with ``limit`` bytes as the file size limit, in a child process.

    Args:
        limit: RLIMIT_FSIZE of the child, in bytes, set just before the run.
        entry: "engine" (``engine.run.pansharpen(**args)``) or "processing"
            (``processing.run("psdnet:pansharpen", args)`` in a headless QGIS).
        args: keyword arguments / Processing parameters (JSON-serialisable).

    Returns:
        (``{"error": exception class name or None, "message": str}``, the child's stderr).
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "tests.full_disk", str(int(limit)), entry, json.dumps(args)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise AssertionError(f"child exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return json.loads(lines[-1]), proc.stderr


def _limit(nbytes: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


def _engine(limit: int, args: dict[str, Any]) -> None:
    from psdnet_qgis.engine.run import pansharpen

    _limit(limit)
    pansharpen(**args)


def _processing(limit: int, args: dict[str, Any]) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qgis.core import QgsApplication

    QgsApplication.setPrefixPath("/usr", True)
    app = QgsApplication([], False)
    app.initQgis()
    sys.path.append("/usr/share/qgis/python/plugins")
    import processing
    from processing.core.Processing import Processing

    from psdnet_qgis.processing.provider import PSDNetProvider

    Processing.initialize()
    provider = PSDNetProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    _limit(limit)
    try:
        processing.run("psdnet:pansharpen", args)
    finally:
        _limit(2**62)
        QgsApplication.processingRegistry().removeProvider(provider)
        app.exitQgis()


def main(argv: list[str]) -> int:
    limit, entry, args = int(argv[0]), argv[1], json.loads(argv[2])
    try:
        {"engine": _engine, "processing": _processing}[entry](limit, args)
    except Exception as exc:  # noqa: BLE001 - reported to the parent test, which judges it
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}), flush=True)
        return 0
    print(json.dumps({"error": None, "message": ""}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
