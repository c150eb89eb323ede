"""Many scenes through dask.distributed: ``python -m psdnet_qgis batch JOBS.csv --out-dir DIR``.

One dask task per scene (a :class:`engine.batch.jobs.Job` of the jobs CSV), each through
the one engine path (:func:`engine.run.pansharpen`, the same call and options as the
single-scene command). Without a scheduler address the scenes run on a
:class:`distributed.LocalCluster` sized to the machine; with ``--scheduler tcp://host:port``
the very same tasks go to an existing cluster (``dask scheduler`` + ``dask worker``), whose
workers must see the input and output paths. The command's options are in
:mod:`engine.batch.cli`.

Cores: each dask worker runs one scene at a time (one dask thread) and gives that scene
``threads_per_worker`` torch/OpenMP threads, so ``workers x threads_per_worker`` is the
number of busy cores. Torch's thread pool is process-global: two scenes at once in one
worker process would each use the whole pool and oversubscribe the cores.

Faults:

* a scene is written under a temporary name in its target folder
  (``.<stem>.partial-<pid>-<random>.tif``) and renamed to its final name only once complete,
  so the final name always holds a complete raster; a rerun skips final outputs that open
  with GDAL and removes partial files left by a killed run;
* a bad scene (unreadable file, wrong bands, ...) is reported with the engine's message and
  the other scenes go on; the exit status is then non-zero;
* a worker that dies mid-scene has its scenes rescheduled on the others by dask itself
  (``distributed.scheduler.allowed-failures`` deaths per scene); other unexpected errors
  are retried ``retries`` times (``Client.submit(retries=...)``).

Only this module imports dask, and only inside functions: ``import psdnet_qgis``, the
single-scene command and the QGIS plugin never load it.
"""

from __future__ import annotations

import glob
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from psdnet_qgis.engine.batch.jobs import Job
from psdnet_qgis.errors import EXIT_FAILED, PSDNetError, PSDNetInputError, one_line

logger = logging.getLogger("psdnet_qgis.engine.batch")

#: Retries of a scene whose task raised an unexpected error (not a PSDNetError, which names a
#: problem of the scene's input, output or machine and would fail again). ``EXIT_FAILED``
#: (errors.py) is the exit status when at least one scene failed. A dead worker is handled by the scheduler.
RETRIES = 2
#: Peak memory of one worker running PSDNet on a large scene (docs/BENCHMARKS.md speed table: about
#: 1.2-1.3 GB at 10240 px, plus the interpreter, torch and GDAL's cache), for the default size.
WORKER_MEMORY_BYTES = 2 << 30
#: Seconds to wait for the first worker of an existing cluster.
WAIT_WORKERS_S = 60.0
#: Seconds to wait for a scheduler to answer.
CONNECT_TIMEOUT_S = 30.0


# --------------------------------------------------------------------------- worker side

#: Models loaded in this worker process, by (weights target, device): read, hash-checked and
#: built once, then reused by every later scene the worker runs.
_MODELS: dict[tuple[str, str], Any] = {}
_MODELS_LOCK = threading.Lock()


def partial_path(out: str) -> str:
    """A fresh temporary name for ``out`` in its own folder (same file system: atomic rename).

    Hidden, with the writing process id, so a file left by a killed run is recognisable
    and never mistaken for the output.
    """
    folder, name = os.path.split(out)
    stem, ext = os.path.splitext(name)
    return os.path.join(folder, f".{stem}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}{ext or '.tif'}")


def stale_partials(out: str) -> list[str]:
    """Temporary files (and their side-cars) of earlier attempts at ``out``."""
    folder, name = os.path.split(out)
    stem = os.path.splitext(name)[0]
    return sorted(glob.glob(os.path.join(glob.escape(folder), f".{glob.escape(stem)}.partial-*")))


def complete_output(out: str) -> tuple[int, int] | None:
    """(width, height) when ``out`` is a complete output, else None.

    Complete = the final name exists (only ever produced by the rename of a finished file)
    and GDAL opens it and decodes its last block (a truncated copy fails there).
    """
    if not os.path.isfile(out):
        return None
    from osgeo import gdal

    from psdnet_qgis.engine.gdalerr import gdal_errors

    try:
        with gdal_errors(None):
            ds = gdal.Open(out)
            if ds is None or ds.RasterCount < 1:
                return None
            w, h = ds.RasterXSize, ds.RasterYSize
            ds.GetRasterBand(ds.RasterCount).ReadRaster(w - 1, h - 1, 1, 1)
            ds = None
    except RuntimeError:
        return None
    return int(w), int(h)


