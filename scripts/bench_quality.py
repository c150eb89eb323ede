#!/usr/bin/env python3
"""Quality benchmark of the bundled PSDNet models against classical pansharpening.

``make bench DATA=../shared/data`` runs ``python scripts/bench_quality.py --data DIR --out runs/bench``.

For each bundled model's validation scene (``training.scenes.MODEL_SCENES[...]["val"]``):

1. the scene is read aligned by georeference (``training.scenes.load_scene``) and cropped to
   its largest fully valid rectangle (whole MS pixels, a multiple of the ratio a side), so
   no method and no metric ever sees the no-data fill;
2. **reduced resolution (Wald)**: MS and PAN are low-passed with the sensor's MTF-matched
   filters and decimated by the ratio (``core.mtf.degrade``); the degraded pair is fused and
   the result compared with the original MS (Q2n, SAM, ERGAS, SCC);
3. **full resolution**: the real PAN and MS are fused; D_lambda, D_s, QNR, HQNR.

Every input is written as a georeferenced float32 GeoTIFF to a temporary folder and every
method runs on files, so the benchmark measures the product path: PSDNet and the classical
methods (EXP, Brovey, GSA, MTF-GLP-HPM, MTF-GLP-FS, BDSD-PC, with the scene's sensor MTF
gains) through ``engine.run.pansharpen`` (the same tiling, normalisation and writing the QGIS
algorithms use), GDAL's own weighted Brovey through
``gdal.CreatePansharpenedVRT`` (what QGIS's built-in Pansharpening runs), and, when
``otbcli_Pansharpening`` is on PATH, Orfeo ToolBox RCS / LMVM / Bayes (MS resampled to the
PAN grid first with ``otbcli_Superimpose``). All outputs are scored by ``engine.assess``.

Speed: seconds per output megapixel of the full-resolution run, wall clock, on whatever
this machine is (the engine's own timing for engine methods, which includes reading the
inputs and writing the compressed GeoTIFF; PSDNet's includes loading the weights).

The ``shanghai8`` row is the 8-band WorldView-3 scene, all bands at reduced resolution:
the classical methods, and ``psdnet:pansharpen`` as an analyst would run it on an 8-band MS
(the network on blue, green, red, NIR1, MTF-GLP-FS on the other four, ``engine.mixed``).

Outputs: a markdown table on stdout and in ``OUT/bench_quality.md``, everything in
``OUT/bench_quality.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from osgeo import gdal, osr  # noqa: E402

from psdnet_qgis.core import mtf  # noqa: E402
from psdnet_qgis.core.options import ADAPT_LOSSES, ADAPT_PARTS  # noqa: E402
from psdnet_qgis.engine.assess.pooling import FULL_KEYS, REDUCED_KEYS  # noqa: E402
from psdnet_qgis.engine.assess.quality import assess, valid_rectangle  # noqa: E402
from psdnet_qgis.training.scenes import MODEL_SCENES, SCENES, load_scene, scenes_for  # noqa: E402

gdal.UseExceptions()
LOG = logging.getLogger("bench_quality")

ENGINE_METHODS = (("EXP", "exp"), ("Brovey", "brovey"), ("GSA", "gsa"), ("MTF-GLP-HPM", "mtf_glp_hpm"),
                  ("MTF-GLP-FS", "mtf_glp_fs"), ("BDSD-PC", "bdsd_pc"))
#: Extra all-band rows: (row name, base scene of training.scenes.SCENES, 1-based MS bands, names).
#: No bundled model has 8 bands: PSDNet runs on the bands it knows, MTF-GLP-FS on the others.
ALL_BAND_ROWS = {
    "shanghai8": ("shanghai_wv3", (1, 2, 3, 4, 5, 6, 7, 8),
                  ("coastal", "blue", "green", "yellow", "red", "red edge", "nir1", "nir2")),
}
#: The bundled model that ``--scenes`` runs, by ratio.
SCENE_MODEL = {4: "vhr4", 2: "landsat3"}
OTB_METHODS = (("OTB RCS", "rcs"), ("OTB LMVM", "lmvm"), ("OTB Bayes", "bayes"))
COLUMNS = ("Q2n", "SAM", "ERGAS", "SCC", "D_lambda", "D_s", "QNR", "HQNR")


# ------------------------------------------------------------------------------ inputs
def _write(path: Path, data: np.ndarray, gt: tuple[float, ...], wkt: str) -> Path:
    """(C, H, W) float32 GeoTIFF."""
    c, h, w = data.shape
    ds = gdal.GetDriverByName("GTiff").Create(str(path), w, h, c, gdal.GDT_Float32)
    ds.SetGeoTransform(gt)
    if wkt:
        ds.SetProjection(wkt)
    for b in range(c):
        ds.GetRasterBand(b + 1).WriteArray(data[b].astype(np.float32))
    ds = None
    return path


def prepare_scene(model: str, data_dir: Path, tmp: Path, scene: str | None = None) -> dict[str, Any]:
    """Read the model's validation scene (or ``scene``, a ``SCENES`` name), crop it to valid
    data, write FR and RR inputs.

    Returns:
        dict with the scene spec, sizes and the paths ``fr_pan, fr_ms, rr_pan, rr_ms, rr_ref``.
    """
    if scene is not None:
        spec = SCENES[scene]
    elif model in ALL_BAND_ROWS:
        base, bands, names = ALL_BAND_ROWS[model]
        spec = replace(SCENES[base], name=f"{base}_{len(bands)}band", bands=bands, band_names=names)
    else:
        spec = scenes_for(model, "val")[0]
    scene = load_scene(spec, data_dir)
    r = spec.ratio
    c, h, w = scene.ms.shape
    valid = scene.ms_valid & scene.pan_valid.reshape(h, r, w, r).all(axis=(1, 3))
    rect = valid_rectangle(valid)
    if rect is None:
        raise SystemExit(f"{spec.name}: no valid pixel")
    a0, a1, b0, b1 = rect
    # a multiple of r MS px a side, so the reduced-resolution MS has whole pixels
    a1, b1 = a0 + (a1 - a0) // r * r, b0 + (b1 - b0) // r * r
    ms = scene.ms[:, a0:a1, b0:b1]
    pan = scene.pan[:, a0 * r:a1 * r, b0 * r:b1 * r]
    # MS grid of load_scene: rasterio affine (px, 0, x0, 0, -py, y0)
    A = scene.meta["ms_transform"]
    mpx, mpy = A[0], -A[4]
    x0, y0 = A[2] + b0 * mpx, A[5] - a0 * mpy
    wkt = ""  # scenes without georeferencing (grid="centres") stay in local pixel units
    if scene.meta["crs"]:
        srs = osr.SpatialReference()
        srs.SetFromUserInput(scene.meta["crs"])
        wkt = srs.ExportToWkt()
    gains = mtf.gnyq_for(spec.sensor, c)
    folder = tmp / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "fr_pan": _write(folder / "fr_pan.tif", pan, (x0, mpx / r, 0, y0, 0, -mpy / r), wkt),
        "fr_ms": _write(folder / "fr_ms.tif", ms, (x0, mpx, 0, y0, 0, -mpy), wkt),
        # Wald protocol: PAN to the MS scale, MS to MS/r, the original MS is the reference
        "rr_pan": _write(folder / "rr_pan.tif", mtf.degrade(pan, gains.pan, r), (x0, mpx, 0, y0, 0, -mpy), wkt),
        "rr_ms": _write(folder / "rr_ms.tif", mtf.degrade(ms, gains.ms, r),
                        (x0, mpx * r, 0, y0, 0, -mpy * r), wkt),
        "rr_ref": _write(folder / "rr_ref.tif", ms, (x0, mpx, 0, y0, 0, -mpy), wkt),
    }
    LOG.info("%s: valid crop MS %d x %d (of %d x %d), PAN %d x %d, ratio %d, sensor %s, gains %s",
             spec.name, ms.shape[2], ms.shape[1], w, h, pan.shape[2], pan.shape[1], r, spec.sensor,
             gains)
    return {"spec": spec, "ratio": r, "bands": c, "ms_size": (ms.shape[1], ms.shape[2]),
            "pan_size": (pan.shape[1], pan.shape[2]), "crop": (a0, a1, b0, b1), "full_size": (h, w),
            "gains": {"ms": list(gains.ms), "pan": gains.pan},
            "ms_resampled": scene.meta.get("ms_resampled"), "folder": folder, **paths}


# ------------------------------------------------------------------------------ methods
def run_engine(method: str, pan: Path, ms: Path, out: Path, model: str | None = None,
               sensor: str | None = None, adapt_seconds: float = 0.0,
               adaptations: list[dict[str, Any]] | None = None,
               adapt_options: dict[str, Any] | None = None, calibrate: bool = True,
               calibrations: list[dict[str, Any]] | None = None) -> float:
    """engine.run.pansharpen to a float32 GeoTIFF; returns the engine's seconds (adaptation
    included; its report is appended to ``adaptations``, the calibration's to ``calibrations``)."""
    from psdnet_qgis.engine.run import pansharpen

    kw: dict[str, Any] = {"method": method, "out_dtype": "float32", "sensor": sensor,
                          "adapt_seconds": adapt_seconds, "adapt_options": adapt_options,
                          "calibrate": calibrate}
    if model is not None:
        kw.update(model=model, device="cpu")
    rep = pansharpen(str(pan), str(ms), str(out), **kw)
    if adaptations is not None and rep.adaptation is not None:
        adaptations.append(rep.adaptation)
    if calibrations is not None and rep.calibration is not None:
        calibrations.append(rep.calibration)
    return float(rep.seconds)


