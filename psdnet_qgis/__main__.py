"""Headless command line: ``python -m psdnet_qgis pansharpen PAN MS OUT [options]``.

Scene adaptation: ``pansharpen ... --adapt-seconds S``, or ``python -m psdnet_qgis adapt PAN MS
OUT.pt`` to save the adapted weights for ``--model OUT.pt``.

Many scenes: ``python -m psdnet_qgis batch JOBS.csv --out-dir DIR`` (``engine.batch``, dask).

Set-up: ``python -m psdnet_qgis doctor`` prints the diagnostics (the plugin's "About /
diagnostics" text); ``python -m psdnet_qgis install-torch [--variant cpu]`` installs PyTorch
into the managed folder of the default QGIS profile (``deps.installer``, as
``psdnet:install_pytorch``). Both take ``--target DIR`` for another folder.

Same engine as the QGIS algorithms (``engine.run.pansharpen``); bad input prints one line
on stderr and exits with code 2 (no traceback; any ``errors.PSDNetError``: input, output,
resources); Ctrl-C removes the partial output and exits 130.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from psdnet_qgis.core.options import (
    ADAPT_LOSSES,
    ADAPT_PARTS,
    DEVICES,
    OTHER_METHODS,
    PRECISIONS,
    TORCH_VARIANTS,
    AdaptOptions,
    run_methods,
)
from psdnet_qgis.errors import EXIT_CANCELED, EXIT_INPUT


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m psdnet_qgis",
                                description="PSDNet pansharpening without QGIS.")
    sub = p.add_subparsers(dest="command", required=True)

    ps = sub.add_parser("pansharpen", help="fuse a PAN and an MS raster into a pansharpened GeoTIFF")
    ps.add_argument("pan", help="panchromatic raster")
    ps.add_argument("ms", help="multispectral raster (any grid/CRS overlapping PAN)")
    ps.add_argument("out", help="output GeoTIFF (PAN grid over the PAN/MS intersection)")
    ps.add_argument("--method", default="psdnet",
                    choices=run_methods(),
                    help="psdnet (default) or a classical method")
    ps.add_argument("--sensor", default="auto",
                    help="MTF gains of the MTF-based steps: auto (default: the metadata, else the "
                         "documented defaults), unknown, or a sensor: QuickBird, IKONOS, GeoEye-1, "
                         "WorldView-2, WorldView-3, Pleiades, 'Landsat 8/9 OLI' (any spelling: wv3, LANDSAT_8)")
    ps.add_argument("--model", default="auto",
                    help="auto | auto_fast | bundled model name (e.g. psdnet_vhr4_fast) | weights path; "
                         "auto_fast and *_fast pick PSDNet-Fast: several times less CPU time, "
                         "slightly lower quality (model card)")
    ps.add_argument("--device", default="auto", choices=DEVICES)
    ps.add_argument("--tile", type=int, default=None, help="tile side in MS px (default: ratio-based)")
    ps.add_argument("--overlap", type=int, default=None, help="tile overlap in MS px")
    ps.add_argument("--batch", type=int, default=None, help="tiles per model call")
    ps.add_argument("--precision", default="auto", choices=PRECISIONS,
                    help="PSDNet arithmetic (auto: bf16 where the hardware has it)")
    ps.add_argument("--pan-band", type=int, default=1, help="1-based PAN band (multi-band PAN)")
    ps.add_argument("--model-bands", default=None, metavar="B,G,R,N",
                    help="MS with more bands than the model (8-band WorldView, Landsat bands 1-7): the "
                         "1-based MS bands the network takes, in the model's band order, e.g. 2,3,5,7 "
                         "(default: from the band descriptions or, for Landsat, the band numbers of the "
                         "descriptions or of a VRT's source files, else the WorldView 8-band order; "
                         "checked on the pixels)")
    ps.add_argument("--other-bands-method", default="mtf_glp_fs",
                    choices=OTHER_METHODS,
                    help="classical method of the MS bands the model does not know (default mtf_glp_fs)")
    ps.add_argument("--no-calibrate", dest="calibrate", action="store_false",
                    help="PSDNet: skip the per-scene calibration (the network's, MTF-GLP-FS's, MTF-GLP-HPM's and "
                         "GSA's detail weighted per band on the scene degraded by the ratio) and write the network's "
                         "output as it comes")
    ps.add_argument("--float32", action="store_true", help="write float32 instead of the MS type")
    ps.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    ps.add_argument("--json", action="store_true", help="print the run report as JSON on stdout")
    ps.add_argument("--adapt-seconds", type=float, default=0.0,
                    help="PSDNet, experimental: seconds of unsupervised fine-tuning on this scene before "
                         "fusing (0 = off; the adapted copy is used only if held-out crops improve and no "
                         "metric of the calibrated result gets worse on windows spread over the whole scene; "
                         "rarely helps)")

    pa = sub.add_parser("adapt", help="adapt a model to a scene and write the adapted weights (.pt + .json)")
    pa.add_argument("pan", help="panchromatic raster")
    pa.add_argument("ms", help="multispectral raster")
    pa.add_argument("out", help="adapted weights, ending in .pt (the .json sidecar goes beside it)")
    pa.add_argument("--model", default="auto", help="auto | bundled model name | weights path")
    pa.add_argument("--seconds", type=float, default=120.0, help="adaptation budget (default 120)")
    pa.add_argument("--sensor", default="auto", help="MTF gains of the losses (as for pansharpen)")
    pa.add_argument("--losses", default=ADAPT_LOSSES[0], choices=ADAPT_LOSSES,
                    help="full-resolution no-reference losses, reduced-resolution pairs, or both")
    pa.add_argument("--part", default=ADAPT_PARTS[0], choices=ADAPT_PARTS, help="weights adapted")
    pa.add_argument("--max-steps", type=int, default=None,
                    help="stop after this many steps (default: the budget decides; a fixed count makes the "
                         "adapted weights independent of the machine's speed)")
    pa.add_argument("--pan-band", type=int, default=1, help="1-based PAN band (multi-band PAN)")
    pa.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    pa.add_argument("--json", action="store_true", help="print the written metadata as JSON on stdout")

    sub.add_parser("models", help="list the bundled models")

    pd = sub.add_parser("doctor", help="print versions, PyTorch location, device, precision and bundled models")
    pd.add_argument("--target", default=None,
                    help="managed PyTorch folder (default: the default QGIS profile's, or $PSDNET_DEPS_DIR)")
    pi = sub.add_parser("install-torch", help="install PyTorch into the managed folder (as psdnet:install_pytorch)")
    pi.add_argument("--target", default=None, help="managed folder (default: as for doctor)")
    pi.add_argument("--variant", default="auto", choices=TORCH_VARIANTS,
                    help="auto (CUDA when nvidia-smi lists a GPU, else CPU), cpu or cuda")
    pi.add_argument("--find-links", default=None, help="a local folder of wheels (pip --find-links)")
    pi.add_argument("--index-url", default=None, help="an index replacing PyTorch's wheel index")
    pi.add_argument("--offline", action="store_true", help="local wheels only (pip --no-index)")
    pi.add_argument("--spec", default="torch", help="requirement, e.g. torch==2.13.0+cpu")
    pi.add_argument("--uninstall", action="store_true", help="remove the managed folder instead")

    from psdnet_qgis.engine.batch import cli as batch_cli  # stdlib only at import; dask only when a batch runs

    batch_cli.add_parser(sub)
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


def _managed_target(target: str | None):
    from pathlib import Path

    from psdnet_qgis.deps.paths import default_profile_dir, managed_dir

    return Path(target).expanduser() if target else managed_dir(default_profile_dir())


def _doctor(args: argparse.Namespace) -> int:
    from psdnet_qgis.deps.doctor import diagnostics_text

    print(diagnostics_text(target=_managed_target(args.target)))
    return 0


class _LineFeedback:
    """pip's lines on stderr, progress as ``[ 60%]`` prefixes (QGIS's Python may lack tqdm)."""

    def __init__(self) -> None:
        self.percent = 0.0

    def info(self, msg: str) -> None:
        print(f"[{self.percent:3.0f}%] {msg}", file=sys.stderr, flush=True)

    def progress(self, percent: float) -> None:
        self.percent = percent

    def is_canceled(self) -> bool:
        return False  # Ctrl-C / SIGTERM raise KeyboardInterrupt, which stops pip too


def _install_torch(args: argparse.Namespace) -> int:
    from psdnet_qgis.deps import installer

    target = _managed_target(args.target)
    fb = _LineFeedback()
    if args.uninstall:
        installer.uninstall(target, fb)
        return 0
    result = installer.install(installer.InstallOptions(
        target=target, variant=args.variant, find_links=args.find_links, index_url=args.index_url,
        offline=args.offline, spec=args.spec), fb)
    print(result.summary())
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
            precision=args.precision, sensor=args.sensor, adapt_seconds=args.adapt_seconds,
            model_bands=args.model_bands, other_method=args.other_bands_method, calibrate=args.calibrate,
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


def _adapt(args: argparse.Namespace) -> int:
    from psdnet_qgis.engine.adapt_scene import adapt_scene
    from psdnet_qgis.engine.feedback import TqdmFeedback

    options = AdaptOptions(losses=args.losses, part=args.part, max_steps=args.max_steps)
    fb = TqdmFeedback(quiet=args.quiet)
    try:
        meta = adapt_scene(args.pan, args.ms, args.out, model=args.model, seconds=args.seconds,
                           sensor=args.sensor, pan_band=args.pan_band, feedback=fb, adapt_options=options)
    finally:
        fb.close()
    if args.json:
        print(json.dumps(meta, indent=1, default=str))
    elif not args.quiet:
        print(f"{args.out}: {meta['description']}, sha256 {meta['sha256']}")
    return 0


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the process exit code."""
    from psdnet_qgis.deps.paths import activate
    from psdnet_qgis.errors import PSDNetCanceled, PSDNetError, one_line

    args = _parser().parse_args(argv)
    if args.command != "install-torch" and not getattr(args, "target", None):
        activate(_managed_target(None))  # a PyTorch installed by the plugin's installer is found
    # SIGTERM (kill, timeout, a scheduler) unwinds like Ctrl-C, so the partial output is removed
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        if args.command == "models":
            return _models()
        if args.command == "doctor":
            return _doctor(args)
        if args.command == "install-torch":
            return _install_torch(args)
        if args.command == "batch":
            from psdnet_qgis.engine.batch.cli import run_cli

            return run_cli(args)
        if args.command == "adapt":
            return _adapt(args)
        return _pansharpen(args)
    except PSDNetError as err:
        print("error: " + one_line(err), file=sys.stderr)
        return EXIT_INPUT
    except (PSDNetCanceled, KeyboardInterrupt):
        print("cancelled: the partial output was removed", file=sys.stderr)
        return EXIT_CANCELED


if __name__ == "__main__":
    sys.exit(main())
