"""The ``batch`` subcommand of ``python -m psdnet_qgis``: its options and the run they start.

:func:`add_parser` is called by the CLI's parser for every command, so this module and those
it imports load the standard library only (the help's method list adds ``core.classical``);
dask comes in once a batch runs
(:func:`engine.batch.runner.run_batch`), never for ``--help`` or the single-scene command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from psdnet_qgis.core.options import DEVICES, PRECISIONS, run_methods
from psdnet_qgis.engine.batch.jobs import read_jobs
from psdnet_qgis.engine.batch.runner import RETRIES, run_batch
from psdnet_qgis.errors import EXIT_CANCELED, EXIT_INPUT, PSDNetError, PSDNetInputError, one_line


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
                    help=f"default method: {', '.join(run_methods())}")
    pb.add_argument("--model", default="auto", help="default model: auto | auto_fast | bundled name | weights path")
    pb.add_argument("--device", default="auto", choices=DEVICES)
    pb.add_argument("--tile", type=int, default=None, help="tile side in MS px")
    pb.add_argument("--overlap", type=int, default=None, help="tile overlap in MS px")
    pb.add_argument("--batch", type=int, default=None, help="tiles per model call")
    pb.add_argument("--precision", default="auto", choices=PRECISIONS)
    pb.add_argument("--pan-band", type=int, default=1, help="1-based PAN band")
    pb.add_argument("--float32", action="store_true", help="write float32 instead of the MS type")
    pb.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    pb.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    return pb


def run_cli(args: argparse.Namespace) -> int:
    """The ``batch`` subcommand; returns the exit status (errors.py: 0, ``EXIT_FAILED``, ``EXIT_INPUT``
    for a bad jobs file, flag or cluster, ``EXIT_CANCELED``)."""
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
    except PSDNetError as err:
        print("error: " + one_line(err), file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("cancelled: complete outputs are kept, a rerun does the rest", file=sys.stderr)
        return EXIT_CANCELED
    if args.json:
        print(json.dumps(summary.to_dict(), indent=1, default=str))
    else:
        print(summary.table())
    return summary.exit_code
