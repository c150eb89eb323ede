"""``python -m psdnet_qgis batch``: many scenes through real dask.distributed (no mocks).

Clusters run on 127.0.0.1 only, on ports the OS picks; every process a test starts is
stopped by its PID at the end, and every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import read
from tests.rasters import make_pair

pytest.importorskip("distributed")
torch = pytest.importorskip("torch")

from psdnet_qgis.__main__ import main  # noqa: E402
from psdnet_qgis.engine.batch import jobs as batch_jobs  # noqa: E402
from psdnet_qgis.engine.batch import runner as batch  # noqa: E402
from psdnet_qgis.errors import PSDNetInputError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
#: Upper bound of any wait on a cluster process (2 shared cores, torch imported per worker).
WAIT_S = 120.0
ENV_1THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PSDNET_THREADS": "1"}


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    """A seeded, untrained narrow PSDNet (4 bands, ratio 4) saved like a bundled model."""
    from psdnet_qgis.model.psdnet import PSDNet
    from psdnet_qgis.model.weights import save_model

    torch.manual_seed(0)
    net = PSDNet(4, 4, width=8).eval()
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    save_model(net, path, {"name": "tiny_batch", "rgb": [2, 1, 0], "normalisation": "zscore4"})
    return path


def _scenes(folder: Path, n: int, ms_shape: tuple[int, int] = (24, 28)) -> list[tuple[Path, Path]]:
    return [make_pair(folder, ms_shape=ms_shape, bands=4, ratio=4, seed=10 + i, name=f"s{i}")
            for i in range(n)]


def _write_jobs(path: Path, rows: list[dict[str, str]]) -> Path:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = [",".join(cols)] + [",".join(r.get(c, "") for c in cols) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _batch(capsys, *args: str) -> tuple[int, dict]:
    """The CLI in this process; returns (exit code, JSON summary)."""
    capsys.readouterr()
    code = main(["batch", *args, "--json", "--quiet"])
    out = capsys.readouterr().out
    return code, (json.loads(out) if out.strip() else {})


def _children() -> list:
    import psutil

    return psutil.Process().children(recursive=True)


def _stop(pids: list[int]) -> None:
    """SIGKILL each of these processes that is still alive."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _partials(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if ".partial-" in p.name)


@pytest.fixture(scope="module")
def cluster_address():
    """A LocalCluster of 2 single-thread workers shared by the tests that pass --scheduler."""
    import logging

    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR, env=ENV_1THREAD)
    pids: list[int] = []
    try:
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=WAIT_S)
            pids = list(client.run(os.getpid).values())
        yield cluster.scheduler_address
    finally:
        cluster.close(timeout=30)
        _stop(pids)


# ---------------------------------------------------------------- jobs file, sizes (no dask)

def test_read_jobs_resolves_paths_and_defaults(tmp_path):
    (tmp_path / "sub").mkdir()
    jobs_csv = _write_jobs(tmp_path / "sub" / "jobs.csv", [
        {"PAN": "a_pan.tif", "ms": "../a_ms.tif", "pan-band": "", "tile": ""},
        {"PAN": "/abs/b_pan.tif", "ms": "b_ms.tif", "pan-band": "2", "tile": "64", "method": "gsa",
         "out": "o/b.tif", "model": "w/m.pt", "float32": "yes"},
    ])
    jobs = batch_jobs.read_jobs(str(jobs_csv), str(tmp_path / "out"), {"method": "psdnet", "tile": None,
                                                                        "pan_band": 1, "model": "auto"})
    a, b = jobs
    assert (a.line, a.pan, a.ms) == (2, str(tmp_path / "sub" / "a_pan.tif"), str(tmp_path / "a_ms.tif"))
    assert a.out == str(tmp_path / "out" / "a_ms_psdnet.tif")
    assert a.options == {"method": "psdnet", "pan_band": 1, "model": "auto"}
    assert b.pan == "/abs/b_pan.tif" and b.out == str(tmp_path / "sub" / "o" / "b.tif")
    assert b.options == {"method": "gsa", "pan_band": 2, "tile": 64, "out_dtype": "float32",
                         "model": str(tmp_path / "sub" / "w" / "m.pt")}


