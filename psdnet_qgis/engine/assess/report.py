"""Self-describing HTML report of an assessment (:func:`engine.assess.quality.assess` results)."""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from typing import Any

from psdnet_qgis.engine.assess.pooling import METRIC_KEYS
from psdnet_qgis.engine.assess.results import AssessReport

#: key -> (label, better, ideal, protocol, one-line meaning)
METRIC_INFO: dict[str, tuple[str, str, str, str, str]] = {
    "Q2n": ("Q2n", "higher", "1", "reduced", "hypercomplex quality index (Q4 / Q8), 32 px blocks"),
    "Q": ("Q", "higher", "1", "reduced", "universal image quality index, mean over bands"),
    "SAM": ("SAM (degrees)", "lower", "0", "reduced", "mean spectral angle"),
    "ERGAS": ("ERGAS", "lower", "0", "reduced", "relative dimensionless global error, 100 / r scaling"),
    "SCC": ("SCC", "higher", "1", "reduced", "correlation of Sobel spatial details"),
    "D_lambda": ("D_lambda", "lower", "0", "full", "spectral distortion (inter-band Q change)"),
    "D_s": ("D_s", "lower", "0", "full", "spatial distortion (Q with PAN change across scales)"),
    "QNR": ("QNR", "higher", "1", "full", "(1 - D_lambda)(1 - D_s)"),
    "D_lambda_K": ("D_lambda (Khan)", "lower", "0", "full",
                   "1 - Q2n(MS, fused MTF-degraded to the MS scale)"),
    "HQNR": ("HQNR", "higher", "1", "full", "(1 - D_lambda Khan)(1 - D_s)"),
}

#: Style sheet of the report (inline, so the HTML file stands alone).
CSS = """body { font-family: sans-serif; margin: 1.5em; }
table { border-collapse: collapse; margin-bottom: 1em; }
td, th { border: 1px solid #bbb; padding: 3px 8px; text-align: left; }
td.num { text-align: right; font-family: monospace; }
img { max-width: 100%; }
"""


def _fmt(v: float | None) -> str:
    return "&ndash;" if v is None else f"{v:.4f}"


def write_html_report(results: AssessReport | Mapping[str, Any], path: str, quicklook_png: str | None = None
                      ) -> str:
    """Self-describing HTML report: the metric table, the sample, notes and the quicklook.

    Args:
        results: what :func:`assess` returned, or its ``to_dict()``.
        path: the .html file to write.
        quicklook_png: PNG to show (default ``results["quicklook"]``); linked relative to the
            HTML file when it lies in the same folder.

    Returns:
        The HTML path.
    """
    path = os.fspath(path)
    if isinstance(results, AssessReport):
        results = results.to_dict()
    esc = html.escape
    m = results.get("metrics", {})
    rows = []
    for key in METRIC_KEYS:
        label, better, ideal, protocol, meaning = METRIC_INFO[key]
        rows.append(
            f"<tr><td>{esc(label)}</td><td class='num'>{_fmt(m.get(key))}</td><td>{ideal}</td>"
            f"<td>{better}</td><td>{protocol} resolution</td><td>{esc(meaning)}</td></tr>")
    inp = results.get("inputs", {})
    info = [
        ("Fused", inp.get("fused")), ("PAN", inp.get("pan")), ("MS", inp.get("ms")),
        ("Reference", inp.get("reference") or "none (full-resolution metrics only)"),
        ("Sensor (MTF gains)", results.get("sensor")), ("Bands", results.get("bands")),
        ("PAN / MS ratio", results.get("ratio")),
    ]
    if results.get("mode") == "sampled":
        sample = (f"{len(results.get('windows', []))} blocks of {results.get('block')} x "
                  f"{results.get('block')} PAN px drawn with seed {results.get('seed')}: "
                  f"{results.get('sampled_pixels')} of {results.get('region_pixels')} px")
    else:
        sample = (f"whole image: {results.get('sampled_pixels')} of "
                  f"{results.get('region_pixels')} px (no-data border excluded)")
    info.append(("Evaluated pixels", sample))
    info.append(("Time", f"{results.get('seconds', 0.0):.1f} s"))
    info_rows = "".join(f"<tr><th>{esc(str(k))}</th><td>{esc(str(v))}</td></tr>" for k, v in info)
    notes = "".join(f"<li>{esc(n)}</li>" for n in results.get("notes", []))
    ql = quicklook_png or results.get("quicklook")
    img = ""
    if ql:
        src = os.path.basename(ql) if os.path.dirname(os.path.abspath(ql)) == \
            os.path.dirname(os.path.abspath(path)) else "file://" + os.path.abspath(ql)
        img = (f"<h2>Quicklook</h2><p>MS upsampled (bicubic) | fused | PAN, same stretch for the "
               f"first two.</p><img src='{esc(src)}' alt='quicklook'>")
    doc = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Pansharpening quality</title>
<style>
{CSS}</style></head><body>
<h1>Pansharpening quality</h1>
<table class="metrics"><tr><th>Metric</th><th>Value</th><th>Ideal</th><th>Better</th>
<th>Protocol</th><th>Meaning</th></tr>
{''.join(rows)}
</table>
<p>Reduced-resolution metrics compare the fused image with the reference; full-resolution
ones compare it with the PAN and MS it was made from (no reference). Definitions: Vivone et
al.'s pansharpening toolbox conventions (Q and Q2n on 32 x 32 blocks, ERGAS with 100 / r).</p>
<h2>Inputs and sample</h2>
<table>{info_rows}</table>
{f'<h2>Notes</h2><ul>{notes}</ul>' if notes else ''}
{img}
</body></html>
"""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(doc)
    return path
