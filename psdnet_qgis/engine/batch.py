"""Many scenes through dask.distributed: ``python -m psdnet_qgis batch JOBS.csv --out-dir DIR``.

One dask task per scene, each through the one engine path (:func:`engine.run.pansharpen`,
the same call and options as the single-scene command). Without a scheduler address the
scenes run on a :class:`distributed.LocalCluster` sized to the machine; with
``--scheduler tcp://host:port`` the very same tasks go to an existing cluster (``dask
scheduler`` + ``dask worker``), whose workers must see the input and output paths.

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

import argparse
import csv
import glob
import inspect
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from psdnet_qgis.errors import PSDNetInputError

logger = logging.getLogger("psdnet_qgis.engine.batch")

#: Exit status when at least one scene failed (bad CSV or cluster: 2, like bad input).
EXIT_FAILED = 1
EXIT_INPUT = 2
EXIT_CANCELED = 130
#: Retries of a scene whose task raised an unexpected error (not a PSDNetInputError, which
#: is the input's fault and would fail again). A dead worker is handled by the scheduler.
RETRIES = 2
#: Peak memory of one worker running PSDNet on a large scene (README speed table: about
#: 1.2-1.3 GB at 10240 px, plus the interpreter, torch and GDAL's cache), for the default size.
WORKER_MEMORY_BYTES = 2 << 30
#: Seconds to wait for the first worker of an existing cluster.
WAIT_WORKERS_S = 60.0
#: Seconds to wait for a scheduler to answer.
CONNECT_TIMEOUT_S = 30.0

#: Columns of the jobs CSV besides pan, ms and out, and the pansharpen() keyword of each.
OPTION_COLUMNS = {
    "method": "method", "model": "model", "pan_band": "pan_band", "tile": "tile",
    "overlap": "overlap", "batch": "batch_size", "precision": "precision", "float32": "out_dtype",
    "sensor": "sensor", "adapt_seconds": "adapt_seconds",
    # 8-band MS with a 4-band model (engine.mixed): "2;3;5;7" (or "2,3,5,7" quoted) and the method
    "model_bands": "model_bands", "other_method": "other_method",
}
PATH_COLUMNS = ("pan", "ms", "out")
_TRUE, _FALSE = {"1", "true", "yes", "y"}, {"0", "false", "no", "n"}


@dataclass(frozen=True)
class Job:
    """One scene of the jobs file.

    Attributes:
        line: line of the jobs file (for messages).
        pan, ms: absolute input paths.
        out: absolute final output path.
        options: keyword arguments of :func:`engine.run.pansharpen` (method, model, ...).
    """

    line: int
    pan: str
    ms: str
    out: str
    options: dict = field(default_factory=dict)


def _column_name(name: str) -> str:
    return (name or "").strip().lower().replace("-", "_").replace(" ", "_")


def _engine_parameters() -> set[str]:
    from psdnet_qgis.engine.run import pansharpen

    return set(inspect.signature(pansharpen).parameters)


def _resolve(path: str, base: str) -> str:
    path = os.path.expanduser(path)
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(base, path))


def _is_model_path(value: str) -> bool:
    """A weights file rather than "auto" or a bundled model name."""
    return value.endswith((".pt", ".json")) or "/" in value or os.sep in value


def _convert(column: str, value: str, where: str, base: str) -> Any:
    """One CSV cell -> the pansharpen() value of its column (``where`` names the cell)."""
    if column in ("pan_band", "tile", "overlap", "batch"):
        try:
            n = int(value)
        except ValueError:
            raise PSDNetInputError(f"{where}: '{value}' is not a whole number; write e.g. 1.") from None
        if n < (1 if column in ("pan_band", "batch") else 0):
            raise PSDNetInputError(f"{where}: {n} is too small; give a positive number.")
        return n
    if column == "adapt_seconds":
        try:
            s = float(value)
        except ValueError:
            raise PSDNetInputError(f"{where}: '{value}' is not a number of seconds; write e.g. 30.") from None
        if s < 0:
            raise PSDNetInputError(f"{where}: {s} is negative; give 0 or more seconds.")
        return s
    if column == "float32":
        v = value.lower()
        if v not in _TRUE | _FALSE:
            raise PSDNetInputError(f"{where}: '{value}' is not yes/no; write 1 or 0.")
        return "float32" if v in _TRUE else None
    if column == "model" and _is_model_path(value):
        return _resolve(value, base)
    return value


def read_jobs(csv_path: str, out_dir: str, defaults: dict[str, Any] | None = None) -> list[Job]:
    """Parse the jobs CSV into :class:`Job` objects.

    The header names the columns (case and ``-``/``_`` do not matter): ``pan`` and ``ms``
    (required), ``out`` (default ``<out_dir>/<ms file stem>_<method>.tif``), and any of
    :data:`OPTION_COLUMNS`; an empty cell takes the value of ``defaults`` (the command-line
    flags). Relative paths are resolved against the CSV's folder.

    Args:
        csv_path: the jobs file.
        out_dir: folder of the outputs without an ``out`` cell.
        defaults: pansharpen() keyword defaults (method, model, device, tile, ...).

    Returns:
        The jobs, in file order.

    Raises:
        PSDNetInputError: missing or unreadable file, unknown or missing columns, a bad
            cell, two jobs with the same output (message names the line and the fix).
    """
    csv_path = os.path.abspath(csv_path)
    base = os.path.dirname(csv_path)
    from psdnet_qgis.engine.run import METHODS

    defaults = dict(defaults or {})
    defaults.setdefault("method", "psdnet")
    engine_params = _engine_parameters()
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            rows = [(reader.line_num, row) for row in reader]
    except OSError as exc:
        raise PSDNetInputError(f"Jobs file '{csv_path}' cannot be read ({exc.strerror}); check the path.") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise PSDNetInputError(f"Jobs file '{csv_path}' is not a UTF-8 CSV file ({exc}); save it as CSV.") from None
    rows = [(n, row) for n, row in rows if any(c.strip() for c in row)]
    if not rows:
        raise PSDNetInputError(f"Jobs file '{csv_path}' is empty; write a header line 'pan,ms' and one line per scene.")
    header = [_column_name(c) for c in rows[0][1]]
    known = set(PATH_COLUMNS) | set(OPTION_COLUMNS)
    unknown = [c for c in header if c not in known]
    if unknown:
        raise PSDNetInputError(
            f"Jobs file '{csv_path}': unknown column(s) {', '.join(repr(c) for c in unknown)}; "
            f"the columns are {', '.join(sorted(known))}."
        )
    missing = [c for c in ("pan", "ms") if c not in header]
    if missing:
        raise PSDNetInputError(
            f"Jobs file '{csv_path}': no {' or '.join(repr(c) for c in missing)} column; the header "
            "line needs at least 'pan,ms'."
        )
    jobs: list[Job] = []
    seen: dict[str, int] = {}
    for line, row in rows[1:]:
        if len(row) > len(header):
            raise PSDNetInputError(
                f"Jobs file '{csv_path}', line {line}: {len(row)} cells but {len(header)} columns; "
                "quote cells that contain commas."
            )
        cells = {c: v.strip() for c, v in zip(header, row, strict=False) if v.strip()}  # short rows: empty cells
        for c in ("pan", "ms"):
            if c not in cells:
                raise PSDNetInputError(
                    f"Jobs file '{csv_path}', line {line}: the '{c}' cell is empty; give a raster path.")
        options = {k: v for k, v in defaults.items() if v is not None}
        for column, value in cells.items():
            if column in PATH_COLUMNS:
                continue
            kw = OPTION_COLUMNS[column]
            if kw not in engine_params:
                raise PSDNetInputError(
                    f"Jobs file '{csv_path}', line {line}: column '{column}' is not an option of this "
                    "version's engine (pansharpen has no such setting); remove the column."
                )
            options[kw] = _convert(column, value, f"Jobs file '{csv_path}', line {line}, column '{column}'", base)
        if options["method"] not in METHODS:
            raise PSDNetInputError(
                f"Jobs file '{csv_path}', line {line}: method '{options['method']}' is unknown; use one "
                f"of {', '.join(METHODS)}."
            )
        pan, ms = _resolve(cells["pan"], base), _resolve(cells["ms"], base)
        if "out" in cells:
            out = _resolve(cells["out"], base)
        else:
            stem = os.path.splitext(os.path.basename(ms))[0]
            out = os.path.join(os.path.abspath(out_dir), f"{stem}_{options['method']}.tif")
        if out in (pan, ms):  # checked here: a complete "output" would otherwise be skipped
            raise PSDNetInputError(
                f"Jobs file '{csv_path}', line {line}: the output '{out}' is also an input; give another "
                "'out' cell."
            )
        if out in seen:
            raise PSDNetInputError(
                f"Jobs file '{csv_path}', lines {seen[out]} and {line} write the same output '{out}'; "
                "give one of them another 'out' cell."
            )
        seen[out] = line
        jobs.append(Job(line=line, pan=pan, ms=ms, out=out, options=options))
    if not jobs:
        raise PSDNetInputError(f"Jobs file '{csv_path}' has a header but no scene; add one line per scene.")
    return jobs


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
        from psdnet_qgis.engine import raster
        from psdnet_qgis.engine.gdalerr import gdal_errors

        with gdal_errors():
            inputs = raster.open_inputs(job.pan, job.ms, int(job.options.get("pan_band", 1)))
            try:
                info = registry.auto_select(inputs.bands, inputs.ratio, fast=model == "auto_fast")
            finally:
                inputs.close()
        target = str(getattr(info, "path", None) or info.name)
    else:
        target = os.fspath(model)
    key = (target, str(device))
    with _MODELS_LOCK:
        net = _MODELS.get(key)
        if net is not None:
            return net, True
        from psdnet_qgis.model.weights import load_model

        net, meta = load_model(target)
        net.psdnet_meta = dict(meta)
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
            import torch

            torch.set_num_threads(n)
            net, reused = _worker_model(options.get("model", "auto"), job, str(options.get("device", "auto")))
            options["model"] = net
            result["model_reused"] = reused
        partial = partial_path(job.out)
        report = _report_dict(pansharpen(job.pan, job.ms, partial, **options))
        _finish(partial, job.out)
    except PSDNetInputError as err:
        if partial:
            remove_output(partial)
        result.update(status="failed", message=" ".join(str(err).split()),
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
        jobs: scenes (:func:`read_jobs`).
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
    from distributed import LocalCluster, as_completed
    from tqdm import tqdm

    say = log or logger.info
    t0 = time.perf_counter()
    cluster = client = None
    bar = None
    results: dict[int, dict] = {}
    futures: dict[Any, int] = {}
    try:
        if scheduler:
            client = _connect(scheduler)
            n_workers = _check_workers(client, scheduler)
            threads = threads_per_worker
            where = scheduler
        else:
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
            from distributed import Client

            client = Client(cluster)
            where = f"local cluster {cluster.scheduler_address}"
        dashboard = _dashboard(client, local=cluster is not None)
        say(f"{len(jobs)} scenes on {n_workers} worker(s) x "
            f"{threads if threads else 'their own'} thread(s) ({where})")
        if dashboard:
            say(f"dashboard: {dashboard}")
        token = uuid.uuid4().hex[:8]
        for i, job in enumerate(jobs):
            stem = os.path.splitext(os.path.basename(job.out))[0]
            fut = client.submit(run_job, job, threads, key=f"psdnet-{token}-{i:05d}-{stem}",
                                retries=retries, pure=False)
            futures[fut] = i
        bar = tqdm(total=len(jobs), desc="scenes", unit="scene", file=sys.stderr, disable=not progress)
        for fut in as_completed(list(futures)):
            i = futures[fut]
            job = jobs[i]
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - reported per scene, the others go on
                name = type(exc).__name__
                if name == "KilledWorker":
                    msg = ("the workers running it died repeatedly (out of memory? see the worker logs); "
                           "rerun it alone or with fewer workers")
                else:
                    msg = f"{name}: {' '.join(str(exc).split())}"
                res = _failure(job, msg)
            results[i] = res
            if res["status"] != "done":
                say(f"{res['status']}: {job.out}: {res['message']}")
            bar.update(1)
        bar.close()
        return BatchSummary(results=[results[i] for i in range(len(jobs))],
                            seconds=time.perf_counter() - t0, scheduler=where, workers=n_workers,
                            threads_per_worker=threads, dashboard=dashboard)
    finally:
        if bar is not None:
            bar.close()
        if client is not None:
            pending = [f for f in futures if not f.done()]
            if pending:  # Ctrl-C or an error: an existing cluster must not go on with them
                client.cancel(pending)
            client.close()
        if cluster is not None:
            cluster.close()


# --------------------------------------------------------------------------- command line

def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``batch`` subcommand to the CLI's subparsers (dask is not imported here)."""
    pb = sub.add_parser(
        "batch", help="pansharpen many scenes listed in a CSV on a local or remote dask cluster",
        description="Scenes of JOBS.csv (header: pan,ms[,out,method,model,pan_band,tile,overlap,batch,"
                    "precision,float32]) through dask.distributed; empty cells take the flags' values.")
    pb.add_argument("jobs", help="CSV with one scene per line; relative paths are against its folder")
    pb.add_argument("--out-dir", required=True, help="folder of outputs without an 'out' cell (created)")
    pb.add_argument("--scheduler", default=None, help="tcp://host:port of a running `dask scheduler` "
                    "(default: a local cluster on this machine)")
    pb.add_argument("--workers", type=int, default=None, help="local cluster: worker processes")
    pb.add_argument("--threads-per-worker", type=int, default=None,
                    help="torch threads per scene (workers x threads <= cores by default)")
    pb.add_argument("--retries", type=int, default=RETRIES, help="retries after an unexpected error")
    pb.add_argument("--method", default="psdnet",
                    help="default method: psdnet, exp, brovey, gsa, mtf_glp_hpm, mtf_glp_fs, bdsd_pc")
    pb.add_argument("--model", default="auto", help="default model: auto | auto_fast | bundled name | weights path")
    pb.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    pb.add_argument("--tile", type=int, default=None, help="tile side in MS px")
    pb.add_argument("--overlap", type=int, default=None, help="tile overlap in MS px")
    pb.add_argument("--batch", type=int, default=None, help="tiles per model call")
    pb.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    pb.add_argument("--pan-band", type=int, default=1, help="1-based PAN band")
    pb.add_argument("--float32", action="store_true", help="write float32 instead of the MS type")
    pb.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    pb.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    return pb