def run_gdal_brovey(pan: Path, ms: Path, out: Path) -> float:
    """GDAL's weighted Brovey (default weights 1/C, cubic MS resampling) written as GeoTIFF."""
    t0 = time.perf_counter()
    pan_ds = gdal.Open(str(pan))
    ms_ds = gdal.Open(str(ms))
    c = ms_ds.RasterCount
    bands = "".join(f'<SpectralBand dstBand="{b}"></SpectralBand>' for b in range(1, c + 1))
    xml = (f'<VRTDataset subClass="VRTPansharpenedDataset"><PansharpeningOptions>'
           f"<Algorithm>WeightedBrovey</Algorithm><Resampling>Cubic</Resampling>"
           f"<NumThreads>1</NumThreads>{bands}</PansharpeningOptions></VRTDataset>")
    vrt = gdal.CreatePansharpenedVRT(xml, pan_ds.GetRasterBand(1),
                                     [ms_ds.GetRasterBand(b) for b in range(1, c + 1)])
    gdal.Translate(str(out), vrt, format="GTiff", outputType=gdal.GDT_Float32)
    vrt = None
    return time.perf_counter() - t0


def run_otb(method: str, pan: Path, ms: Path, out: Path) -> float:
    """OTB Pansharpening on the MS superimposed (bicubic) onto the PAN grid."""
    t0 = time.perf_counter()
    xs = out.with_name(out.stem + "_xs.tif")
    subprocess.run(["otbcli_Superimpose", "-inr", str(pan), "-inm", str(ms), "-out", str(xs), "float",
                    "-interpolator", "bco"], check=True, capture_output=True)
    subprocess.run(["otbcli_Pansharpening", "-inp", str(pan), "-inxs", str(xs), "-out", str(out), "float",
                    "-method", method], check=True, capture_output=True)
    return time.perf_counter() - t0