def test_read_jobs_takes_the_eight_band_columns(tmp_path):
    jobs_csv = _write_jobs(tmp_path / "jobs.csv", [
        {"pan": "p.tif", "ms": "ms8.tif", "model_bands": "2;3;5;7", "other_method": "gsa"}])
    (job,) = batch_jobs.read_jobs(str(jobs_csv), str(tmp_path / "out"), {"method": "psdnet"})
    assert job.options == {"method": "psdnet", "model_bands": "2;3;5;7", "other_method": "gsa"}


def test_read_jobs_takes_the_calibrate_column(tmp_path):
    jobs_csv = _write_jobs(tmp_path / "jobs.csv", [{"pan": "p.tif", "ms": "a.tif", "calibrate": "no"},
                                                   {"pan": "p.tif", "ms": "b.tif", "calibrate": "1"}])
    a, b = batch_jobs.read_jobs(str(jobs_csv), str(tmp_path / "out"), {"method": "psdnet"})
    assert a.options["calibrate"] is False and b.options["calibrate"] is True
    bad = _write_jobs(tmp_path / "bad.csv", [{"pan": "p.tif", "ms": "a.tif", "calibrate": "maybe"}])
    with pytest.raises(PSDNetInputError, match="column 'calibrate': 'maybe' is not yes/no"):
        batch_jobs.read_jobs(str(bad), str(tmp_path / "out"), {"method": "psdnet"})


@pytest.mark.parametrize("text, needle", [
    ("pan,ms,colour\na.tif,b.tif,red\n", "unknown column(s) 'colour'"),
    ("pan,out\na.tif,o.tif\n", "no 'ms' column"),
    ("pan,ms\na.tif,\n", "line 2: the 'ms' cell is empty"),
    ("pan,ms,pan_band\na.tif,b.tif,first\n", "line 2, column 'pan_band': 'first' is not a whole number"),
    ("pan,ms\na.tif,b.tif\nc.tif,b.tif\n", "lines 2 and 3 write the same output"),
    ("pan,ms\n", "has a header but no scene"),
    ("pan,ms,method\na.tif,b.tif,pca\n", "line 2: method 'pca' is unknown"),
    ("pan,ms,out\na.tif,b.tif,b.tif\n", "line 2: the output"),
])
def test_read_jobs_errors_name_the_line_and_fix(tmp_path, text, needle):
    p = tmp_path / "jobs.csv"
    p.write_text(text)
    with pytest.raises(PSDNetInputError) as err:
        batch_jobs.read_jobs(str(p), str(tmp_path))
    assert needle in str(err.value)


def test_unknown_jobs_file_exits_2(tmp_path, capsys):
    assert main(["batch", str(tmp_path / "none.csv"), "--out-dir", str(tmp_path)]) == 2
    assert "error: Jobs file" in capsys.readouterr().err


def test_plan_local_never_oversubscribes_by_default():
    gib = 1 << 30
    assert batch.plan_local(None, None, 2, 32 * gib) == (2, 1)
    assert batch.plan_local(1, None, 2, 32 * gib) == (1, 2)
    assert batch.plan_local(None, 2, 2, 32 * gib) == (1, 2)
    assert batch.plan_local(None, None, 16, 8 * gib) == (4, 4)  # memory holds 4 workers
    assert batch.plan_local(3, 2, 2, None) == (3, 2)  # asked for: kept (and warned about)


def test_complete_output_refuses_truncated_files(tmp_path, pair):
    pan, _ = pair
    assert batch.complete_output(str(pan)) == (112, 96)
    cut = tmp_path / "cut.tif"
    data = pan.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    assert batch.complete_output(str(cut)) is None
    assert batch.complete_output(str(tmp_path / "missing.tif")) is None
    partial = batch.partial_path(str(tmp_path / "x.tif"))
    assert Path(partial).name.startswith(".x.partial-") and batch.stale_partials(str(tmp_path / "x.tif")) == []


def test_package_and_cli_never_import_dask():
    code = ("import sys, psdnet_qgis, psdnet_qgis.engine.run, psdnet_qgis.engine.batch.runner, "
            "psdnet_qgis.engine.batch.jobs, psdnet_qgis.engine.batch.cli, psdnet_qgis.__main__ as m, "
            "psdnet_qgis.processing.provider; m._parser(); "
            "bad = [n for n in ('dask', 'distributed') if n in sys.modules]; assert not bad, bad")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=WAIT_S,
                       env=dict(os.environ, PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="offscreen"))
    assert p.returncode == 0, p.stderr


# ---------------------------------------------------------------- real dask clusters

