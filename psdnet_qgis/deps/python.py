"""QGIS's own Python interpreter, as a program pip can run (pure functions + one probe).

Inside QGIS ``sys.executable`` is often not Python: the ``qgis-bin.exe`` / ``QGIS`` binary on
Windows and macOS, ``qgis_process.bin`` or empty on Linux. pip must still run with the very
interpreter QGIS embeds, or it installs wheels for another Python.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath


def _looks_like_python(executable: str, windows: bool) -> bool:
    name = (PureWindowsPath(executable) if windows else PurePosixPath(executable)).name.lower()
    return name.startswith("python") and "w.exe" not in name  # pythonw.exe has no console output


def python_candidates(executable: str, exec_prefix: str, platform: str,
                      version_info: tuple[int, ...] = tuple(sys.version_info[:2])) -> list[str]:
    """Paths that may be QGIS's Python, best first (nothing is checked on disk).

    Args:
        executable: ``sys.executable`` of the running interpreter (may be the QGIS binary).
        exec_prefix: ``sys.exec_prefix`` (the embedded Python's installation folder).
        platform: ``sys.platform``.
        version_info: the running Python's (major, minor).
    """
    windows = platform.startswith("win")
    major, minor = version_info[:2]
    first = [executable] if executable and _looks_like_python(executable, windows) else []
    if windows:
        # OSGeo4W: <root>/apps/Python3xx/python.exe; the standalone installer likewise
        return first + [str(PureWindowsPath(exec_prefix) / n) for n in ("python.exe", "python3.exe")]
    prefix = PurePosixPath(exec_prefix) / "bin"
    # macOS bundle: QGIS.app/Contents/MacOS/bin/python3 (exec_prefix is Contents/MacOS or Frameworks)
    return first + [str(prefix / f"python{major}.{minor}"), str(prefix / "python3")]


def find_python(executable: str | None = None, exec_prefix: str | None = None, platform: str | None = None,
                which: Callable[[str], str | None] = shutil.which,
                exists: Callable[[str], bool] = os.path.isfile) -> str | None:
    """The first existing candidate of :func:`python_candidates`, else ``python3`` on PATH (Linux).

    Defaults are the running interpreter's ``sys`` values; ``which`` and ``exists`` are the
    file-system look-ups (replaceable for tests of other platforms).

    Returns:
        A path, or None when no interpreter was found.
    """
    executable = sys.executable if executable is None else executable
    exec_prefix = sys.exec_prefix if exec_prefix is None else exec_prefix
    platform = platform or sys.platform
    for cand in python_candidates(executable, exec_prefix, platform):
        if exists(cand):
            return cand
    if platform.startswith(("win", "darwin")):
        return None
    return which("python3")


_PIP_VERSION = re.compile(r"^pip (\S+) from .* \(python (\d+\.\d+)\)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class PipProbe:
    """``python -m pip --version`` of an interpreter: pip's version and the Python it runs on."""

    pip_version: str
    python_version: str


def parse_pip_version(text: str) -> PipProbe | None:
    """Parse ``pip 23.0.1 from /usr/lib/python3/dist-packages/pip (python 3.11)``; None if not pip."""
    m = _PIP_VERSION.search(text or "")
    return PipProbe(m.group(1), m.group(2)) if m else None


def probe_pip(python: str, timeout: float = 60.0) -> tuple[PipProbe | None, str]:
    """Run ``python -m pip --version``; (probe or None, the output for the message)."""
    try:
        res = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, text=True,
                             timeout=timeout, **no_window())
    except (OSError, subprocess.SubprocessError) as err:
        return None, str(err)
    text = (res.stdout or "") + (res.stderr or "")
    return (parse_pip_version(res.stdout) if res.returncode == 0 else None), text.strip()


def no_pip_advice(platform: str | None = None) -> str:
    """How to give QGIS's Python a pip, per OS."""
    platform = platform or sys.platform
    if platform.startswith("win"):
        return ("open the OSGeo4W Shell (Start menu, QGIS folder) and run 'python -m ensurepip --upgrade', "
                "or reinstall QGIS with the OSGeo4W installer")
    if platform == "darwin":
        return "run '<QGIS.app>/Contents/MacOS/bin/python3 -m ensurepip --upgrade' in a terminal"
    return "install pip for the system Python (Debian/Ubuntu: 'sudo apt install python3-pip')"


def no_window() -> dict:
    """subprocess keyword arguments that keep a console window from flashing up on Windows."""
    flag = getattr(subprocess, "CREATE_NO_WINDOW", 0)
    return {"creationflags": flag} if flag else {}