def _threads_for_scene(threads: int | None) -> int:
    """Torch/OpenMP threads of a scene on this worker.

    The client's ``threads_per_worker`` when given; else the worker's ``PSDNET_THREADS`` or
    ``OMP_NUM_THREADS`` (dask's nanny sets 1 by default), else the cores shared by the
    worker's dask threads.
    """
    if threads:
        return max(1, int(threads))
    for var in ("PSDNET_THREADS", "OMP_NUM_THREADS"):
        try:
            return max(1, int(os.environ.get(var, "")))
        except ValueError:
            continue
    slots = 1
    try:
        from distributed import get_worker

        slots = max(1, int(get_worker().state.nthreads))
    except (ImportError, ValueError, AttributeError):
        pass
    return max(1, _cores() // slots)


def _worker_model(model: Any, job: Job, device: str) -> tuple[Any, bool]:
    """The PSDNet module of ``job`` from this worker's cache (loaded on first use).

    Returns the module (carrying its metadata as ``psdnet_meta``, read by the engine's
    model resolution) and whether it was already loaded.
    """
    from psdnet_qgis.core import registry

    if model in (None, "", *registry.AUTO_CHOICES):
        from psdnet_qgis.engine import mixed, raster
        from psdnet_qgis.engine.gdalerr import gdal_errors
        from psdnet_qgis.engine.msbands import identify
        from psdnet_qgis.engine.sensor import choose_sensor

        with gdal_errors():
            inputs = raster.open_inputs(job.pan, job.ms, int(job.options.get("pan_band", 1)))
            try:  # the run's own choice (engine.fusion.resolve_model): by band names and ratio
                label = choose_sensor(job.options.get("sensor", "auto"), inputs).label
                known = identify(inputs.descriptions, inputs.bands, inputs.ms_path, label)
                chosen = job.options.get("model_bands")
                info = mixed.auto_model(inputs.bands, inputs.ratio, known, chosen, model == "auto_fast")
                if info is None:
                    raise PSDNetInputError(mixed.no_model_message(inputs.bands, inputs.ratio, known, inputs.ms_path))
            finally:
                inputs.close()
        target = str(info.path or info.name)
        source: str | registry.ModelInfo = info  # loaded as found: the registry is not read again
    else:
        target = source = os.fspath(model)
    key = (target, str(device))
    with _MODELS_LOCK:
        net = _MODELS.get(key)
        if net is not None:
            return net, True
        from psdnet_qgis.model.weights import load_model

        net, meta = load_model(source)
        net.psdnet_meta = meta  # type: ignore[assignment]  # torch types unknown module attributes as Tensor | Module
        _MODELS[key] = net
        return net, False


def _report_dict(report: Any) -> dict:
    """pansharpen()'s report as a plain dict (a report object with ``to_dict()`` or a dict)."""
    to_dict = getattr(report, "to_dict", None)
    return dict(to_dict()) if callable(to_dict) else dict(report)


def _fsync(path: str) -> None:
    """Data on disk before the rename makes it final (a power cut must not leave a hole)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _finish(partial: str, out: str) -> None:
    """Move a finished ``partial`` and its side-cars to ``out``, the raster itself last."""
    from psdnet_qgis.engine.output import output_paths, remove_output

    remove_output(out)  # stale side-cars of an older output must not describe the new one
    for src, dst in list(zip(output_paths(partial), output_paths(out), strict=True))[::-1]:
        if os.path.exists(src):
            _fsync(src)
            os.replace(src, dst)


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def run_job(job: Job, threads: int | None = None) -> dict:
    """Run one scene on a worker: skip it when complete, else pansharpen it atomically.

    Args:
        job: the scene.
        threads: torch/OpenMP threads for the scene (None: the worker's setting,
            see :func:`_threads_for_scene`).

    Returns:
        Result dict: line, pan, ms, out, status ("done" | "skipped" | "failed"), seconds,
        mpx (output megapixels), message, worker, pid, model_reused, report (done only).
        Input errors are returned as "failed"; any other exception propagates, so that
        dask retries the scene.
    """
    t0 = time.perf_counter()
    result: dict[str, Any] = {
        "line": job.line, "pan": job.pan, "ms": job.ms, "out": job.out, "status": "done",
        "seconds": 0.0, "mpx": None, "message": "", "worker": _worker_name(), "pid": os.getpid(),
        "model_reused": None, "report": None,
    }
    done = complete_output(job.out)
    if done is not None:
        result.update(status="skipped", mpx=round(done[0] * done[1] / 1e6, 4),
                      message="complete output exists")
        return result
    from psdnet_qgis.engine.output import check_output, remove_output
    from psdnet_qgis.engine.run import pansharpen

    options = dict(job.options)
    partial = ""
    try:
        check_output(job.out, [job.pan, job.ms])  # the final name's checks (is an input, read-only)
        for stale in stale_partials(job.out):
            remove_output(stale)
        n = _threads_for_scene(threads)
        os.environ["PSDNET_THREADS"] = str(n)  # the engine's predictor sets torch's pool from it
        if options.get("method", "psdnet") == "psdnet":
            import psdnet_qgis.model  # noqa: F401, I001  (before torch: its allocator settings)
            import torch

            torch.set_num_threads(n)
            net, reused = _worker_model(options.get("model", "auto"), job, str(options.get("device", "auto")))
            options["model"] = net
            result["model_reused"] = reused
        partial = partial_path(job.out)
        report = _report_dict(pansharpen(job.pan, job.ms, partial, **options))
        _finish(partial, job.out)
    except PSDNetError as err:
        if partial:
            remove_output(partial)
        result.update(status="failed", message=one_line(err),
                      seconds=round(time.perf_counter() - t0, 3))
        return result
    except BaseException:
        if partial:
            remove_output(partial)
        raise
    report["out"] = job.out
    result.update(seconds=round(time.perf_counter() - t0, 3), report=report,
                  mpx=round(int(report["width"]) * int(report["height"]) / 1e6, 4))
    return result


def _probe_worker() -> dict:
    """Run on every worker of an existing cluster before any scene: importable, and its cores."""
    import psdnet_qgis.engine.run  # noqa: F401 - the import is the check

    return {"pid": os.getpid(), "cores": _cores()}


# --------------------------------------------------------------------------- client side

def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _memory_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return None


def plan_local(workers: int | None, threads: int | None, cores: int, memory: int | None) -> tuple[int, int]:
    """(workers, threads per worker) of the local cluster; their product is at most ``cores``.

    Without flags: as many single-thread workers as cores, fewer when memory holds fewer
    (:data:`WORKER_MEMORY_BYTES` each), their threads then sharing the remaining cores. On
    CPUs, whole scenes in parallel scale better than one scene's tiles on several threads.
    Flags that ask for more than the cores are kept (the caller warns).
    """
    by_memory = max(1, memory // WORKER_MEMORY_BYTES) if memory else cores
    if workers and threads:
        return int(workers), int(threads)
    if workers:
        return int(workers), max(1, cores // int(workers))
    if threads:
        return max(1, min(cores // int(threads), by_memory)), int(threads)
    w = max(1, min(cores, by_memory))
    return w, max(1, cores // w)


@dataclass
class BatchSummary:
    """What a batch did: one result dict per scene (see :func:`run_job`), in CSV order."""

    results: list[dict]
    seconds: float
    scheduler: str
    workers: int
    threads_per_worker: int | None
    dashboard: str | None = None

    def _with(self, status: str) -> list[dict]:
        return [r for r in self.results if r["status"] == status]

    @property
    def done(self) -> list[dict]:
        return self._with("done")

    @property
    def skipped(self) -> list[dict]:
        return self._with("skipped")

    @property
    def failed(self) -> list[dict]:
        return self._with("failed")

    @property
    def exit_code(self) -> int:
        """0 when every scene is done or skipped, :data:`EXIT_FAILED` otherwise."""
        return EXIT_FAILED if self.failed else 0

    def to_dict(self) -> dict:
        """JSON-ready summary: counts, throughput of the scenes done, and every scene."""
        mpx = sum(r["mpx"] or 0.0 for r in self.done)
        s = self.seconds
        return {
            "scenes": len(self.results), "done": len(self.done), "skipped": len(self.skipped),
            "failed": len(self.failed), "seconds": round(s, 3), "output_mpx": round(mpx, 4),
            "mpx_per_s": round(mpx / s, 4) if s > 0 else None,
            "scenes_per_hour": round(3600 * len(self.done) / s, 1) if s > 0 else None,
            "scheduler": self.scheduler, "workers": self.workers,
            "threads_per_worker": self.threads_per_worker, "dashboard": self.dashboard,
            "results": self.results,
        }

    def table(self) -> str:
        """Plain-text table of the scenes, then one line of totals."""
        lines = [f"{'status':<8} {'seconds':>8} {'MPx':>8}  output / message"]
        for r in self.results:
            mpx = f"{r['mpx']:.2f}" if r["mpx"] is not None else "-"
            text = r["out"] + (f": {r['message']}" if r["message"] else "")
            lines.append(f"{r['status']:<8} {r['seconds']:>8.1f} {mpx:>8}  {text}")
        d = self.to_dict()
        lines.append(
            f"{d['done']} done, {d['skipped']} skipped, {d['failed']} failed in {d['seconds']:.1f} s "
            f"on {self.workers} worker(s) ({self.scheduler}); {d['output_mpx']:.2f} MPx written"
            + (f", {d['mpx_per_s']:.3f} MPx/s, {d['scenes_per_hour']:.0f} scenes/h" if d["done"] else "")
        )
        return "\n".join(lines)


def _failure(job: Job, message: str) -> dict:
    return {"line": job.line, "pan": job.pan, "ms": job.ms, "out": job.out, "status": "failed",
            "seconds": 0.0, "mpx": None, "message": message, "worker": None, "pid": None,
            "model_reused": None, "report": None}


def _connect(address: str) -> Any:
    from distributed import Client

    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as exc:
        raise PSDNetInputError(
            f"Scheduler '{address}' cannot be reached ({' '.join(str(exc).split())[:200]}); start it with "
            "`dask scheduler` and give its tcp://host:port address."
        ) from None


def _check_workers(client: Any, address: str) -> int:
    """Wait for an existing cluster's workers and check they can import the project."""
    try:
        client.wait_for_workers(1, timeout=WAIT_WORKERS_S)
    except (TimeoutError, OSError):
        raise PSDNetInputError(
            f"Scheduler '{address}' has no worker after {WAIT_WORKERS_S:.0f} s; start some with "
            f"`dask worker {address} --nthreads 1` from the project root."
        ) from None
    probes = client.run(_probe_worker, on_error="return")
    bad = {w: r for w, r in probes.items() if isinstance(r, BaseException)}
    if bad:
        r = next(iter(bad.values()))
        raise PSDNetInputError(
            f"Worker(s) {', '.join(sorted(bad))} of '{address}' cannot import psdnet_qgis ({type(r).__name__}: "
            f"{r}); start them from the project root with PYTHONPATH=. or install the plugin there."
        )
    return len(probes)


def _dashboard(client: Any, local: bool) -> str | None:
    """The scheduler's dashboard address; None when it has none (a local one needs bokeh)."""
    if local:
        import importlib.util

        if importlib.util.find_spec("bokeh") is None:  # the HTTP server then serves no pages
            return None
    try:
        info = client.scheduler_info()
        return str(client.dashboard_link) if info.get("services", {}).get("dashboard") else None
    except Exception:  # noqa: BLE001 - the address is only printed
        return None



@dataclass(frozen=True)
class _Connection:
    """A client on the cluster the scenes run on, and what the summary says about it."""

    client: Any
    workers: int
    threads: int | None
    where: str
    local: bool


def _local_cluster(workers: int | None, threads_per_worker: int | None,
                   say: Callable[[str], Any]) -> tuple[Any, int, int]:
    """A started LocalCluster of :func:`plan_local` size, its workers and their threads."""
    from distributed import LocalCluster

    cores = _cores()
    n_workers, threads = plan_local(workers, threads_per_worker, cores, _memory_bytes())
    if n_workers * threads > cores:
        say(f"warning: {n_workers} workers x {threads} threads > {cores} cores: they will compete.")
    # Thread settings reach the worker process before torch or numpy is imported there.
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads), "PSDNET_THREADS": str(threads)}
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address="127.0.0.1:0",
                           silence_logs=logging.ERROR, env=env)
    return cluster, n_workers, threads


