"""The installer's pure parts: Python discovery, the managed folder, the pip command, progress,
failure advice, GPU parsing; and the pip runner on real subprocesses (log, cancel)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from psdnet_qgis.deps import gpu, installer, paths
from psdnet_qgis.deps.python import find_python, parse_pip_version, python_candidates
from psdnet_qgis.errors import PSDNetCanceled

# -- QGIS's Python ------------------------------------------------------------------------------

def test_windows_qgis_binary_finds_python_exe_in_exec_prefix():
    found = find_python(r"C:\OSGeo4W\bin\qgis-bin.exe", r"C:\OSGeo4W\apps\Python312", "win32",
                        which=lambda _: None, exists=lambda p: p.endswith("python3.exe"))
    assert found == r"C:\OSGeo4W\apps\Python312\python3.exe"
    cands = python_candidates(r"C:\OSGeo4W\bin\qgis-bin.exe", r"C:\OSGeo4W\apps\Python312", "win32")
    assert cands == [r"C:\OSGeo4W\apps\Python312\python.exe", r"C:\OSGeo4W\apps\Python312\python3.exe"]


def test_windows_pythonw_is_not_taken():
    cands = python_candidates(r"C:\Py\pythonw.exe", r"C:\Py", "win32")
    assert cands[0] == r"C:\Py\python.exe"


def test_macos_bundle_uses_exec_prefix_bin_python3():
    prefix = "/Applications/QGIS-LTR.app/Contents/MacOS"
    found = find_python(f"{prefix}/QGIS", prefix, "darwin", which=lambda _: "/usr/bin/python3",
                        exists=lambda p: p == f"{prefix}/bin/python3")
    assert found == f"{prefix}/bin/python3"
    # no bundled python: never a python3 from PATH (it would be another interpreter)
    assert find_python(f"{prefix}/QGIS", prefix, "darwin", which=lambda _: "/usr/bin/python3",
                       exists=lambda p: False) is None


def test_linux_takes_sys_executable_when_it_is_python():
    assert find_python("/usr/bin/python3", "/usr", "linux", which=lambda _: None,
                       exists=lambda p: True) == "/usr/bin/python3"


def test_linux_qgis_process_falls_back_to_prefix_then_path():
    v = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert find_python("/usr/bin/qgis_process.bin", "/usr", "linux", which=lambda _: "/opt/x/python3",
                       exists=lambda p: p == f"/usr/bin/python{v}") == f"/usr/bin/python{v}"
    assert find_python("", "/usr", "linux", which=lambda n: f"/opt/x/{n}",
                       exists=lambda p: False) == "/opt/x/python3"


def test_find_python_here_runs_this_python():
    found = find_python()
    assert found is not None and Path(found).exists()


def test_parse_pip_version():
    probe = parse_pip_version("pip 23.0.1 from /usr/lib/python3/dist-packages/pip (python 3.11)\n")
    assert (probe.pip_version, probe.python_version) == ("23.0.1", "3.11")
    assert parse_pip_version("/usr/bin/python3: No module named pip") is None


# -- the managed folder ---------------------------------------------------------------------------

def test_managed_dir_inside_the_profile_per_python_version(tmp_path):
    assert paths.managed_dir(tmp_path, (3, 12), env={}) == tmp_path / "python" / "psdnet_deps" / "py3.12"
    assert paths.managed_dir(tmp_path, env={paths.ENV_DEPS_DIR: "/x/deps"}) == Path("/x/deps")


@pytest.mark.parametrize(("platform", "env", "expected"), [
    ("linux", {}, "/home/u/.local/share/QGIS/QGIS3/profiles/default"),
    ("linux", {"XDG_DATA_HOME": "/d"}, "/d/QGIS/QGIS3/profiles/default"),
    ("darwin", {}, "/home/u/Library/Application Support/QGIS/QGIS3/profiles/default"),
    ("win32", {"APPDATA": "/c/Roaming"}, "/c/Roaming/QGIS/QGIS3/profiles/default"),
    ("linux", {"QGIS_CUSTOM_CONFIG_PATH": "/cfg"}, "/cfg/profiles/default"),
])
def test_default_profile_dir(platform, env, expected):
    assert paths.default_profile_dir(platform, env, "/home/u") == Path(expected)


def test_activate_only_an_installed_folder_first_and_once(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    folder = tmp_path / "py3.11"
    folder.mkdir()
    assert not paths.activate(folder)  # no marker: an unfinished install is never used
    (folder / paths.MARKER).write_text("{}", encoding="utf-8")
    assert paths.activate(folder) and paths.activate(folder)
    assert sys.path[0] == str(folder) and sys.path.count(str(folder)) == 1
    paths.deactivate(folder)
    assert str(folder) not in sys.path


# -- the pip command, progress and advice ----------------------------------------------------------

def test_pip_command_pins_numpy_and_adds_index_and_find_links(tmp_path):
    constraints = tmp_path / "c.txt"
    constraints.write_text(installer.constraints_text("1.24.2"), encoding="utf-8")
    assert "numpy==1.24.2" in constraints.read_text(encoding="utf-8").splitlines()
    cmd = installer.pip_command("/py", tmp_path / "t", constraints, index_url=gpu.CPU_INDEX,
                                find_links="/wheels")
    assert cmd[:4] == ["/py", "-m", "pip", "install"]
    assert "--isolated" not in cmd  # the user's pip configuration (proxy, certificates) applies
    assert cmd[cmd.index("--target") + 1] == str(tmp_path / "t")
    assert cmd[cmd.index("--constraint") + 1] == str(constraints)
    assert cmd[cmd.index("--index-url") + 1] == "https://download.pytorch.org/whl/cpu"
    assert cmd[cmd.index("--find-links") + 1] == "/wheels"
    assert "--no-user" in cmd and cmd[-1] == "torch"


def test_pip_command_offline_has_no_index(tmp_path):
    cmd = installer.pip_command("/py", tmp_path, tmp_path / "c", index_url=gpu.CPU_INDEX, find_links="/w",
                                offline=True, spec="torch==2.13.0+cpu")
    assert "--no-index" in cmd and "--index-url" not in cmd and cmd[-1] == "torch==2.13.0+cpu"


def test_constraints_without_numpy_pin_nothing():
    assert "numpy" not in installer.constraints_text(None).split("\n", 1)[1]


def test_pip_progress_is_monotonic_by_stage():
    p = installer.PipProgress()
    lines = ["Looking in indexes: https://download.pytorch.org/whl/cpu", "Collecting torch",
             "  Downloading torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl (190 MB)",
             "Collecting filelock (from torch)", "Processing ./wheels/sympy-1.14.0-py3-none-any.whl",
             "Installing collected packages: mpmath, sympy, torch", "Successfully installed torch-2.13.0+cpu",
             "Collecting late (a warning after the end)"]
    got = [p.feed(x) for x in lines]
    assert got[0] is None
    values = [g for g in got if g is not None]
    assert values == sorted(values) and values[-1] == 90.0
    assert got[5] == 60.0 and got[-1] is None


def test_failure_advice_names_what_to_try():
    kw = {"python_version": "3.11", "index_url": gpu.CPU_INDEX, "target": "/t", "where": gpu.CPU_INDEX}
    nomatch = installer.failure_advice(["ERROR: No matching distribution found for torch"], **kw)
    assert "Python 3.11" in nomatch and "FIND_LINKS" in nomatch
    net = installer.failure_advice(["WARNING: Retrying ... NewConnectionError(...)"], **kw)
    assert "proxy" in net and "pip download torch --index-url https://download.pytorch.org/whl/cpu" in net
    assert "disk is full" in installer.failure_advice(["OSError: [Errno 28] No space left on device"], **kw)
    assert "log" in installer.failure_advice(["something else"], **kw)
    assert installer.last_errors(["a", "ERROR: x", "b", "ERROR: y"]) == "ERROR: x | ERROR: y"


# -- GPUs and the variant ------------------------------------------------------------------------

SMI_L = ("GPU 0: NVIDIA GeForce RTX 3060 (UUID: GPU-1234-abcd)\n"
         "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-5678)\n")
SMI = "| NVIDIA-SMI 550.54.15      Driver Version: 550.54.15      CUDA Version: 12.4     |"


def test_parse_nvidia_smi():
    assert gpu.parse_gpu_list(SMI_L) == ("NVIDIA GeForce RTX 3060", "NVIDIA H100 80GB HBM3")
    assert gpu.parse_gpu_list("No devices were found") == ()
    assert gpu.parse_cuda_version(SMI) == (12, 4)
    assert gpu.parse_cuda_version("") is None


@pytest.mark.parametrize(("cuda", "tag"), [((12, 4), None), ((12, 6), "cu126"), ((12, 7), "cu126"),
                                           ((12, 8), "cu128"), ((13, 0), "cu128"), (None, None)])
def test_cuda_tag(cuda, tag):
    assert gpu.cuda_tag(cuda) == tag


def test_resolve_variant():
    card = gpu.GpuInfo(names=("RTX",), cuda_version=(12, 6))
    assert installer.resolve_variant("auto", card) == ("cuda", "https://download.pytorch.org/whl/cu126")
    assert installer.resolve_variant("auto", gpu.GpuInfo()) == ("cpu", gpu.CPU_INDEX)
    assert installer.resolve_variant("cpu", card) == ("cpu", gpu.CPU_INDEX)
    with pytest.raises(installer.InstallError, match="nvidia-smi not found.*CPU variant"):
        installer.resolve_variant("cuda", gpu.GpuInfo(problem="nvidia-smi not found on PATH"))
    with pytest.raises(installer.InstallError, match="Update the NVIDIA driver"):
        installer.resolve_variant("cuda", gpu.GpuInfo(names=("old",), cuda_version=(11, 8)))
    with pytest.raises(installer.InstallError, match="'rocm' is not one of"):
        installer.resolve_variant("rocm", gpu.GpuInfo())


# -- the runner, on real subprocesses -------------------------------------------------------------

def test_run_logged_streams_lines_to_callback_and_log(tmp_path):
    seen: list[str] = []
    log = tmp_path / "install.log"
    code, lines = installer.run_logged([sys.executable, "-c", "print('Collecting torch'); print('done')"],
                                       log, seen.append, lambda: False)
    assert code == 0 and lines == seen == ["Collecting torch", "done"]
    text = log.read_text(encoding="utf-8")
    assert "Collecting torch" in text and "exit code 0" in text


def test_run_logged_cancel_terminates_the_process(tmp_path):
    start = time.monotonic()
    cancel_at = start + 0.5
    with pytest.raises(PSDNetCanceled):
        installer.run_logged([sys.executable, "-c", "import time; print('x', flush=True); time.sleep(60)"],
                             tmp_path / "log", lambda _: None, lambda: time.monotonic() > cancel_at)
    assert time.monotonic() - start < 15
    assert "cancelled" in (tmp_path / "log").read_text(encoding="utf-8")


class _Recorder:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.percent: list[float] = []

    def info(self, msg: str) -> None:
        self.lines.append(msg)

    def progress(self, percent: float) -> None:
        self.percent.append(percent)

    def is_canceled(self) -> bool:
        return False


def test_install_failure_offline_names_the_fix_and_keeps_the_log(tmp_path):
    """A real pip run with nothing to install from: fails fast, says what to try, keeps no partial folder."""
    empty = tmp_path / "wheels"
    empty.mkdir()
    target = tmp_path / "deps" / "py3"
    opts = installer.InstallOptions(target=target, variant="cpu", find_links=str(empty), offline=True,
                                    spec="psdnet-no-such-package")
    rec = _Recorder()
    with pytest.raises(installer.InstallError) as err:
        installer.install(opts, rec)
    msg = str(err.value)
    assert "No matching distribution" in msg and "FIND_LINKS" in msg
    assert str(target.parent / "install.log") in msg
    assert "psdnet-no-such-package" in (target.parent / "install.log").read_text(encoding="utf-8")
    assert not target.exists() and not (target.parent / "py3.partial").exists()
    assert any("QGIS's Python" in x for x in rec.lines)


def test_uninstall(tmp_path):
    target = tmp_path / "py3"
    rec = _Recorder()
    assert not installer.uninstall(target, rec)
    (target / "torch").mkdir(parents=True)
    assert installer.uninstall(target, rec) and not target.exists()


def test_torch_resolves_to_the_activated_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    # a torch already imported (by earlier tests) is what `import torch` returns: look on the path
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    folder = tmp_path / "py3"
    assert not installer.torch_resolves_to(folder)  # here: the venv's torch
    (folder / "torch").mkdir(parents=True)
    (folder / "torch" / "__init__.py").write_text("", encoding="utf-8")
    (folder / paths.MARKER).write_text("{}", encoding="utf-8")
    paths.activate(folder)
    assert installer.torch_resolves_to(folder)