@pytest.mark.slow
def test_local_cluster_equals_single_scene_cli(tmp_path, tiny_weights, capsys):
    """Default path (a LocalCluster made by the command), 2 single-thread workers, 3 scenes."""
    scenes = _scenes(tmp_path, 3)
    jobs_csv = _write_jobs(tmp_path / "jobs.csv", [{"pan": p.name, "ms": m.name} for p, m in scenes])
    before = {c.pid for c in _children()}
    code, summary = _batch(capsys, str(jobs_csv), "--out-dir", str(tmp_path / "out"), "--model", str(tiny_weights),
                           "--workers", "2", "--threads-per-worker", "1")
    assert code == 0, summary
    assert (summary["done"], summary["workers"], summary["threads_per_worker"]) == (3, 2, 1)
    results = summary["results"]
    # a worker loads the model once: 3 scenes on 2 workers, so one of them reused it
    assert any(r["model_reused"] for r in results) and len({r["worker"] for r in results}) <= 2
    for r in results:  # the model's metadata survives the per-worker cache
        assert (r["report"]["model"], r["report"]["rgb"], r["report"]["threads"]) == ("tiny_batch", [2, 1, 0], 1)
    for (pan, ms), r in zip(scenes, results, strict=True):
        ref = tmp_path / f"ref_{ms.stem}.tif"
        assert main(["pansharpen", str(pan), str(ms), str(ref), "--model", str(tiny_weights), "--quiet"]) == 0
        assert r["out"] == str(tmp_path / "out" / f"{ms.stem}_psdnet.tif")
        assert np.abs(read(Path(r["out"])) - read(ref)).max() <= 1.0
    assert _partials(tmp_path / "out") == []
    deadline = time.monotonic() + 30  # the command stopped the cluster it started
    while (any("spawn_main" in " ".join(c.cmdline()) for c in _children() if c.pid not in before)
           and time.monotonic() < deadline):
        time.sleep(0.2)
    left = [c.pid for c in _children() if c.pid not in before and "spawn_main" in " ".join(c.cmdline())]
    _stop(left)
    assert not left, "worker processes of the local cluster are still running"