@contextmanager
def _connected(scheduler: str | None, workers: int | None, threads_per_worker: int | None,
               say: Callable[[str], Any]) -> Iterator[_Connection]:
    """Connect to ``scheduler``, or start a local cluster; closed again however the run ends.

    A local cluster is stopped with its client (its workers would otherwise outlive the
    command); an existing cluster is only disconnected from.
    """
    cluster = client = None
    try:
        if scheduler:
            client = _connect(scheduler)
            yield _Connection(client, _check_workers(client, scheduler), threads_per_worker, scheduler, local=False)
        else:
            cluster, n_workers, threads = _local_cluster(workers, threads_per_worker, say)
            from distributed import Client

            client = Client(cluster)
            yield _Connection(client, n_workers, threads, f"local cluster {cluster.scheduler_address}", local=True)
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


def _submit(client: Any, jobs: Sequence[Job], threads: int | None, retries: int, futures: dict[Any, int]) -> None:
    """One task per job into ``futures`` (future -> job index), filled as they are submitted.

    Filled in place so that the caller can cancel what was submitted even if a later
    submission fails. Keys name the scene (readable on the dashboard) and carry a token of
    this run, so two runs on one cluster never share a task.
    """
    token = uuid.uuid4().hex[:8]
    for i, job in enumerate(jobs):
        stem = os.path.splitext(os.path.basename(job.out))[0]
        fut = client.submit(run_job, job, threads, key=f"psdnet-{token}-{i:05d}-{stem}",
                            retries=retries, pure=False)
        futures[fut] = i


