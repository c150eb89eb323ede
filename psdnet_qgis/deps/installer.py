"""Install PyTorch for QGIS's own Python with pip, into the managed folder (``deps.paths``).

One code path for the Processing algorithm ``psdnet:install_pytorch`` (dialog, menu entry,
``qgis_process``) and the command line ``python -m psdnet_qgis install-torch``:

1. find QGIS's Python (:func:`psdnet_qgis.deps.python.find_python`) and its pip;
2. pick the wheel index: PyTorch's CPU index, or its CUDA index when asked for (or, with
   ``variant="auto"``, when ``nvidia-smi`` lists a GPU);
3. ``pip install --target <folder>.partial`` with a constraints file pinning the numpy QGIS
   already has, so pip never brings another numpy (QGIS, GDAL and rasterio are built against
   this one). The user's pip configuration (proxy, certificates, mirrors) is honoured: no
   ``--isolated``; ``find_links`` and ``index_url`` add a local wheel folder or another index;
4. pip's output goes, line by line, to the feedback (progress from pip's stages) and to
   ``install.log`` beside the managed folder; cancel terminates pip;
5. the new folder is checked by importing torch in a fresh interpreter, then replaces the old
   one, and is put first on ``sys.path`` so a fresh install works without restarting QGIS
   (unless this process had already imported a torch: then a restart is needed).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from ..core.options import TORCH_VARIANTS
from ..errors import PSDNetCanceled, PSDNetInputError
from . import gpu as gpu_mod
from .paths import LOG_NAME, MARKER, activate, deactivate, is_inside, python_tag
from .python import find_python, no_pip_advice, no_window, probe_pip

VARIANTS = TORCH_VARIANTS


class InstallError(PSDNetInputError):
    """The install failed; the message says why and what to try (and names the log)."""


class Reporter(Protocol):
    """What the installer reports to: ``engine.feedback.Feedback`` and the Processing adapter fit."""

    def info(self, msg: str) -> None: ...

    def progress(self, percent: float) -> None: ...

    def is_canceled(self) -> bool: ...


@dataclass(frozen=True)
class InstallOptions:
    """What to install where.

    Attributes:
        target: the managed folder (``deps.paths.managed_dir``).
        variant: "auto" (CUDA when ``nvidia-smi`` lists a GPU, else CPU), "cpu" or "cuda".
        find_links: a local folder of wheels pip may take packages from (``--find-links``).
        index_url: an index replacing PyTorch's (``--index-url``), e.g. a company mirror.
        offline: local wheels only (``--no-index``): needs ``find_links`` (or pip's own config).
        spec: the requirement, e.g. ``torch`` or ``torch==2.13.0+cpu``.
    """

    target: Path
    variant: str = "auto"
    find_links: str | None = None
    index_url: str | None = None
    offline: bool = False
    spec: str = "torch"


@dataclass(frozen=True)
class InstallResult:
    """A finished install: what is in ``target`` and whether QGIS needs a restart to use it."""

    target: str
    variant: str
    index_url: str
    torch_version: str
    cuda_build: str | None
    cuda_available: bool
    log: str
    needs_restart: bool

    def summary(self) -> str:
        cuda = f", CUDA {self.cuda_build} ({'GPU usable' if self.cuda_available else 'no usable GPU'})" \
            if self.cuda_build else ""
        restart = (" Restart QGIS to use it: this QGIS session had already loaded another torch."
                   if self.needs_restart else " Usable now, no restart needed.")
        return f"PyTorch {self.torch_version} ({self.variant}{cuda}) installed in {self.target}.{restart}"


# -- pure parts ------------------------------------------------------------------------------

def resolve_variant(variant: str, gpu: gpu_mod.GpuInfo) -> tuple[str, str]:
    """("cpu" | "cuda", PyTorch index URL) for the VARIANT choice and the detected GPU.

    Raises:
        InstallError: "cuda" asked for where no usable NVIDIA driver was found.
    """
    variant = (variant or "auto").strip().lower()
    if variant not in VARIANTS:
        raise InstallError(f"Variant: '{variant}' is not one of {', '.join(VARIANTS)}; choose CPU, CUDA or auto.")
    tag = gpu_mod.cuda_tag(gpu.cuda_version) if gpu.present else None
    if variant == "cuda" and tag is None:
        why = gpu.problem or (f"the driver supports CUDA {gpu.cuda_version} only, the PyTorch CUDA builds need "
                              f"{'.'.join(map(str, gpu_mod.CUDA_TAGS[-1][0]))} or newer")
        raise InstallError(f"Variant CUDA: {why}. Update the NVIDIA driver, or install the CPU variant.")
    if variant == "cpu" or tag is None:
        return "cpu", gpu_mod.CPU_INDEX
    return "cuda", f"{gpu_mod.PYTORCH_INDEX}/{tag}"


def constraints_text(numpy_version: str | None) -> str:
    """The constraints file: numpy pinned to QGIS's own, so no dependency can replace it."""
    lines = ["# written by psdnet_qgis.deps.installer: keep QGIS's own numpy"]
    if numpy_version:
        lines.append(f"numpy=={numpy_version}")
    return "\n".join(lines) + "\n"


def installed_numpy() -> str | None:
    """The numpy version the running Python has (metadata only: numpy is not imported)."""
    try:
        return importlib.metadata.version("numpy")
    except importlib.metadata.PackageNotFoundError:
        return None


def pip_command(python: str, staging: str | os.PathLike, constraints: str | os.PathLike, *,
                index_url: str | None, find_links: str | None = None, offline: bool = False,
                spec: str = "torch") -> list[str]:
    """The pip command line that installs ``spec`` into ``staging``.

    ``--no-user`` because pip refuses ``--target`` with a ``user = true`` configuration;
    ``--upgrade`` lets pip replace what a previous attempt left. pip's own configuration
    files and ``PIP_*`` variables stay in force (no ``--isolated``).
    """
    cmd = [python, "-m", "pip", "install", "--no-user", "--upgrade", "--no-warn-script-location",
           "--disable-pip-version-check", "--target", str(staging), "--constraint", str(constraints)]
    if offline:
        cmd.append("--no-index")
    elif index_url:
        cmd += ["--index-url", index_url]
    if find_links:
        cmd += ["--find-links", str(find_links)]
    return cmd + [spec]


class PipProgress:
    """Progress in percent from pip's output lines (pip prints no overall percentage).

    Stages: resolving (``Collecting``/``Processing``/``Downloading``: 5-55 %, a step per package),
    installing (``Installing collected packages``: 60 %), done (``Successfully installed``: 90 %;
    the import check takes the rest).
    """

    def __init__(self) -> None:
        self.percent = 0.0
        self.packages = 0

    def feed(self, line: str) -> float | None:
        """The new percentage if ``line`` moves the progress, else None."""
        text = line.strip()
        new = None
        if text.startswith(("Collecting ", "Processing ", "Downloading ", "Obtaining ")):
            if not text.startswith("Downloading "):
                self.packages += 1
            new = min(55.0, 5.0 + 5.0 * self.packages)
        elif text.startswith("Installing collected packages"):
            new = 60.0
        elif text.startswith("Successfully installed"):
            new = 90.0
        if new is None or new <= self.percent:
            return None
        self.percent = new
        return new


_ADVICE: tuple[tuple[str, str], ...] = (
    (r"No matching distribution found|Could not find a version that satisfies",
     "pip found no torch wheel for Python {py} on this platform at {where}. Try the CPU variant, another "
     "index (INDEX_URL), or a folder of wheels made for this Python (FIND_LINKS)."),
    (r"NewConnectionError|Name or service not known|getaddrinfo failed|Max retries exceeded|"
     r"ProxyError|Temporary failure in name resolution|timed out|SSLError|CERTIFICATE_VERIFY_FAILED",
     "the package index could not be reached. Check the internet connection; behind a proxy or a company "
     "certificate, put them in pip's configuration (pip.ini / pip.conf: proxy, cert) or HTTPS_PROXY. "
     "Offline: download the wheels on another machine ('pip download torch --index-url {index} -d wheels' "
     "with the same Python version) and install from that folder (FIND_LINKS, local wheels only)."),
    (r"No space left on device|OSError: \[Errno 28\]",
     "the disk is full: torch needs about 1 GB (CPU) or 5 GB (CUDA) free in {target}."),
    (r"Permission denied|Access is denied|\[WinError 5\]",
     "a file could not be written in {target}: close other QGIS windows (on Windows a loaded torch locks its "
     "files), restart QGIS and run the installer again."),
    (r"THESE PACKAGES DO NOT MATCH THE HASHES|hash",
     "a download was damaged or a pip hash requirement failed: run the installer again."),
)


def failure_advice(lines: Sequence[str], *, python_version: str, index_url: str, target: str,
                   where: str) -> str:
    """What to try after pip failed, from the patterns in its output (first match wins)."""
    text = "\n".join(lines)
    for pattern, advice in _ADVICE:
        if re.search(pattern, text):
            return advice.format(py=python_version, index=index_url, target=target, where=where)
    return "see the log for pip's own message; run the installer again, or try the CPU variant."


def last_errors(lines: Sequence[str], n: int = 3) -> str:
    """The last ``ERROR:`` lines of pip (or its last lines), for a one-line message."""
    errors = [x.strip() for x in lines if x.strip().startswith("ERROR")]
    picked = errors[-n:] or [x.strip() for x in lines if x.strip()][-n:]
    return " | ".join(picked)


# -- running pip ------------------------------------------------------------------------------

def pip_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment pip runs with: the caller's, no prompts, no progress bars, no venv check."""
    env = dict(os.environ if base is None else base)
    env.update({"PIP_NO_INPUT": "1", "PIP_PROGRESS_BAR": "off", "PIP_REQUIRE_VIRTUALENV": "0",
                "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"})
    env.pop("PIP_USER", None)
    return env


def run_logged(cmd: Sequence[str], log_path: Path, on_line: Callable[[str], None],
               is_canceled: Callable[[], bool], env: dict[str, str] | None = None,
               poll_s: float = 0.2) -> tuple[int, list[str]]:
    """Run ``cmd``, each output line to ``on_line`` and ``log_path``; terminate it on cancel.

    Returns:
        (exit code, output lines).

    Raises:
        PSDNetCanceled: ``is_canceled()`` became true; the process was terminated.
    """
    lines: list[str] = []
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                encoding="utf-8", errors="replace", env=env, **no_window())
        out: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_pump, args=(proc.stdout, out), daemon=True).start()
        while True:
            if is_canceled():
                _stop(proc)
                log.write("cancelled by the user\n")
                raise PSDNetCanceled("PyTorch install cancelled; nothing was changed in the managed folder.")
            try:
                line = out.get(timeout=poll_s)
            except queue.Empty:
                continue
            if line is None:
                break
            line = line.rstrip("\r\n")
            lines.append(line)
            log.write(line + "\n")
            log.flush()
            on_line(line)
        code = proc.wait()
        log.write(f"exit code {code}\n")
    return code, lines


