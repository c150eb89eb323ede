"""Pansharpening quality metrics (pure numpy), as defined in the shared METRICS.md.

Conventions (the community toolbox's, so numbers compare with published tables):

* Arrays are channels-first ``(C, H, W)``; argument order is ``(fused, reference)``.
* Q (UIQI, Wang & Bovik) uses 32 x 32 windows sliding by one pixel, averaged over windows
  and bands; the windowed sums come from integral images (O(pixels), any block size).
* Q2n (Q4 / Q8) uses 32 x 32 blocks with shift 32 on integer digital numbers (values
  rounded and clipped to [0, 65535]), bands zero-padded to a power of two, the image
  mirror-padded bottom/right to whole blocks; each block is normalised per band with the
  reference block's mean and standard deviation before the hypercomplex statistics, and the
  result is the mean of the per-block moduli. Hypercomplex numbers follow the toolbox's
  Cayley-Dickson product (see :func:`_onion_table`).
* SAM in degrees over pixels where both spectra have non-zero norm.
* ERGAS with the 100 / r factor.
* SCC: Sobel gradient magnitudes (both directions, 1-pixel border dropped) of fused and
  reference, correlated as ``sum(a b) / sqrt(sum(a^2) sum(b^2))`` over all bands.
* D_lambda / D_s with p = q = 1 and 32-pixel windows; PAN_low for D_s is the PAN degraded
  with the sensor's PAN MTF (:func:`psdnet_qgis.core.mtf.degrade`). HQNR uses Khan's
  ``D_lambda^K = 1 - Q2n(MS, degrade(F, MS gains))``.

The last steps of ERGAS, D_lambda / D_s and (H)QNR are separate functions
(:func:`ergas_from_errors`, :func:`distortion`, :func:`qnr_from_distortions`) so that the
engine's block-sampled assessment forms them from statistics pooled over many blocks
(:func:`pooled_mean`) with the very formulas used on a whole image.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from ..errors import PSDNetInputError
from . import mtf

log = logging.getLogger(__name__)

BLOCK = 32


# ------------------------------------------------------------------------------ helpers
def _chw(x: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise PSDNetInputError(f"{name} has shape {a.shape}; pass a (C, H, W) or (H, W) array.")
    return a


def _pair(fused: np.ndarray, ref: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    f, r = _chw(fused, f"{what}: fused"), _chw(ref, f"{what}: reference")
    if f.shape != r.shape:
        raise PSDNetInputError(
            f"{what}: fused {f.shape} and reference {r.shape} differ in shape; compare images on the same grid."
        )
    return f, r


def _window_sums_1d(x: np.ndarray, block: int) -> np.ndarray:
    """Sums of ``block`` consecutive values along the last axis (valid positions)."""
    c = np.empty(x.shape[:-1] + (x.shape[-1] + 1,), dtype=np.float64)
    c[..., 0] = 0.0
    np.cumsum(x, axis=-1, out=c[..., 1:])
    return c[..., block:] - c[..., :-block]


def _box_sums_t(x: np.ndarray, block: int) -> np.ndarray:
    """Sums over all block x block windows of the last two axes, returned TRANSPOSED
    (..., W - block + 1, H - block + 1): cumulative sums along the contiguous axis only,
    which numpy does several times faster than along a strided one."""
    rows = _window_sums_1d(x, block)
    return _window_sums_1d(np.ascontiguousarray(np.swapaxes(rows, -1, -2)), block)


class _Moments(NamedTuple):
    """Windowed first/second moments of a stack of images (..., H, W), float64.

    ``xc`` is the data centred on a per-image constant ``c``: the windowed
    ``N * sum(x^2) - sum(x)^2`` computed from centred data does not cancel catastrophically
    on bright flat areas. ``s``, ``ss``: window sums of ``xc`` and ``xc^2`` (transposed
    layout, see :func:`_box_sums_t`). ``tot1``, ``tot2``: image totals of ``|xc|`` and
    ``xc^2``, which bound the rounding error of any window sum.
    """

    xc: np.ndarray
    c: np.ndarray
    s: np.ndarray
    ss: np.ndarray
    tot1: np.ndarray
    tot2: np.ndarray


def _moments(x: np.ndarray, block: int) -> _Moments:
    c = x.mean(axis=(-2, -1), keepdims=True)
    xc = x - c
    sq = xc * xc
    return _Moments(xc, c, _box_sums_t(xc, block), _box_sums_t(sq, block),
                    np.abs(xc).sum(axis=(-2, -1), keepdims=True), sq.sum(axis=(-2, -1), keepdims=True))


def _uiqi_from_moments(mx: _Moments, my: _Moments, block: int) -> np.ndarray:
    """Mean over sliding windows of the UIQI, per leading index (broadcasting mx / my).

    Degenerate windows follow Wang & Bovik: flat and equal means -> 1, flat -> mean term
    only, zero mean -> variance term only.
    """
    n = float(block * block)
    sx, sy = mx.s, my.s
    # All terms carry the same factor N^2 (N-1)/N relative to the statistics, which cancels.
    cov = _box_sums_t(mx.xc * my.xc, block)
    cov *= n
    cov -= sx * sy
    var_sum = n * (mx.ss + my.ss) - sx * sx - sy * sy
    ux = sx + n * mx.c                                   # window sums of the original data
    uy = sy + n * my.c
    mean_prod = ux * uy
    mean_sq = ux * ux + uy * uy
    with np.errstate(divide="ignore", invalid="ignore"):
        q = 4.0 * cov * mean_prod / (var_sum * mean_sq)
    eps = 64.0 * np.finfo(np.float64).eps
    tot1, tot2 = mx.tot1 + my.tot1, mx.tot2 + my.tot2
    flat = np.abs(var_sum) <= eps * n * tot2 + eps * tot1 * tot1
    dark = mean_sq <= (eps * (tot1 + n * (np.abs(mx.c) + np.abs(my.c)))) ** 2
    bad = flat | dark
    if bad.any():
        fl, dk = flat[bad], dark[bad]
        with np.errstate(divide="ignore", invalid="ignore"):
            qb = np.where(fl, 2.0 * mean_prod[bad] / mean_sq[bad], 2.0 * cov[bad] / var_sum[bad])
        q[bad] = np.where(fl & dk, 1.0, qb)
    return q.mean(axis=(-2, -1))


def _uiqi_map_mean(x: np.ndarray, y: np.ndarray, block: int) -> np.ndarray:
    """Mean over sliding block x block windows of the UIQI of x and y, per leading index.

    x, y: (..., H, W) float64. Returns (...,).
    """
    block = min(block, x.shape[-2], x.shape[-1])
    return _uiqi_from_moments(_moments(x, block), _moments(y, block), block)


def _uiqi_pairs(x: np.ndarray, block: int) -> np.ndarray:
    """UIQI of every band pair i < j of x (C, H, W), in ``np.triu_indices(C, 1)`` order.
    Per-band moments are computed once and reused by every pair."""
    block = min(block, x.shape[-2], x.shape[-1])
    m = _moments(x, block)
    out = []
    for i, j in zip(*np.triu_indices(x.shape[0], 1), strict=True):
        pick = lambda k: _Moments(*(a[k] for a in m))  # noqa: E731
        out.append(_uiqi_from_moments(pick(i), pick(j), block))
    return np.array(out)


def _uiqi_with_one(x: np.ndarray, ref: np.ndarray, block: int) -> np.ndarray:
    """UIQI of each band of x (C, H, W) with the single image ref (H, W)."""
    block = min(block, x.shape[-2], x.shape[-1])
    mr = _moments(ref, block)
    mx = _moments(x, block)
    return np.array([_uiqi_from_moments(_Moments(*(a[b] for a in mx)), mr, block) for b in range(x.shape[0])])


# ------------------------------------------------------------------------------ Q, Q2n
def q_index(fused: np.ndarray, ref: np.ndarray, block: int = BLOCK) -> float:
    """Universal image quality index, per band on sliding 32 x 32 windows, mean over bands.

    Args:
        fused, ref: (C, H, W) or (H, W) arrays of the same shape.
        block: Window side (clamped to the image size).

    Returns:
        Q in [-1, 1]; 1 is perfect.
    """
    f, r = _pair(fused, ref, "q_index")
    return float(np.mean(_uiqi_map_mean(r, f, block)))


@lru_cache(maxsize=8)
def _onion_table(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Multiplication table of the toolbox's 2^k-dimensional hypercomplex algebra.

    Product rule, on halves ``x = (a, b)``, ``y = (c, d)``:
    ``x y = (a c - conj(d) b, conj(a) conj(d) + c conj(b))``, the complex product for n = 2,
    and the real product for n = 1. It is bilinear, so it is fully described by
    ``e_i e_j = sign[i, j] e_idx[i, j]``, built here by multiplying basis vectors.

    Returns:
        (idx, sign): (n, n) int and float arrays.
    """

    def conj(v: np.ndarray) -> np.ndarray:
        w = v.copy()
        w[1:] = -w[1:]
        return w

    def mult(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        m = x.size
        if m == 1:
            return x * y
        h = m // 2
        a, b, c, d = x[:h], x[h:], y[:h], y[h:]
        if m == 2:
            return np.array([a[0] * c[0] - d[0] * b[0], a[0] * d[0] + c[0] * b[0]])
        return np.concatenate([mult(a, c) - mult(conj(d), b), mult(conj(a), conj(d)) + mult(c, conj(b))])

    eye = np.eye(n)
    idx = np.zeros((n, n), dtype=np.int64)
    sign = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            p = mult(eye[i], eye[j])
            k = int(np.argmax(np.abs(p)))
            idx[i, j], sign[i, j] = k, p[k]
    return idx, sign


def _onion_mult(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Hypercomplex product along axis 0 (components), broadcasting the other axes."""
    n = x.shape[0]
    idx, sign = _onion_table(n)
    out = np.zeros(np.broadcast_shapes(x.shape, y.shape), dtype=np.float64)
    for i in range(n):
        for j in range(n):
            out[idx[i, j]] += sign[i, j] * (x[i] * y[j])
    return out


def _q2n_blocks(ref: np.ndarray, fus: np.ndarray) -> np.ndarray:
    """Per-block Q2n modulus. ref, fus: (N, B, P) (components, blocks, pixels), float64."""
    n_pix = ref.shape[2]
    k = n_pix / (n_pix - 1.0)
    mean = ref.mean(axis=2, keepdims=True)
    std = ref.std(axis=2, ddof=1, keepdims=True)
    std = np.where(std == 0, np.finfo(np.float64).eps, std)
    zero_mean = mean == 0
    # Both blocks normalised with the reference block's statistics (a zero band, e.g. the
    # power-of-two padding, is only shifted by 1 on the fused side, as in the toolbox).
    x = (ref - mean) / std + 1.0
    y = np.where(zero_mean, fus - mean + 1.0, (fus - mean) / std + 1.0)
    y[1:] = -y[1:]  # conjugate
    m1, m2 = x.mean(axis=2), y.mean(axis=2)                      # (N, B)
    sq_m1, sq_m2 = (m1 ** 2).sum(0), (m2 ** 2).sum(0)            # |m|^2
    power = k * ((x ** 2).sum(0).mean(1) + (y ** 2).sum(0).mean(1))
    var_sum = power - k * (sq_m1 + sq_m2)                        # sigma_x^2 + sigma_y^2
    mean_bias = 2.0 * np.sqrt(sq_m1 * sq_m2) / (sq_m1 + sq_m2)
    qv = k * _onion_mult(x, y).mean(axis=2) - k * _onion_mult(m1, m2)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.sqrt((qv ** 2).sum(0)) * mean_bias * 2.0 / var_sum
    # Flat blocks (both variances zero, up to rounding): only the mean term is defined.
    flat = np.abs(var_sum) <= 1e-12 * power
    return np.where(flat, mean_bias, q)


def q2n(fused: np.ndarray, ref: np.ndarray, block: int = BLOCK, shift: int = BLOCK,
        dn_scale: float = 1.0) -> float:
    """Hypercomplex quality index Q2n (Q4 for 4 bands, Q8 for 8 bands).

    Args:
        fused, ref: (C, H, W) arrays on the digital-number scale (they are rounded to
            integers, as the reference implementation does; pass ``dn_scale`` to bring
            reflectances in [0, 1] to DN first, e.g. 10000).
        block: Block side.
        shift: Block step.
        dn_scale: Factor applied before the integer cast.

    Returns:
        Q2n in [0, 1]; 1 is perfect.
    """
    f, r = _pair(fused, ref, "q2n")
    c, h, w = r.shape
    if float(np.max(np.abs(r))) * dn_scale <= 2.0:
        log.warning("q2n: reference values are <= 2 after dn_scale=%s; the integer cast makes Q2n "
                    "meaningless on reflectances, pass dn_scale (e.g. 10000).", dn_scale)
    # Mirror-pad bottom/right so the blocks tile the image.
    steps_y, steps_x = -(-h // shift), -(-w // shift)
    ey, ex = max((steps_y - 1) * shift + block - h, 0), max((steps_x - 1) * shift + block - w, 0)
    to_dn = lambda a: np.clip(np.floor(a * dn_scale + 0.5), 0, 65535)  # noqa: E731 (uint16 cast)
    r, f = to_dn(r), to_dn(f)
    if ey or ex:
        r = np.pad(r, ((0, 0), (0, ey), (0, ex)), mode="symmetric")
        f = np.pad(f, ((0, 0), (0, ey), (0, ex)), mode="symmetric")
    n = 1 << int(np.ceil(np.log2(c))) if c > 1 else 1
    if n != c:
        zeros = np.zeros((n - c,) + r.shape[1:])
        r, f = np.concatenate([r, zeros]), np.concatenate([f, zeros])

    # Gather blocks: (N, B, P). With shift == block this is a reshape; otherwise strided views.
    win = np.lib.stride_tricks.sliding_window_view
    rb = win(r, (block, block), axis=(1, 2))[:, ::shift, ::shift][:, :steps_y, :steps_x]  # type: ignore[call-overload]
    fb = win(f, (block, block), axis=(1, 2))[:, ::shift, ::shift][:, :steps_y, :steps_x]  # type: ignore[call-overload]
    rb = rb.reshape(n, -1, block * block)
    fb = fb.reshape(n, -1, block * block)
    vals = np.concatenate([_q2n_blocks(rb[:, s:s + 256], fb[:, s:s + 256])
                           for s in range(0, rb.shape[1], 256)])  # chunks bound the memory
    return float(np.mean(vals))


# ------------------------------------------------------------------------------ SAM, ERGAS, SCC
def sam(fused: np.ndarray, ref: np.ndarray) -> float:
    """Mean spectral angle in degrees (0 is perfect) over pixels with non-zero norms.

    Args:
        fused, ref: (C, H, W) arrays of the same shape.
    """
    f, r = _pair(fused, ref, "sam")
    dot = (f * r).sum(0)
    norm = np.sqrt((f * f).sum(0) * (r * r).sum(0))
    valid = norm > 0
    if not np.any(valid):
        return 0.0
    cos = np.clip(dot[valid] / norm[valid], -1.0, 1.0)
    return float(np.degrees(np.mean(np.arccos(cos))))


def ergas(fused: np.ndarray, ref: np.ndarray, ratio: int) -> float:
    """ERGAS = 100 / r * sqrt(mean_b(MSE_b / mean(ref_b)^2)); 0 is perfect.

    Args:
        fused, ref: (C, H, W) arrays of the same shape.
        ratio: PAN/MS resolution ratio r.
    """
    f, r = _pair(fused, ref, "ergas")
    mse = ((f - r) ** 2).mean(axis=(1, 2))
    mu = r.mean(axis=(1, 2))
    if np.any(mu ** 2 == 0):
        raise PSDNetInputError("ergas: a reference band has zero mean; ERGAS is undefined for it.")
    return ergas_from_errors(mse, mu, ratio)


def ergas_from_errors(mse: np.ndarray, ref_mean: np.ndarray, ratio: int) -> float:
    """ERGAS from per-band mean squared errors and reference means (inf / nan for a zero mean).

    Args:
        mse: (C,) mean squared error of each band.
        ref_mean: (C,) mean of each reference band.
        ratio: PAN/MS resolution ratio r.
    """
    return float(100.0 / ratio * np.sqrt(np.mean(mse / ref_mean ** 2)))


def _sobel_magnitude(x: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (C, H-2, W-2) Sobel gradient magnitude on the valid interior."""
    sm_y = x[:, :-2] + 2 * x[:, 1:-1] + x[:, 2:]      # smoothing across rows
    gx = sm_y[:, :, 2:] - sm_y[:, :, :-2]
    sm_x = x[:, :, :-2] + 2 * x[:, :, 1:-1] + x[:, :, 2:]
    gy = sm_x[:, 2:] - sm_x[:, :-2]
    return np.sqrt(gx * gx + gy * gy)


def scc(fused: np.ndarray, ref: np.ndarray) -> float:
    """Spatial correlation coefficient of Sobel details; 1 is perfect.

    Args:
        fused, ref: (C, H, W) arrays of the same shape, H, W >= 3.
    """
    f, r = _pair(fused, ref, "scc")
    if min(f.shape[1:]) < 3:
        raise PSDNetInputError(f"scc: images of {f.shape[1]} x {f.shape[2]} px are too small (need 3 x 3).")
    a, b = _sobel_magnitude(f), _sobel_magnitude(r)
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float(np.array_equal(a, b))


# ------------------------------------------------------------------------------ no reference
def _pan_chw(pan: np.ndarray) -> np.ndarray:
    p = _chw(pan, "pan")
    if p.shape[0] != 1:
        raise PSDNetInputError(f"pan has {p.shape[0]} bands; pass a single band (H, W) or (1, H, W).")
    return p


def _check_full(fused: np.ndarray, ms: np.ndarray, ratio: int) -> tuple[np.ndarray, np.ndarray]:
    f, m = _chw(fused, "fused"), _chw(ms, "ms")
    if f.shape[0] != m.shape[0] or f.shape[1] != m.shape[1] * ratio or f.shape[2] != m.shape[2] * ratio:
        raise PSDNetInputError(
            f"fused {f.shape} is not ms {m.shape} upscaled by ratio {ratio}; crop both to the same footprint."
        )
    return f, m


def d_lambda(fused: np.ndarray, ms: np.ndarray, block: int = BLOCK, p: int = 1) -> float:
    """Spectral distortion: mean over band pairs of |Q(F_i, F_j) - Q(MS_i, MS_j)|^p, ^(1/p).

    Args:
        fused: (C, H, W) fused image.
        ms: (C, h, w) original MS.
        block: UIQI window on each image's own grid.
        p: Exponent.

    Returns:
        D_lambda >= 0; 0 is perfect.
    """
    f, m = _chw(fused, "fused"), _chw(ms, "ms")
    c = f.shape[0]
    if c != m.shape[0]:
        raise PSDNetInputError(f"d_lambda: fused has {c} bands, ms {m.shape[0]}; they must match.")
    if c < 2:
        return 0.0
    qf = _uiqi_pairs(f, block)
    qm = _uiqi_pairs(m, block)
    return distortion(qf, qm, p)


def distortion(q_fused: np.ndarray, q_ms: np.ndarray, p: int = 1) -> float:
    """``mean(|q_fused - q_ms|^p)^(1/p)``: D_lambda of band-pair Q values, D_s of band-PAN ones.

    Args:
        q_fused: Q values on the fused scale (per band pair, or per band with the PAN).
        q_ms: the matching Q values on the MS scale.
        p: Exponent.

    Returns:
        The distortion (>= 0; 0 is perfect), 0.0 when there are no values (one band).
    """
    if np.size(q_fused) == 0:
        return 0.0
    return float(np.mean(np.abs(q_fused - q_ms) ** p) ** (1.0 / p))


def d_s(fused: np.ndarray, ms: np.ndarray, pan: np.ndarray, ratio: int, sensor: str | None = None,
        block: int = BLOCK, q: int = 1) -> float:
    """Spatial distortion: mean over bands of |Q(F_b, PAN) - Q(MS_b, PAN_low)|^q, ^(1/q).

    Args:
        fused: (C, H, W); ms: (C, h, w); pan: (H, W) or (1, H, W); H = h * ratio.
        ratio: PAN/MS ratio.
        sensor: Sensor name for the PAN MTF gain (``mtf.gnyq_for``; None = 0.15).
        block: UIQI window.
        q: Exponent.
    """
    f, m = _check_full(fused, ms, ratio)
    p = _pan_chw(pan)
    if p.shape[1:] != f.shape[1:]:
        raise PSDNetInputError(f"d_s: pan {p.shape} and fused {f.shape} must share the PAN grid.")
    pan_gain = mtf.gnyq_for(sensor, m.shape[0]).pan
    pan_low = mtf.degrade(p, pan_gain, ratio).astype(np.float64)
    qh = _uiqi_with_one(f, p[0], block)
    ql = _uiqi_with_one(m, pan_low[0], block)
    return distortion(qh, ql, q)


def qnr(fused: np.ndarray, ms: np.ndarray, pan: np.ndarray, ratio: int, sensor: str | None = None) -> float:
    """QNR = (1 - D_lambda)(1 - D_s); 1 is perfect. Shapes as :func:`d_s`."""
    return qnr_from_distortions(d_lambda(fused, ms), d_s(fused, ms, pan, ratio, sensor))


def qnr_from_distortions(d_spectral: float, d_spatial: float) -> float:
    """``(1 - d_spectral)(1 - d_spatial)``: QNR from D_lambda, HQNR from D_lambda^K; with D_s."""
    return (1.0 - d_spectral) * (1.0 - d_spatial)


def d_lambda_khan(fused: np.ndarray, ms: np.ndarray, ratio: int, sensor: str | None = None,
                  dn_scale: float = 1.0) -> float:
    """Khan's spectral distortion 1 - Q2n(MS, MTF-filtered and decimated fused)."""
    f, m = _check_full(fused, ms, ratio)
    gains = mtf.gnyq_for(sensor, m.shape[0]).ms
    return 1.0 - q2n(mtf.degrade(f, gains, ratio), m, dn_scale=dn_scale)


def hqnr(fused: np.ndarray, ms: np.ndarray, pan: np.ndarray, ratio: int, sensor: str | None = None,
         dn_scale: float = 1.0) -> float:
    """Hybrid QNR = (1 - D_lambda^K)(1 - D_s); 1 is perfect. Shapes as :func:`d_s`."""
    return qnr_from_distortions(d_lambda_khan(fused, ms, ratio, sensor, dn_scale),
                                d_s(fused, ms, pan, ratio, sensor))


# ------------------------------------------------------------------------------ bundles
def reduced_resolution_metrics(fused: np.ndarray, ref: np.ndarray, ratio: int,
                               dn_scale: float = 1.0) -> dict[str, Any]:
    """Wald-protocol metrics of a fused image against its reference.

    Args:
        fused, ref: (C, H, W) on the same grid (DN scale for Q2n, see :func:`q2n`).
        ratio: Resolution ratio of the protocol.

    Returns:
        ``{"Q2n", "Q", "SAM", "ERGAS", "SCC"}`` floats.
    """
    f, r = _pair(fused, ref, "reduced_resolution_metrics")
    return {
        "Q2n": q2n(f, r, dn_scale=dn_scale),
        "Q": q_index(f, r),
        "SAM": sam(f, r),
        "ERGAS": ergas(f, r, ratio),
        "SCC": scc(f, r),
    }


def full_resolution_metrics(fused: np.ndarray, ms: np.ndarray, pan: np.ndarray, ratio: int,
                            sensor: str | None = None, dn_scale: float = 1.0) -> dict[str, Any]:
    """No-reference metrics of a fused image.

    Args:
        fused: (C, H, W); ms: (C, h, w); pan: (H, W) or (1, H, W); H = h * ratio.
        ratio: PAN/MS ratio.
        sensor: Sensor name for the MTF gains (None = unknown).

    Returns:
        ``{"D_lambda", "D_s", "QNR", "D_lambda_K", "HQNR"}`` floats.
    """
    f, m = _check_full(fused, ms, ratio)
    dl = d_lambda(f, m)
    ds = d_s(f, m, pan, ratio, sensor)
    dk = d_lambda_khan(f, m, ratio, sensor, dn_scale)
    return {"D_lambda": dl, "D_s": ds, "QNR": qnr_from_distortions(dl, ds), "D_lambda_K": dk,
            "HQNR": qnr_from_distortions(dk, ds)}


# ------------------------------------------------------------------------------ pooling
def pooled_mean(values: Sequence[tuple[Any, int]]) -> Any:
    """Sample-count-weighted mean of per-block statistics (scalars or arrays), float64.

    Block statistics are pooled this way *before* the non-linear last step of a metric
    (:func:`ergas_from_errors`, :func:`distortion`): averaging per-block metric values
    instead would add up the blocks' random deviations (mean |x| >= |mean x|).

    Args:
        values: (statistic, number of samples it averages) per block.

    Returns:
        The pooled statistic (a float64 scalar or array, as the statistics), or None when
        ``values`` is empty.
    """
    if not values:
        return None
    total = float(sum(n for _, n in values))
    return sum(n * np.asarray(v, dtype=np.float64) for v, n in values) / total