def bundled_model(model: str) -> tuple[str, str] | None:
    """(name, weights path) of the bundled model ``psdnet_<model>`` when its weights exist."""
    from psdnet_qgis.core.registry import list_models

    for info in list_models():
        if info.name == f"psdnet_{model}" or Path(info.file).stem == f"psdnet_{model}":
            if info.path and Path(info.path).exists():
                return info.name, str(info.path)
    return None


# ------------------------------------------------------------------------------ bench
def score_method(fn: Any, sc: dict[str, Any], slug: str) -> tuple[dict[str, Any], dict[str, Any], float]:
    """Run ``fn(pan, ms, out) -> seconds`` on a prepared scene (:func:`prepare_scene`) at reduced
    and full resolution and assess both outputs.

    Returns:
        (reduced-resolution assessment against the original MS, full-resolution assessment,
        seconds of the full-resolution run).
    """
    sensor, folder = sc["spec"].sensor, sc["folder"]
    rr_out, fr_out = folder / f"rr_{slug}.tif", folder / f"fr_{slug}.tif"
    fn(sc["rr_pan"], sc["rr_ms"], rr_out)
    rr = assess(rr_out, sc["rr_pan"], sc["rr_ms"], reference_path=sc["rr_ref"], sensor=sensor).to_dict()
    seconds = fn(sc["fr_pan"], sc["fr_ms"], fr_out)
    fr = assess(fr_out, sc["fr_pan"], sc["fr_ms"], sensor=sensor).to_dict()
    return rr, fr, seconds


