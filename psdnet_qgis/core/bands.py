"""Which MS band is which: names from metadata, the WorldView 8-band order, Landsat band numbers,
a check on the pixels.

A model knows a few bands (``ModelInfo.band_names``, e.g. blue, green, red, nir). When the MS
has more (an 8-band WorldView-2/3 product: coastal, blue, green, yellow, red, red edge, NIR1,
NIR2), the engine gives the network the bands it knows and fuses the others classically
(``engine.mixed``); when it has as many but in another order (a Pleiades or SPOT export in red,
green, blue, NIR order, named so by its band descriptions), the network gets them in its order.
Choosing the bands wrongly would give the network e.g. the yellow or the red band as blue
without any error, so the choice is checked on the pixels, with signs that do not depend on the
scene's calibration (DN, radiance or reflectance, any gain):

* **haze**: atmospheric path radiance falls with wavelength (Rayleigh scattering), so the
  darkest pixels of a band, relative to its median (``p1 / p50``), are brightest in the
  coastal and blue bands and darkest in the NIR. The sign is the rank agreement between the
  claimed wavelengths and this ratio over band pairs, pairs far apart in wavelength weighing
  more: near -1 when the order is right, near +1 when it is reversed. (Shanghai WV-3 ratios:
  0.92, 0.87, 0.82, 0.76, 0.64, 0.54, 0.37, 0.33 from coastal to NIR2.)
* **NIR pair** (8 bands): NIR1 and NIR2 see the same vegetation and soil response, so they
  correlate with each other better than NIR1 does with any visible band (Shanghai: 0.92
  against at most 0.03).
* **NIR apart** (any MS with a NIR and two visible bands, e.g. blue, green, red, NIR): the
  visible bands correlate with each other better than with the NIR (Rotterdam WV-2: 0.94-0.97
  against 0.06-0.22). In a scene without vegetation the visible and NIR bands all correlate,
  which makes the NIR signs inconclusive, never contradictory.
* **smoothness** (four bands): bands close in wavelength correlate more.

The verdict follows the strength of the evidence: every sign is measured on the whole sample
and on block resamples of it (:data:`BLOCKS`, :data:`RESAMPLES`), and a sign counts against the
order only when it holds in all but the most favourable resamples. A small crop, a uniform
scene or few valid pixels give signs that change from one resample to the next: inconclusive.
On four bands the haze sign rests on six band pairs and real crops turn it (shadows and
vegetation in a 64 px urban crop of Rotterdam), so there a NIR-apart or smoothness sign for the
order overrules it. ``scripts/band_check_rates.py`` measures the verdicts on crops of every real
scene with a known band order (docs/USER_GUIDE.md "Band order"): no right order refused at 32, 64 and
128 px; neighbouring bands swapped (yellow for red, green for blue) mostly pass, which is why the
user can always set the bands.

Landsat bands are numbered, and the numbers mean different bands per instrument (band 5 is the
NIR of OLI, SWIR 1 of ETM+ and TM): :data:`LANDSAT_BANDS` names them once the instrument is known
(``engine.msbands`` reads the numbers off band descriptions and band file names). The canonical
names add "nir" (Landsat's one NIR band; a model's NIR matches it, as it matches WorldView's
NIR1), "swir1", "swir2", "cirrus" and thermal bands; :func:`pan_covers` says which bands no PAN
covers (the calibration gives them no PAN detail).

The verdict is "confirmed", "inconclusive" (the signs are weak: the order from the metadata
or the sensor is used and the run warns) or "contradicted" (strong evidence against it: the
engine refuses and names the fix, setting the bands explicitly).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Band order of 8-band WorldView-2 and WorldView-3 MS products.
WORLDVIEW8 = ("coastal", "blue", "green", "yellow", "red", "rededge", "nir1", "nir2")
#: Nominal centre wavelengths (nm) of the canonical band names (WorldView-2/3 values; "nir" (the
#: one NIR band of Landsat) and the short-wave infrared bands: Landsat 8/9 OLI values; the order is
#: what the check uses). Thermal and cirrus bands have none: the haze sign does not apply to them.
WAVELENGTH_NM = {"coastal": 427, "blue": 478, "green": 546, "yellow": 608, "red": 659,
                 "rededge": 724, "nir1": 833, "nir": 865, "nir2": 949, "swir1": 1609, "swir2": 2201}
#: Canonical names of bands no supported PAN covers (every PAN ends below 1 um): such a band
#: gets no PAN detail in a calibrated run (``engine.calibration``), it keeps the upsampled MS.
NO_PAN_DETAIL = ("swir1", "swir2", "cirrus", "thermal", "thermal1", "thermal2")
#: Landsat band numbers -> canonical names, per instrument ("oli": Landsat 8/9 OLI and OLI-2, with
#: TIRS; "etm": Landsat 7 ETM+; "tm": Landsat 4/5 TM). Band 8 (OLI, ETM+) is the PAN: no MS name.
LANDSAT_BANDS: dict[str, dict[int, str]] = {
    "oli": {1: "coastal", 2: "blue", 3: "green", 4: "red", 5: "nir", 6: "swir1", 7: "swir2",
            9: "cirrus", 10: "thermal1", 11: "thermal2"},
    "etm": {1: "blue", 2: "green", 3: "red", 4: "nir", 5: "swir1", 6: "thermal", 7: "swir2"},
    "tm": {1: "blue", 2: "green", 3: "red", 4: "nir", 5: "swir1", 6: "thermal", 7: "swir2"},
}
#: What the log calls each entry of :data:`LANDSAT_BANDS`.
LANDSAT_INSTRUMENTS = {"oli": "Landsat 8/9 OLI", "etm": "Landsat 7 ETM+", "tm": "Landsat 4/5 TM"}

#: Canonical name for description keywords (compared without case, spaces or punctuation).
_KEYWORDS = (
    (r"^(coastal|coastalblue|coastalaerosol|cb|b1coastal)$", "coastal"),
    (r"^(rededge|re|redegde|vre)$", "rededge"),
    (r"^(nir1|nearir1|nearinfrared1|nir|nearir|nearinfrared)$", "nir1"),
    (r"^(nir2|nearir2|nearinfrared2)$", "nir2"),
    (r"^(swir1|shortwaveinfrared1|shortwaveir1|swirone)$", "swir1"),
    (r"^(swir2|shortwaveinfrared2|shortwaveir2|swirtwo)$", "swir2"),
    (r"^(cirrus)$", "cirrus"),
    (r"^(tirs1|tir1|thermal1|thermalinfrared1|lwir1)$", "thermal1"),
    (r"^(tirs2|tir2|thermal2|thermalinfrared2|lwir2)$", "thermal2"),
    (r"^(thermal|tir|tirs|thermalinfrared|lwir)$", "thermal"),
    (r"^(yellow|y)$", "yellow"),
    (r"^(blue|b)$", "blue"),
    (r"^(green|g)$", "green"),
    (r"^(red|r)$", "red"),
)

#: Haze sign (wavelength-gap-weighted rank agreement of the claimed wavelengths with the
#: dark-pixel ratio; -1 when haze falls with wavelength, the right order): confirms at or below
#: HAZE_CONFIRM on the whole sample and HAZE_CONFIRM_ROBUST in all but the worst resamples;
#: contradicts at or above HAZE_CONTRADICT in all but the most favourable resamples.
HAZE_CONFIRM, HAZE_CONFIRM_ROBUST, HAZE_CONTRADICT = -0.6, -0.3, 0.3
#: corr(NIR1, NIR2) minus the best corr(NIR1, visible band) (8 bands): confirms at or above,
#: contradicts at or below (in all but the most favourable resamples).
NIR_CONFIRM, NIR_CONTRADICT = 0.05, -0.15
#: NIR apart: mean corr between the visible bands minus mean corr(NIR, visible band) (any MS with
#: a NIR and two visible bands): confirms at or above DISTINCT_CONFIRM; at or above DISTINCT_FOR it
#: overrules a haze sign against the order (vegetation and shadows can make the NIR's dark pixels
#: relatively brighter in a small crop); contradicts at or below DISTINCT_CONTRADICT in all but
#: the most favourable resamples (the claimed NIR follows the visible bands better than they do
#: each other).
DISTINCT_CONFIRM, DISTINCT_FOR, DISTINCT_CONTRADICT = 0.0, 0.1, -0.25
#: Spectral smoothness: rank correlation between the wavelength gap of two bands and their
#: correlation (bands close in wavelength correlate more). With four bands the haze sign rests on
#: six pairs, and urban crops without vegetation can turn it (Rotterdam 2, 64 px crops: +0.5):
#: there, smoothness at or below SMOOTH_FOR overrules it. With more bands it does not (a
#: reversed order keeps the wavelength gaps, so smoothness cannot tell it from the right one).
SMOOTH_FOR = -0.6
#: Fewer valid pixels than this: no verdict (inconclusive).
MIN_PIXELS = 100
#: Dark-pixel ratios of the checked bands spanning less than this (a uniform scene, or one
#: where noise rather than haze sets the darkest pixels): the haze sign cannot contradict.
MIN_HAZE_SPREAD = 0.05
#: Evidence strength: the sample is cut into up to BLOCKS x BLOCKS spatial blocks, resampled
#: with replacement RESAMPLES times (fixed seed); a sign is strong when it holds in all but the
#: ``QUANTILE`` share of resamples that disagree most.
BLOCKS, RESAMPLES, QUANTILE = 8, 32, 0.1
#: Pixels the check uses at most (an even subsample of a larger sample).
MAX_PIXELS = 4096


def canonical_name(description: str) -> str | None:
    """The canonical band name of a band description ("NIR 1", "Red Edge", "Coastal"), or None."""
    key = re.sub(r"[^a-z0-9]", "", str(description or "").lower())
    key = re.sub(r"^(band\d+|b\d+)(?=[a-z])", "", key)  # "Band1Coastal", "B5Red"
    key = re.sub(r"(?<=[a-z0-9])(band\d+|b\d+)$", "", key)  # "Red (B4)", "NIR band 8", "SWIR 1 (B6)"
    for pattern, name in _KEYWORDS:
        if re.match(pattern, key):
            return name
    return None


def landsat_instrument(sensor: str | None) -> str | None:
    """The :data:`LANDSAT_BANDS` key of a sensor label or name ("Landsat 8 OLI", "Landsat 8/9 OLI",
    "Landsat-8/9 OLI", "Landsat 7 ETM+", "Landsat 5 TM", "landsat8"), or None (not a Landsat
    instrument with numbered reflective bands: another sensor, MSS, TIRS alone)."""
    key = re.sub(r"[^a-z0-9+]", "", str(sensor or "").lower())
    if not key.startswith("landsat"):
        return None
    rest = key[len("landsat"):]
    if "mss" in rest or ("tirs" in rest and "oli" not in rest):
        return None
    if "oli" in rest or rest[:1] in ("8", "9"):
        return "oli"
    if "etm" in rest or rest[:1] == "7":
        return "etm"
    if "tm" in rest or rest[:1] in ("4", "5"):
        return "tm"
    return None


#: A Landsat band number in a description or file name: "B5", "Band 5", "SR_B5", "B05", "B5 (NIR)",
#: "LC08_..._B5.TIF", "l8_B5", "subset_band2_TOA" (the last such token counts).
_LANDSAT_NUMBER = re.compile(r"(?<![a-z0-9])b(?:and)?[\s_-]?0?(\d{1,2})(?![0-9])")


def landsat_band_number(text: str) -> int | None:
    """The Landsat band number a band description or a band file name gives, or None.

    Args:
        text: "B5", "Band 5", "SR_B5", "B5 (NIR)", or a file name ("LC08_..._T1_B5.TIF", "l8_B5.tif");
            a folder and the extension are ignored.
    """
    base = re.split(r"[\\/]", str(text or ""))[-1]
    base = re.sub(r"\.(tiff?|jp2|img|vrt|hdf|nc|dat|bin)$", "", base, flags=re.I)
    hits = _LANDSAT_NUMBER.findall(base.lower())
    return int(hits[-1]) if hits else None


def landsat_name(text: str, instrument: str) -> str | None:
    """The canonical name of a Landsat band from its description or file name, or None.

    A band name in the text wins ("B5 (NIR)", "Blue"; NIR is "nir", Landsat having one), else the
    band number is looked up in the instrument's table (:data:`LANDSAT_BANDS`; B8 is the PAN: None).

    Args:
        text: band description or file name.
        instrument: a :data:`LANDSAT_BANDS` key (:func:`landsat_instrument`).
    """
    table = LANDSAT_BANDS[instrument]
    name = canonical_name(re.split(r"[\\/]", str(text or ""))[-1])
    if name is not None:
        name = {"nir1": "nir"}.get(name, name)
        return name if name in table.values() else None
    number = landsat_band_number(text)
    return table.get(number) if number is not None else None


def landsat_names(texts: Sequence[str], instrument: str) -> list[str] | None:
    """Canonical names of all bands (:func:`landsat_name`) when each names a distinct band, else None."""
    names = [landsat_name(t, instrument) for t in texts]
    if not names or any(n is None for n in names) or len(set(names)) != len(names):
        return None
    return [str(n) for n in names]


def pan_covers(name: str | None) -> bool:
    """False for a band no supported PAN covers (:data:`NO_PAN_DETAIL`: SWIR, cirrus, thermal)."""
    return name not in NO_PAN_DETAIL


def names_from_metadata(descriptions: Sequence[str]) -> list[str] | None:
    """The canonical names of all bands when every description names a distinct band, else None."""
    names = [canonical_name(d) for d in descriptions]
    if not names or any(n is None for n in names) or len(set(names)) != len(names):
        return None
    return [str(n) for n in names]


def default_names(n_bands: int) -> list[str] | None:
    """The band names an MS of ``n_bands`` has when its metadata say nothing: the WorldView 8-band
    order for 8 bands (the only 8-band MS of the supported sensors), else None (unknown)."""
    return list(WORLDVIEW8) if n_bands == len(WORLDVIEW8) else None


def select(names: Sequence[str], wanted: Sequence[str]) -> list[int] | None:
    """0-based positions in ``names`` of the model's bands ``wanted``, or None.

    ``wanted`` may use any spelling :func:`canonical_name` knows: a 4-band model's "NIR" is NIR1.
    """
    pos = []
    for w in wanted:
        key = canonical_name(w) or str(w).lower()
        if key not in names and key in _SAME_BAND and _SAME_BAND[key] in names:
            key = _SAME_BAND[key]  # a 4-band model's NIR is Landsat's one NIR
        if key not in names:
            return None
        pos.append(list(names).index(key))
    return pos


#: Names of one band under two conventions: WorldView's NIR1 is the NIR of a 4-band model, and
#: Landsat's one NIR band ("nir") serves a model's NIR too.
_SAME_BAND = {"nir1": "nir"}


def _nir_index(names: Sequence[str]) -> int | None:
    """Position of the NIR band the NIR signs use (NIR1, else Landsat's NIR), or None."""
    for key in ("nir1", "nir"):
        if key in names:
            return list(names).index(key)
    return None


@dataclass(frozen=True)
class OrderCheck:
    """Verdict of :func:`check_order` ("confirmed" | "inconclusive" | "contradicted") and its evidence.

    ``haze``, ``nir`` (8 bands: NIR1 with NIR2), ``distinct`` (NIR apart from the visible bands)
    and ``smooth`` (correlation falling with the wavelength gap) are the signs on the whole
    sample (None: not measurable on these bands); ``*_range`` the span of a sign over the middle
    80 % of the block resamples (its strength); ``pixels`` the valid pixels the check used.
    """

    verdict: str
    haze: float | None
    nir: float | None
    reason: str
    haze_range: tuple[float, float] | None = None
    nir_range: tuple[float, float] | None = None
    distinct: float | None = None
    distinct_range: tuple[float, float] | None = None
    smooth: float | None = None
    pixels: int = 0


_VISIBLE = ("coastal", "blue", "green", "yellow", "red")


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a)).astype(np.float64)
    rb = np.argsort(np.argsort(b)).astype(np.float64)
    c = np.corrcoef(ra, rb)[0, 1]
    return float(c) if np.isfinite(c) else 0.0


