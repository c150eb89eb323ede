"""Headless command line: ``python -m psdnet_qgis pansharpen PAN MS OUT [options]``.

Many scenes: ``python -m psdnet_qgis batch JOBS.csv --out-dir DIR`` (``engine.batch``, dask).

Same engine as the QGIS algorithms (``engine.run.pansharpen``); bad input prints one line
on stderr and exits with code 2 (no traceback); Ctrl-C removes the partial output and exits 130.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

EXIT_INPUT = 2
EXIT_CANCELED = 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m psdnet_qgis",
                                description="PSDNet pansharpening without QGIS.")
    sub = p.add_subparsers(dest="command", required=True)

    ps = sub.add_parser("pansharpen", help="fuse a PAN and an MS raster into a pansharpened GeoTIFF")
    ps.add_argument("pan", help="panchromatic raster")
    ps.add_argument("ms", help="multispectral raster (any grid/CRS overlapping PAN)")
    ps.add_argument("out", help="output GeoTIFF (PAN grid over the PAN/MS intersection)")
    ps.add_argument("--method", default="psdnet",
                    choices=["psdnet", "exp", "brovey", "gsa", "mtf_glp_hpm"],
                    help="psdnet (default) or a classical method")
    ps.add_argument("--model", default="auto", help="auto | bundled model name | weights path")
    ps.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ps.add_argument("--tile", type=int, default=None, help="tile side in MS px (default: ratio-based)")
    ps.add_argument("--overlap", type=int, default=None, help="tile overlap in MS px")
    ps.add_argument("--batch", type=int, default=None, help="tiles per model call")
    ps.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                    help="PSDNet arithmetic (auto: bf16 where the hardware has it)")
    ps.add_argument("--pan-band", type=int, default=1, help="1-based PAN band (multi-band PAN)")
    ps.add_argument("--float32", action="store_true", help="write float32 instead of the MS type")
    ps.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    ps.add_argument("--json", action="store_true", help="print the run report as JSON on stdout")

    sub.add_parser("models", help="list the bundled models")

    from psdnet_qgis.engine import batch  # stdlib only at import; dask only when a batch runs

    batch.add_parser(sub)
    return p


def _models() -> int:
    from psdnet_qgis.core import registry

    models = registry.list_models()
    if not models:
        print("No bundled model found (resources/models/*.json).")
        return 0
    print(f"{'name':<28} {'bands':>5} {'ratio':>5}  band names")
    for m in models:
        names = ",".join(getattr(m, "band_names", None) or [])
        print(f"{m.name:<28} {m.bands:>5} {m.ratio:>5}  {names}")
    return 0


def _pansharpen(args: argparse.Namespace) -> int:
    from psdnet_qgis.engine.feedback import TqdmFeedback
    from psdnet_qgis.engine.run import pansharpen

    fb = TqdmFeedback(quiet=args.quiet)
    try:
        report = pansharpen(
            args.pan, args.ms, args.out, method=args.method, model=args.model, device=args.device,
            tile=args.tile, overlap=args.overlap, pan_band=args.pan_band,
            out_dtype="float32" if args.float32 else None, feedback=fb, batch_size=args.batch,
            precision=args.precision,
        )
    finally:
        fb.close()
    if args.json:
        print(json.dumps(report.to_dict(), indent=1, default=str))
    elif not args.quiet:
        print(f"{report.out}: {report.width} x {report.height} px, {report.bands} bands, "
              f"{report.method} ({report.model}) on {report.device}, "
              f"{report.tiles} tiles, {report.seconds} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the process exit code."""
    from psdnet_qgis.errors import PSDNetCanceled, PSDNetInputError

    args = _parser().parse_args(argv)
    try:
        if args.command == "models":
            return _models()
        if args.command == "batch":
            from psdnet_qgis.engine.batch import run_cli

            return run_cli(args)
        return _pansharpen(args)
    except PSDNetInputError as err:
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        return EXIT_INPUT
    except (PSDNetCanceled, KeyboardInterrupt):
        print("cancelled: the partial output was removed", file=sys.stderr)
        return EXIT_CANCELED


if __name__ == "__main__":
    sys.exit(main())