def bench_scene(model: str, data_dir: Path, tmp: Path, notes: list[str],
                adapt_seconds: float = 0.0, adapt_options: dict[str, Any] | None = None,
                fast: bool = False, scene: str | None = None, classical: bool = True) -> list[dict[str, Any]]:
    sc = prepare_scene(model, data_dir, tmp, scene)
    spec = sc["spec"]
    methods: list[tuple[str, Any]] = []
    adapted: list[dict[str, Any]] = []
    calibs: list[dict[str, Any]] = []
    found = bundled_model(f"{model}_fast" if fast else model)
    if found is not None:
        name, weights = found
        methods.append((f"PSDNet ({name}), default: calibrated",
                        lambda p, m, o, w=weights: run_engine("psdnet", p, m, o, model=w, sensor=spec.sensor,
                                                              calibrations=calibs)))
        methods.append((f"PSDNet ({name}), uncalibrated",
                        lambda p, m, o, w=weights: run_engine("psdnet", p, m, o, model=w, sensor=spec.sensor,
                                                              calibrate=False)))
        fast_found = None if fast else bundled_model(f"{model}_fast")
        if fast_found is not None:
            methods.append((f"PSDNet ({fast_found[0]}), calibrated",
                            lambda p, m, o, w=fast_found[1]: run_engine("psdnet", p, m, o, model=w,
                                                                        sensor=spec.sensor)))
        if adapt_seconds > 0:
            # the adaptation sees only the run's own inputs: the degraded pair at reduced resolution
            what = ", ".join(f"{k} {v}" for k, v in (adapt_options or {}).items())
            methods.append((f"PSDNet ({name}) + adapt {adapt_seconds:g} s" + (f" ({what})" if what else ""),
                            lambda p, m, o, w=weights: run_engine("psdnet", p, m, o, model=w, sensor=spec.sensor,
                                                                  adapt_seconds=adapt_seconds,
                                                                  adaptations=adapted,
                                                                  adapt_options=adapt_options)))
    elif model in ALL_BAND_ROWS:
        # the network on the bands it knows (found and checked by engine.mixed), MTF-GLP-FS on the rest
        methods.append(("PSDNet (psdnet_vhr4 + MTF-GLP-FS, all bands), default: calibrated",
                        lambda p, m, o: run_engine("psdnet", p, m, o, model="auto", sensor=spec.sensor,
                                                   calibrations=calibs)))
        methods.append(("PSDNet (psdnet_vhr4 + MTF-GLP-FS, all bands), uncalibrated",
                        lambda p, m, o: run_engine("psdnet", p, m, o, model="auto", sensor=spec.sensor,
                                                   calibrate=False)))
        notes.append(f"{spec.name}: all {len(spec.bands)} bands at reduced resolution; PSDNet fuses blue, green, "
                     "red, NIR1 (psdnet_vhr4, which saw this scene in training) and MTF-GLP-FS the other four")
    else:
        notes.append(f"{spec.name}: PSDNet skipped, bundled weights resources/models/psdnet_{model}.pt "
                     "not found")
    for label, method in ENGINE_METHODS if classical else ():
        # the scene's sensor gains, as a user choosing SENSOR would get
        methods.append((label, lambda p, m, o, k=method: run_engine(k, p, m, o, sensor=spec.sensor)))
    if classical:
        methods.append(("GDAL Brovey", run_gdal_brovey))
        if shutil.which("otbcli_Pansharpening") and shutil.which("otbcli_Superimpose"):
            for label, method in OTB_METHODS:
                methods.append((label, lambda p, m, o, k=method: run_otb(k, p, m, o)))
        elif not any("otbcli_Pansharpening" in n for n in notes):
            notes.append("OTB RCS / LMVM / Bayes skipped: otbcli_Pansharpening is not on PATH "
                         "(Debian package otb-bin)")

    rows = []
    for label, fn in methods:
        slug = "".join(ch if ch.isalnum() else "_" for ch in label.lower())
        row: dict[str, Any] = {"scene": spec.name, "model": model, "method": label,
                               "seen": seen_in_training(model, spec.name)}
        try:
            rr, fr, seconds = score_method(fn, sc, slug)
        except Exception as exc:  # a failing peer must not sink the whole table
            LOG.exception("%s / %s failed", spec.name, label)
            notes.append(f"{spec.name}: {label} failed: {type(exc).__name__}: {exc}")
            continue
        mpx = sc["pan_size"][0] * sc["pan_size"][1] / 1e6
        row.update({k: rr["metrics"][k] for k in REDUCED_KEYS})
        row.update({k: fr["metrics"][k] for k in FULL_KEYS})
        row["s_per_mpx"] = seconds / mpx
        row["rr_pixels"] = rr["sampled_pixels"]
        row["fr_pixels"] = fr["sampled_pixels"]
        rows.append(row)
        LOG.info("%s / %s: Q2n %.4f SAM %.3f ERGAS %.3f | QNR %.4f HQNR %.4f | %.2f s/MPx", spec.name,
                 label, row["Q2n"] or math.nan, row["SAM"] or math.nan, row["ERGAS"] or math.nan,
                 row["QNR"] or math.nan, row["HQNR"] or math.nan, row["s_per_mpx"])
    for where, a in zip(("reduced", "full"), adapted, strict=False):  # a failed run adds none
        notes.append(f"{spec.name}: adaptation at {where} resolution: {a['steps']} steps ({a['part']}, "
                     f"{a['losses']}) on {a['train_crops']} crops in {a['seconds']:.0f} s, held-out HQNR "
                     f"{a['metrics_before']['HQNR']:.4f} -> {a['metrics_after']['HQNR']:.4f}, "
                     f"{'kept' if a['kept'] else 'discarded'}")
    for where, cal in zip(("reduced", "full"), calibs, strict=False):
        weights = "; ".join(f"band {b + 1}: " + ", ".join(f"{c} {w:.2f}" for c, w in zip(cal["candidates"], row,
                                                                                         strict=True) if w)
                            for b, row in enumerate(cal["weights"]))
        notes.append(f"{spec.name}: calibration at {where} resolution ({cal['pixels']} px, {cal['seconds']:.1f} s): "
                     f"{weights}")
    info = {k: (str(v) if isinstance(v, Path) else v) for k, v in sc.items() if k != "spec"}
    info["sensor"] = spec.sensor
    for row in rows:
        row["scene_info"] = info
    return rows