def _sample(ms: np.ndarray, valid: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Valid pixels (C, n) float64 (evenly thinned to MAX_PIXELS), their block ids (n,), block count."""
    c, h, w = ms.shape
    ok = np.isfinite(ms).all(0)
    if valid is not None:
        ok &= valid.reshape(h, w)
    nb_y, nb_x = max(1, min(BLOCKS, h // 4)), max(1, min(BLOCKS, w // 4))
    block = (np.arange(h)[:, None] * nb_y // h) * nb_x + (np.arange(w)[None, :] * nb_x // w)
    x = ms[:, ok].astype(np.float64)
    bid = block[ok]
    if x.shape[1] > MAX_PIXELS:
        keep = np.linspace(0, x.shape[1] - 1, MAX_PIXELS).round().astype(np.int64)
        x, bid = x[:, keep], bid[keep]
    return x, bid, nb_y * nb_x


def _weights(bid: np.ndarray, n_blocks: int) -> np.ndarray:
    """(1 + RESAMPLES, n) pixel weights: the sample itself, then block resamples (fixed seed)."""
    present = np.unique(bid)
    rng = np.random.default_rng(0)
    mult = np.zeros((RESAMPLES + 1, n_blocks))
    mult[0, present] = 1.0
    draws = rng.integers(0, present.size, (RESAMPLES, present.size))
    for k in range(RESAMPLES):
        np.add.at(mult[k + 1], present[draws[k]], 1.0)
    return mult[:, bid]


def _wquantiles(v: np.ndarray, wts: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Weighted quantiles of ``v`` (n,) under each row of ``wts`` (R, n) -> (len(qs), R)."""
    order = np.argsort(v, kind="stable")
    cw = np.cumsum(wts[:, order], axis=1)
    out = np.empty((len(qs), wts.shape[0]))
    for i, q in enumerate(qs):
        idx = (cw < q * cw[:, -1:]).sum(axis=1)
        out[i] = v[order][np.minimum(idx, v.size - 1)]
    return out


def _haze_signs(x: np.ndarray, lam: np.ndarray, wts: np.ndarray) -> tuple[np.ndarray, float]:
    """Haze sign per resample (R,) and the spread of the dark-pixel ratios of the whole sample.

    The sign is a wavelength-gap-weighted rank agreement between the claimed wavelengths and
    the dark-pixel ratio p_dark / p50 (p_dark: the 1st percentile, or higher when the sample is
    small, so that about 10 pixels are darker): -1 when every band is hazier than every band of
    longer wavelength, +1 when reversed. Pairs far apart in wavelength weigh more (their haze
    differs more), so two neighbours the scene happens to swap move it little.
    """
    q = max(0.01, 10.0 / x.shape[1])
    ratio = np.empty((wts.shape[0], len(lam)))
    for b in range(len(lam)):
        dark, med = _wquantiles(x[b], wts, (q, 0.5))
        ratio[:, b] = np.where(med > 0, dark / np.where(med > 0, med, 1.0), np.nan)
    i, j = np.triu_indices(len(lam), 1)
    gap = np.abs(np.log(lam[i]) - np.log(lam[j]))
    agree = np.sign(lam[j] - lam[i]) * np.sign(ratio[:, i] - ratio[:, j])  # +1: the shorter is hazier
    signs = -(np.nan_to_num(agree) * gap).sum(axis=1) / gap.sum()
    spread = float(np.nanmax(ratio[0]) - np.nanmin(ratio[0])) if np.isfinite(ratio[0]).any() else 0.0
    return signs, spread


def _correlations(x: np.ndarray, wts: np.ndarray) -> np.ndarray:
    """Band correlation matrices (R, C, C) under each row of ``wts`` (R, n); 0 where undefined."""
    c = x.shape[0]
    sw = wts.sum(axis=1)[:, None]
    mean = wts @ x.T / sw
    second = (wts @ (x[:, None, :] * x[None, :, :]).reshape(c * c, -1).T / sw).reshape(-1, c, c)
    cov = second - mean[:, :, None] * mean[:, None, :]
    sd = np.sqrt(np.maximum(np.einsum("rii->ri", cov), 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / (sd[:, :, None] * sd[:, None, :])
    return np.nan_to_num(corr)


def _span(signs: np.ndarray) -> tuple[float, float]:
    lo, hi = np.quantile(signs[1:], [QUANTILE, 1.0 - QUANTILE])
    return float(lo), float(hi)


def check_order(ms: np.ndarray, names: Sequence[str], valid: np.ndarray | None = None) -> OrderCheck:
    """Check on the pixels that the MS bands are ``names`` (canonical names, in the band order).

    The verdict follows the strength of the evidence. Each sign is measured on the whole sample
    and on block resamples of it (in a small or uniform scene a sign changes from one resample to
    the next). "contradicted" needs a sign against the order in all but the most favourable
    resamples, not overruled by another sign for it; "confirmed" needs the haze sign (and the NIR
    signs the bands allow) for it; anything weaker is "inconclusive".

    Args:
        ms: (C, h, w) MS sample (any calibration; a decimated sample is enough).
        names: canonical name of each band.
        valid: optional (h, w) mask of valid pixels.
    """
    c = ms.shape[0]
    if len(names) != c:
        raise ValueError(f"check_order: {len(names)} names for {c} bands")
    names = list(names)
    x, bid, n_blocks = _sample(ms, valid)
    n = int(x.shape[1])
    if n < MIN_PIXELS:
        return OrderCheck("inconclusive", None, None,
                          f"{n} valid pixels: too few to check the band order", pixels=n)
    wts = _weights(bid, n_blocks)
    corr = _correlations(x, wts)
    known = [i for i, nm in enumerate(names) if nm in WAVELENGTH_NM]
    lam = np.array([WAVELENGTH_NM[names[i]] for i in known], dtype=np.float64)
    ev: dict = {"pixels": n}
    parts = []
    spread = 0.0
    if len(known) >= 3:
        signs, spread = _haze_signs(x[known], lam, wts)
        ev.update(haze=float(signs[0]), haze_range=_span(signs))
        parts.append("haze (dark-pixel ratio) vs wavelength {:+.2f}, {:+.2f} to {:+.2f} over resampled "
                     "blocks (expected near -1)".format(ev["haze"], *ev["haze_range"]))
    vis = [i for i, nm in enumerate(names) if nm in _VISIBLE]
    if "nir1" in names and "nir2" in names and vis:
        i1, i2 = names.index("nir1"), names.index("nir2")
        signs = corr[:, i1, i2] - corr[:, i1, vis].max(axis=1)
        ev.update(nir=float(signs[0]), nir_range=_span(signs))
        parts.append("corr(NIR1, NIR2) - best corr(NIR1, visible) {:+.2f}, {:+.2f} to {:+.2f} "
                     "(expected > 0)".format(ev["nir"], *ev["nir_range"]))
    i_nir = _nir_index(names)
    if i_nir is not None and len(vis) >= 2:
        i1 = i_nir
        iu, ju = np.triu_indices(len(vis), 1)
        pairs = corr[:, np.asarray(vis)[iu], np.asarray(vis)[ju]].mean(axis=1)
        signs = pairs - corr[:, i1, vis].mean(axis=1)
        ev.update(distinct=float(signs[0]), distinct_range=_span(signs))
        parts.append("NIR apart: corr among visible - corr(NIR, visible) {:+.2f}, {:+.2f} to {:+.2f} "
                     "(expected > 0)".format(ev["distinct"], *ev["distinct_range"]))
    if len(known) == 4:
        iu, ju = np.triu_indices(len(known), 1)
        gap = np.abs(np.log(lam[iu]) - np.log(lam[ju]))
        ev["smooth"] = _spearman(gap, corr[0][np.asarray(known)[iu], np.asarray(known)[ju]])
        parts.append(f"correlation vs wavelength gap {ev['smooth']:+.2f} (expected < 0)")
    reason = "; ".join([*parts, f"{n} px"]) if parts else f"no band the check knows; {n} px"
    haze, haze_range = ev.get("haze"), ev.get("haze_range")
    distinct, smooth = ev.get("distinct"), ev.get("smooth")
    haze_against = (haze_range is not None and haze_range[0] >= HAZE_CONTRADICT
                    and spread >= MIN_HAZE_SPREAD)
    if haze_range is not None and haze_range[0] >= HAZE_CONTRADICT and spread < MIN_HAZE_SPREAD:
        reason += f"; dark-pixel ratios within {spread:.3f} (a uniform scene): haze not counted against"
    overruled = haze_against and ((distinct is not None and distinct >= DISTINCT_FOR)
                                  or (smooth is not None and smooth <= SMOOTH_FOR))
    if overruled:
        reason += "; the haze sign against the order is overruled by the correlations for it"
    against = ((haze_against and not overruled)
               or ("nir_range" in ev and ev["nir_range"][1] <= NIR_CONTRADICT)
               or ("distinct_range" in ev and ev["distinct_range"][1] <= DISTINCT_CONTRADICT))
    if against:
        return _verdict("contradicted", reason, ev)
    confirmed = (haze is not None and haze_range is not None and haze <= HAZE_CONFIRM
                 and haze_range[1] <= HAZE_CONFIRM_ROBUST
                 and ("nir" not in ev or (ev["nir"] >= NIR_CONFIRM and ev["nir_range"][0] >= NIR_CONTRADICT))
                 and (distinct is None or distinct >= DISTINCT_CONFIRM))
    return _verdict("confirmed" if confirmed else "inconclusive", reason, ev)


def _verdict(verdict: str, reason: str, ev: dict) -> OrderCheck:
    rest = {k: v for k, v in ev.items() if k not in ("haze", "nir")}
    return OrderCheck(verdict, ev.get("haze"), ev.get("nir"), reason, **rest)