def _pump(stream: Any, out: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        out.put(line)
    out.put(None)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


_CHECK = ("import json, sys; sys.path.insert(0, sys.argv[1]); import torch; "
          "print(json.dumps({'version': torch.__version__, 'cuda': torch.version.cuda, "
          "'cuda_available': bool(torch.cuda.is_available()), 'file': torch.__file__}))")


def check_torch(python: str, folder: Path, timeout: float = 300.0) -> dict:
    """Import torch from ``folder`` in a fresh interpreter; its version and CUDA state.

    Raises:
        InstallError: torch does not import from there.
    """
    try:
        res = subprocess.run([python, "-c", _CHECK, str(folder)], capture_output=True, text=True,
                             timeout=timeout, **no_window())
    except (OSError, subprocess.SubprocessError) as err:
        raise InstallError(f"The installed torch could not be checked: {err}") from None
    if res.returncode != 0:
        tail = " | ".join((res.stderr or res.stdout).strip().splitlines()[-2:])
        raise InstallError(f"pip finished but torch does not import from {folder}: {tail}. Run the installer "
                           "again; if it keeps failing, try the CPU variant.")
    info = json.loads(res.stdout.strip().splitlines()[-1])
    if not Path(info["file"]).resolve().is_relative_to(folder.resolve()):
        raise InstallError(f"pip finished but torch is not in {folder} (imported from {info['file']}).")
    return info


# -- the steps --------------------------------------------------------------------------------

def _python_and_pip(report: Reporter) -> tuple[str, str]:
    python = find_python()
    if python is None:
        raise InstallError(f"QGIS's Python interpreter was not found (sys.executable={sys.executable}, "
                           f"sys.exec_prefix={sys.exec_prefix}). Install torch by hand for that Python: see "
                           "the README, 'Making torch importable by QGIS'.")
    probe, text = probe_pip(python)
    if probe is None:
        raise InstallError(f"pip is not available for QGIS's Python ({python}): {text[-300:]}. "
                           f"To fix: {no_pip_advice()}, then run the installer again.")
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if probe.python_version != running:
        raise InstallError(f"{python} is Python {probe.python_version}, but QGIS runs Python {running}: the "
                           "wheels would not load. Install torch by hand for QGIS's Python (README).")
    report.info(f"QGIS's Python: {python} (Python {running}, pip {probe.pip_version})")
    return python, probe.python_version


def _swap(staging: Path, target: Path) -> None:
    """Replace ``target`` by ``staging`` (the old copy removed; where that fails it is left aside)."""
    old = target.with_name(target.name + ".old")
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        deactivate(target)
        try:
            target.rename(old)
        except OSError as err:
            raise InstallError(f"The previous install in {target} is in use and cannot be replaced ({err}). "
                               "Restart QGIS, then run the installer again before running PSDNet.") from None
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def install(options: InstallOptions, report: Reporter,
            detect: Callable[[], gpu_mod.GpuInfo] = gpu_mod.detect_gpu) -> InstallResult:
    """Install torch into ``options.target`` (see the module docstring for the steps).

    Args:
        options: what to install where.
        report: progress, log lines and cancel.
        detect: GPU detection (``nvidia-smi``); replaceable where the variant is fixed.

    Raises:
        InstallError: the install failed; the message names the cause, what to try and the log.
        PSDNetCanceled: cancelled; the previous install (if any) is untouched.
    """
    target = Path(options.target).expanduser().absolute()
    torch_was_loaded = "torch" in sys.modules
    if options.offline and not options.find_links:
        report.info("Local wheels only: pip takes them from the find-links folders of its own configuration.")
    python, pyver = _python_and_pip(report)
    gpu = detect() if (options.variant or "auto") != "cpu" else gpu_mod.GpuInfo()
    if gpu.present:
        report.info(f"NVIDIA GPU: {', '.join(gpu.names)} (driver CUDA {gpu.cuda_version})")
    variant, index = resolve_variant(options.variant, gpu)
    index = options.index_url or index
    where = "the local wheel folder" if options.offline else index
    report.info(f"Installing the {variant.upper()} build of PyTorch from {where}"
                + (f" and {options.find_links}" if options.find_links and not options.offline else "")
                + f" into {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    constraints = target.parent / f"constraints-{python_tag()}.txt"
    constraints.write_text(constraints_text(installed_numpy()), encoding="utf-8")
    log_path = target.parent / LOG_NAME
    log_path.write_text(f"psdnet_qgis PyTorch install, {time.strftime('%Y-%m-%d %H:%M:%S')}\n", encoding="utf-8")
    cmd = pip_command(python, staging, constraints, index_url=index, find_links=options.find_links,
                      offline=options.offline, spec=options.spec)
    progress = PipProgress()
    report.progress(2.0)

    def on_line(line: str) -> None:
        if line.strip():
            report.info(line)
        pct = progress.feed(line)
        if pct is not None:
            report.progress(pct)

    try:  # a failed, cancelled or unimportable install leaves no staging folder behind
        code, lines = run_logged(cmd, log_path, on_line, report.is_canceled, env=pip_env())
        if code != 0:
            advice = failure_advice(lines, python_version=pyver, index_url=index, target=str(target), where=where)
            raise InstallError(f"pip could not install PyTorch ({last_errors(lines)}). To try: {advice} "
                               f"Full pip output: {log_path}")
        report.info("Checking that torch imports from the new folder…")
        info = check_torch(python, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    result = InstallResult(target=str(target), variant=variant, index_url=where, torch_version=info["version"],
                           cuda_build=info["cuda"], cuda_available=info["cuda_available"], log=str(log_path),
                           needs_restart=torch_was_loaded)
    (staging / MARKER).write_text(json.dumps(asdict(result), indent=1), encoding="utf-8")
    _swap(staging, target)
    activate(target)
    if not result.needs_restart and not torch_resolves_to(target):
        result = replace(result, needs_restart=True)
    report.progress(100.0)
    return result


def torch_resolves_to(target: Path) -> bool:
    """True when ``import torch`` in this process would now load the copy in ``target``."""
    importlib.invalidate_caches()
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return False
    return spec is not None and is_inside(spec.origin, target)


def uninstall(target: str | os.PathLike, report: Reporter) -> bool:
    """Remove the managed folder (repair = uninstall, then install again).

    Returns:
        True when a folder was removed, False when there was none.

    Raises:
        InstallError: files are in use (Windows, torch loaded): restart QGIS first.
    """
    target = Path(target).expanduser().absolute()
    if not target.exists():
        report.info(f"Nothing to remove: {target} does not exist.")
        return False
    deactivate(target)
    try:
        shutil.rmtree(target)
    except OSError as err:
        raise InstallError(f"{target} could not be removed completely ({err}): this QGIS session has loaded "
                           "torch from it. Restart QGIS and uninstall again before loading PSDNet.") from None
    if "torch" in sys.modules:
        report.info("Removed. This QGIS session still has torch loaded: restart QGIS.")
    else:
        report.info(f"Removed {target}.")
    return True