def _outcome(fut: Any, job: Job) -> dict:
    """The result dict of a finished task; a task that raised becomes a "failed" scene."""
    try:
        return fut.result()
    except Exception as exc:  # noqa: BLE001 - reported per scene, the others go on
        name = type(exc).__name__
        if name == "KilledWorker":
            msg = ("the workers running it died repeatedly (out of memory? see the worker logs); "
                   "rerun it alone or with fewer workers")
        else:
            msg = f"{name}: {' '.join(str(exc).split())}"
        return _failure(job, msg)


def _gather(jobs: Sequence[Job], futures: dict[Any, int], progress: bool, say: Callable[[str], Any]) -> list[dict]:
    """The scenes' results in CSV order, taken as they complete (a tqdm bar over scenes)."""
    from distributed import as_completed
    from tqdm import tqdm

    results: dict[int, dict] = {}
    bar = tqdm(total=len(jobs), desc="scenes", unit="scene", file=sys.stderr, disable=not progress)
    try:
        for fut in as_completed(list(futures)):
            i = futures[fut]
            res = _outcome(fut, jobs[i])
            results[i] = res
            if res["status"] != "done":
                say(f"{res['status']}: {jobs[i].out}: {res['message']}")
            bar.update(1)
    finally:
        bar.close()
    return [results[i] for i in range(len(jobs))]