def test_bad_scene_is_reported_and_the_others_complete(tmp_path, cluster_address, capsys):
    scenes = _scenes(tmp_path, 2)
    good = tmp_path / "s0_ms.tif"
    broken = tmp_path / "broken_ms.tif"
    data = good.read_bytes()
    broken.write_bytes(data[: len(data) * 2 // 3])  # a truncated copy: opens, cannot be read
    rows = [{"pan": p.name, "ms": m.name} for p, m in scenes]
    rows.insert(1, {"pan": "s0_pan.tif", "ms": broken.name})
    rows.append({"pan": "missing_pan.tif", "ms": "s1_ms.tif", "out": "out/missing.tif"})
    jobs_csv = _write_jobs(tmp_path / "jobs.csv", rows)
    code, summary = _batch(capsys, str(jobs_csv), "--out-dir", str(tmp_path / "out"), "--method", "gsa",
                           "--scheduler", cluster_address)
    assert code == batch.EXIT_FAILED
    assert (summary["done"], summary["failed"]) == (2, 2)
    status = {Path(r["out"]).name: r for r in summary["results"]}
    assert "broken_ms.tif" in status["broken_ms_gsa.tif"]["message"]
    assert "missing_pan.tif" in status["missing.tif"]["message"]
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["s0_ms_gsa.tif", "s1_ms_gsa.tif"]  # nothing for the bad


def test_rerun_skips_complete_outputs_not_partial_files(tmp_path, cluster_address, capsys):
    scenes = _scenes(tmp_path, 3)
    jobs_csv = _write_jobs(tmp_path / "jobs.csv", [{"pan": p.name, "ms": m.name} for p, m in scenes])
    out = tmp_path / "out"
    args = (str(jobs_csv), "--out-dir", str(out), "--method", "mtf_glp_hpm", "--scheduler", cluster_address)
    code, first = _batch(capsys, *args)
    assert code == 0 and first["done"] == 3
    finals = [Path(r["out"]) for r in first["results"]]
    reference = read(finals[0])
    code, again = _batch(capsys, *args)
    assert code == 0 and (again["done"], again["skipped"]) == (0, 3)
    assert all(r["message"] == "complete output exists" for r in again["results"])
    # A killed run leaves a temporary file, never the final name: make one from a real output
    # cut short, and damage another final output the same way (e.g. an interrupted copy).
    data = finals[0].read_bytes()
    stale = out / f".{finals[0].stem}.partial-999999-deadbeef.tif"
    stale.write_bytes(data[: len(data) // 2])
    finals[0].unlink()
    finals[1].write_bytes(finals[1].read_bytes()[:200])
    code, third = _batch(capsys, *args)
    assert code == 0
    assert [r["status"] for r in third["results"]] == ["done", "done", "skipped"]
    assert not stale.exists() and _partials(out) == []
    assert np.array_equal(read(finals[0]), reference)


def _start(cmd: list[str], env: dict[str, str], procs: list[subprocess.Popen], log: Path) -> subprocess.Popen:
    """Start ``cmd`` with stdout to ``log`` and stderr to ``log.err``; remember it in ``procs``."""
    with open(log, "w") as out, open(f"{log}.err", "w") as err:
        p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=err)
    procs.append(p)
    return p


@pytest.mark.slow
def test_killed_worker_has_its_scene_retried_elsewhere(tmp_path, tiny_weights):
    """A scheduler and two worker processes on 127.0.0.1; SIGKILL the worker writing a scene."""
    from distributed import Client

    scenes = _scenes(tmp_path, 4, ms_shape=(128, 128))  # about 1.5 s per scene on one thread
    jobs_csv = _write_jobs(tmp_path / "jobs.csv", [{"pan": p.name, "ms": m.name} for p, m in scenes])
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), **ENV_1THREAD)
    sched_file = tmp_path / "scheduler.json"
    procs: list[subprocess.Popen] = []
    try:
        _start([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                "--no-dashboard", "--scheduler-file", str(sched_file)], env, procs, tmp_path / "scheduler.log")
        deadline = time.monotonic() + WAIT_S
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        workers = [_start([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                           "--no-nanny", "--no-dashboard", "--host", "127.0.0.1", "--name", f"w{i}"],
                          env, procs, tmp_path / f"worker{i}.log") for i in range(2)]
        with Client(address, timeout=WAIT_S) as client:
            client.wait_for_workers(2, timeout=WAIT_S)
        cli = _start([sys.executable, "-m", "psdnet_qgis", "batch", str(jobs_csv), "--out-dir", str(out),
                      "--model", str(tiny_weights), "--scheduler", address, "--threads-per-worker", "1",
                      "--json", "--quiet"], env, procs, tmp_path / "batch.json")
        worker_pids = {w.pid for w in workers}
        killed = victim = None
        deadline = time.monotonic() + WAIT_S
        while killed is None and cli.poll() is None and time.monotonic() < deadline:
            for p in _partials(out):  # .<stem>.partial-<pid>-<random>.tif: who is writing what
                pid = int(p.name.split(".partial-")[1].split("-")[0])
                if pid in worker_pids:
                    os.kill(pid, signal.SIGKILL)
                    killed, victim = pid, p.name.split(".partial-")[0][1:]
                    break
            time.sleep(0.02)
        assert killed is not None, "no scene was seen running on a worker"
        cli.wait(timeout=WAIT_S)
        summary = json.loads((tmp_path / "batch.json").read_text())
        assert cli.returncode == 0, summary
        assert summary["done"] == 4
        survivor = (worker_pids - {killed}).pop()
        (redone,) = [r for r in summary["results"] if Path(r["out"]).stem == victim]
        assert redone["pid"] == survivor  # dask moved the killed worker's scene to the other one
        assert all(batch.complete_output(r["out"]) for r in summary["results"])
        assert _partials(out) == []  # the killed attempt's temporary file was cleaned up
    finally:
        _stop([p.pid for p in procs])
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass


def test_unreachable_scheduler_exits_2(tmp_path, pair, monkeypatch, capsys):
    import socket

    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pan, ms = pair
    jobs_csv = _write_jobs(tmp_path / "jobs.csv", [{"pan": pan.name, "ms": ms.name}])
    monkeypatch.setattr(batch, "CONNECT_TIMEOUT_S", 2.0)
    code = main(["batch", str(jobs_csv), "--out-dir", str(tmp_path / "out"), "--scheduler",
                 f"tcp://127.0.0.1:{port}", "--quiet"])
    assert code == 2
    assert f"Scheduler 'tcp://127.0.0.1:{port}' cannot be reached" in capsys.readouterr().err