#: The classical peers of the targets (issue 20): the best of them per metric is marked.
PEERS = ("GSA", "MTF-GLP-HPM", "MTF-GLP-FS", "BDSD-PC")
#: Metric -> larger is better.
BETTER_UP = {"Q2n": True, "SAM": False, "ERGAS": False, "SCC": True, "D_lambda": False, "D_s": False,
             "QNR": True, "HQNR": True}


def _ok(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and not math.isfinite(v))


def best_peer(sub: list[dict[str, Any]], key: str) -> tuple[str, float] | None:
    """(method, value) of the best classical peer of one scene's rows for ``key``."""
    peers = [(r["method"], r[key]) for r in sub if r["method"] in PEERS and _ok(r.get(key))]
    if not peers:
        return None
    return (max if BETTER_UP[key] else min)(peers, key=lambda mv: mv[1])


def seen_in_training(model: str, scene: str) -> bool:
    """Whether the bundled model of a row trained on the scene (an all-band row's base scene counts)."""
    key = "vhr4" if model in ALL_BAND_ROWS else model
    base = ALL_BAND_ROWS[model][0] if model in ALL_BAND_ROWS else scene
    return base in MODEL_SCENES.get(key, {}).get("train", ())


def summary(rows: list[dict[str, Any]]) -> list[str]:
    """Per scene and mean: the default run (calibrated), uncalibrated, against the best classical peer."""
    out = ["| scene | model saw it | default ERGAS | best classical ERGAS | Δ | default SAM | best classical SAM | Δ "
           "| uncalibrated ERGAS / SAM | default HQNR | uncalibrated HQNR | best classical HQNR |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    rel_e, rel_s, hq_d, hq_u = [], [], [], []
    for scene in dict.fromkeys(r["scene"] for r in rows):
        sub = [r for r in rows if r["scene"] == scene]
        dflt = next((r for r in sub if "default: calibrated" in r["method"]), None)
        unc = next((r for r in sub if r["method"].endswith("uncalibrated")), None)
        be, bs, bh = best_peer(sub, "ERGAS"), best_peer(sub, "SAM"), best_peer(sub, "HQNR")
        if dflt is None or be is None or bs is None:
            continue
        de, ds_ = dflt["ERGAS"] / be[1] - 1, dflt["SAM"] / bs[1] - 1
        rel_e.append(de)
        rel_s.append(ds_)
        hq_d.append(dflt["HQNR"])
        if unc is not None:
            hq_u.append(unc["HQNR"])
        seen = "yes (training)" if dflt.get("seen") else "no"
        unc_txt = f"{unc['ERGAS']:.3f} / {unc['SAM']:.3f}" if unc else "–"
        out.append(f"| {scene} | {seen} | {dflt['ERGAS']:.3f} | {be[1]:.3f} ({be[0]}) | {100 * de:+.1f} % | "
                   f"{dflt['SAM']:.3f} | {bs[1]:.3f} ({bs[0]}) | {100 * ds_:+.1f} % | {unc_txt} | "
                   f"{dflt['HQNR']:.4f} | {unc['HQNR'] if unc else float('nan'):.4f} | "
                   f"{bh[1] if bh else float('nan'):.4f} |")
    if rel_e:
        out.append(f"| **mean** | | | | **{100 * sum(rel_e) / len(rel_e):+.1f} %** | | | "
                   f"**{100 * sum(rel_s) / len(rel_s):+.1f} %** | | **{sum(hq_d) / len(hq_d):.4f}** | "
                   f"{(sum(hq_u) / len(hq_u)) if hq_u else float('nan'):.4f} | |")
    return out


def markdown(rows: list[dict[str, Any]], notes: list[str]) -> str:
    def f(v: Any, nd: int, key: str = "", best: dict | None = None) -> str:
        if not _ok(v):
            return "–"
        text = f"{v:.{nd}f}"
        return f"**{text}**" if best and best.get(key) is not None and v == best[key] else text

    lines = ["Default run against the best classical method (GSA, MTF-GLP-HPM, MTF-GLP-FS, BDSD-PC) per "
             "metric, reduced resolution (ERGAS, SAM) and full resolution (HQNR):", ""]
    lines += summary(rows)
    lines.append("")
    for scene in dict.fromkeys(r["scene"] for r in rows):
        sub = [r for r in rows if r["scene"] == scene]
        info = sub[0]["scene_info"]
        lines.append(f"### {scene} ({info['sensor']}, ratio {info['ratio']}, {info['bands']} bands; "
                     f"full resolution PAN {info['pan_size'][1]} x {info['pan_size'][0]}, "
                     f"reduced resolution MS {info['ms_size'][1] // info['ratio']} x "
                     f"{info['ms_size'][0] // info['ratio']} -> {info['ms_size'][1]} x {info['ms_size'][0]})")
        lines.append("")
        lines.append("| method | Q2n ↑ | SAM ↓ | ERGAS ↓ | SCC ↑ | D_λ ↓ | D_s ↓ | QNR ↑ | HQNR ↑ "
                     "| s/MPx (full res.) |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        best = {}
        for key in BETTER_UP:
            bp = best_peer(sub, key)
            best[key] = bp[1] if bp else None
        for r in sub:
            mark = best if r["method"] in PEERS else None
            cells = [f(r[k], 3 if k in ("SAM", "ERGAS") else 4, k, mark)
                     for k in ("Q2n", "SAM", "ERGAS", "SCC", "D_lambda", "D_s", "QNR", "HQNR")]
            lines.append(f"| {r['method']} | " + " | ".join(cells) + f" | {f(r['s_per_mpx'], 2)} |")
        lines.append("")
        lines.append("Bold: the best classical method (GSA, MTF-GLP-HPM, MTF-GLP-FS, BDSD-PC) per metric.")
        lines.append("")
    if notes:
        lines.append("Notes:")
        lines.extend(f"- {n}" for n in notes)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="shared data folder (holds PROVENANCE.md)")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench")
    ap.add_argument("--models", default=",".join([*MODEL_SCENES, *ALL_BAND_ROWS]),
                    help="comma-separated: vhr4,landsat3 (bundled models' validation scenes), shanghai8 "
                         "(the 8-band WV-3 scene, all bands)")
    ap.add_argument("--adapt-part", default=None, choices=ADAPT_PARTS,
                    help="weights the adapted rows fine-tune (default: the engine's, head)")
    ap.add_argument("--adapt-losses", default=None, choices=ADAPT_LOSSES,
                    help="losses of the adapted rows (default: the engine's, both)")
    ap.add_argument("--fast", action="store_true",
                    help="PSDNet rows with the PSDNet-Fast model (psdnet_<model>_fast) instead of the full one")
    ap.add_argument("--keep", action="store_true", help="keep the temporary GeoTIFFs under OUT/work")
    ap.add_argument("--adapt-seconds", type=float, default=120.0,
                    help="budget of the adapted PSDNet rows (scene adaptation; 0 = no adapted rows)")
    ap.add_argument("--scenes", default="",
                    help="comma-separated training.scenes.SCENES names to bench besides --models' validation "
                         "scenes (the bundled model of the scene's ratio runs; rows say whether it saw the scene)")
    ap.add_argument("--no-classical", action="store_true", help="PSDNet rows only")
    ap.add_argument("--from-json", type=Path, default=None,
                    help="print the tables of an earlier run's bench_quality.json instead of running")
    args = ap.parse_args(argv)
    if args.from_json is not None:
        old = json.loads(args.from_json.read_text(encoding="utf-8"))
        for r in old["rows"]:
            r["seen"] = seen_in_training(r["model"], r["scene"])
        print(markdown(old["rows"], old["notes"]))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    logging.getLogger("psdnet_qgis.core.mtf").setLevel(logging.WARNING)  # per-call gain notes
    from psdnet_qgis.training.scenes import default_data_dir

    data_dir = args.data or default_data_dir()
    args.out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    if args.keep:
        work = args.out / "work"
        work.mkdir(exist_ok=True)
        ctx: Any = None
    else:
        ctx = tempfile.TemporaryDirectory(prefix="psdnet_bench_")
        work = Path(ctx.name)
    try:
        adapt_opts = {k: v for k, v in (("part", args.adapt_part), ("losses", args.adapt_losses)) if v}
        for model in [m.strip() for m in args.models.split(",") if m.strip()]:
            rows += bench_scene(model, Path(data_dir), work, notes, args.adapt_seconds, adapt_opts,
                                fast=args.fast, classical=not args.no_classical)
        for name in [n.strip() for n in args.scenes.split(",") if n.strip()]:
            model = SCENE_MODEL[SCENES[name].ratio]
            rows += bench_scene(model, Path(data_dir), work, notes, args.adapt_seconds, adapt_opts,
                                fast=args.fast, scene=name, classical=not args.no_classical)
    finally:
        if ctx is not None:
            ctx.cleanup()
    notes.append("classical methods run with the scene's sensor MTF gains (engine sensor argument), "
                 "as do the Wald degradation and the metrics")
    table = markdown(rows, notes)
    print(table)
    (args.out / "bench_quality.md").write_text(table + "\n", encoding="utf-8")
    report = {
        "rows": rows, "notes": notes, "seconds_total": time.perf_counter() - t0,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "omp_threads": os.environ.get("OMP_NUM_THREADS"), "gdal": gdal.__version__},
        "protocol": "Wald reduced resolution (core.mtf.degrade with the sensor's MTF gains) and full "
                    "resolution, metrics by engine.assess / core.metrics (METRICS.md)",
    }
    (args.out / "bench_quality.json").write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    LOG.info("wrote %s and %s in %.0f s", args.out / "bench_quality.md", args.out / "bench_quality.json",
             report["seconds_total"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