def run_cli(args: argparse.Namespace) -> int:
    """The ``batch`` subcommand; returns the exit status (0, :data:`EXIT_FAILED`, 2 or 130)."""
    from tqdm import tqdm

    def say(msg: str) -> None:
        if not args.quiet:
            tqdm.write(msg, file=sys.stderr)

    try:
        if args.workers is not None and args.workers < 1:
            raise PSDNetInputError(f"--workers {args.workers}: give at least 1 worker.")
        if args.threads_per_worker is not None and args.threads_per_worker < 1:
            raise PSDNetInputError(f"--threads-per-worker {args.threads_per_worker}: give at least 1 thread.")
        if args.scheduler and args.workers:
            raise PSDNetInputError("--workers sizes the local cluster only; with --scheduler start "
                                   "the workers with `dask worker`.")
        try:
            os.makedirs(args.out_dir, exist_ok=True)
        except OSError as exc:
            raise PSDNetInputError(f"--out-dir '{args.out_dir}' cannot be created ({exc.strerror}); "
                                   "choose a folder you can write to.") from None
        defaults = {
            "method": args.method, "model": args.model, "device": args.device, "tile": args.tile,
            "overlap": args.overlap, "batch_size": args.batch, "precision": args.precision,
            "pan_band": args.pan_band, "out_dtype": "float32" if args.float32 else None,
        }
        jobs = read_jobs(args.jobs, args.out_dir, defaults)
        summary = run_batch(jobs, scheduler=args.scheduler, workers=args.workers,
                            threads_per_worker=args.threads_per_worker, retries=args.retries,
                            progress=not args.quiet, log=say)
    except PSDNetInputError as err:
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("cancelled: complete outputs are kept, a rerun does the rest", file=sys.stderr)
        return EXIT_CANCELED
    if args.json:
        print(json.dumps(summary.to_dict(), indent=1, default=str))
    else:
        print(summary.table())
    return summary.exit_code