def run_batch(
    jobs: Sequence[Job],
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    retries: int = RETRIES,
    progress: bool = True,
    log: Callable[[str], Any] | None = None,
) -> BatchSummary:
    """Run ``jobs`` on a local cluster (default) or on the cluster at ``scheduler``.

    Args:
        jobs: scenes (:func:`engine.batch.jobs.read_jobs`).
        scheduler: ``tcp://host:port`` of a running ``dask scheduler``; None: a
            :class:`distributed.LocalCluster` of :func:`plan_local` size on 127.0.0.1.
        workers: local cluster only: worker processes.
        threads_per_worker: torch/OpenMP threads of each scene (local default: see
            :func:`plan_local`; existing cluster default: each worker's own setting).
        retries: retries of a scene after an unexpected error (not after bad input).
        progress: show a tqdm bar over scenes on stderr.
        log: where status lines go (default: logging).

    Returns:
        The summary; its ``exit_code`` is non-zero when a scene failed.

    Raises:
        PSDNetInputError: the scheduler cannot be reached, has no usable worker.
        KeyboardInterrupt: after cancelling the scenes and stopping a local cluster.

    The local cluster starts its workers with multiprocessing's "spawn": a script that calls
    this function must do so under ``if __name__ == "__main__":``.
    """
    say = log or logger.info
    t0 = time.perf_counter()
    futures: dict[Any, int] = {}
    with _connected(scheduler, workers, threads_per_worker, say) as conn:
        try:
            dashboard = _dashboard(conn.client, local=conn.local)
            say(f"{len(jobs)} scenes on {conn.workers} worker(s) x "
                f"{conn.threads if conn.threads else 'their own'} thread(s) ({conn.where})")
            if dashboard:
                say(f"dashboard: {dashboard}")
            _submit(conn.client, jobs, conn.threads, retries, futures)
            results = _gather(jobs, futures, progress, say)
            return BatchSummary(results=results, seconds=time.perf_counter() - t0, scheduler=conn.where,
                                workers=conn.workers, threads_per_worker=conn.threads, dashboard=dashboard)
        finally:
            pending = [f for f in futures if not f.done()]
            if pending:  # Ctrl-C or an error: an existing cluster must not go on with them
                conn.client.cancel(pending)
