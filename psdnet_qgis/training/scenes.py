"""The real PAN + MS scenes used to train and validate the bundled models.

Reads each scene from the shared data folder (``../shared/data`` beside the repository
by default, see ``data/PROVENANCE.md`` there) into aligned numpy arrays, through the
engine's one georeferencing path (``engine.raster.open_inputs``), so training sees a scene
on exactly the grid a user's run of the same files would use:

- the output grid is the PAN grid cropped to the PAN / MS footprint intersection, with a
  size that is a multiple of the ratio;
- the MS is read *by georeference* onto the grid of pixel size ``ratio * PAN pixel``
  whose corners coincide with the PAN crop's corners (the project's geometry
  convention: MS pixel (i, j) covers PAN pixels [i*r, (i+1)*r) x [j*r, (j+1)*r)).
  When the stored MS grid is already that grid (``core.grid.ALIGN_TOLERANCE_PX``) it is
  read as is; otherwise (Landsat half-PAN-pixel offsets, the resampled Pamplona and 0.5 m
  scenes) it is read through the engine's cubic warped VRT (``engine.raster.warp_onto_grid``);
- what the engine does not know about a scene is added here, on an in-memory VRT of the
  MS that the engine then opens: several single-band MS files stacked (Virginia), the bands
  selected and reordered to the model's band order (Blue, Green, Red[, NIR]), and a
  scene-level no-data value.

Band-order conclusions (checked on the data):

- Madrid: tags say R, G, B; the PAN (OLI 0.50-0.68 um, no blue) correlates least with
  band 3 (0.896 vs 0.975 / 0.982) and band 1 has the largest spread: R, G, B -> use 3, 2, 1.
- Pamplona: tutorial says R, G, B, NIR; band 3 correlates least with PAN (0.903), band 4
  is NIR (0.29): use 3, 2, 1.
- Istanbul: band 1 correlates least with PAN (0.939 vs 0.978 / 0.978), has the highest
  mean and the lowest spread (haze in blue): already B, G, R.
- Virginia: separate files B2, B3, B4 (README) = B, G, R.
- Shanghai WV-3 8 bands: 2, 3, 5, 7 = Blue, Green, Red, NIR1.
- Rotterdam WV-2 4 bands and the 0.5 m scene: B, G, R, NIR (the 0.5 m scene: band 1 has
  the lowest spread, band 2 the highest mean as WV green does; sensor unknown).

Co-registration measured after alignment (block-averaged PAN vs MS band mean, best
integer PAN-pixel roll): Shanghai 0.874 -> 0.935 at 2 PAN px along rows (a real 0.5 MS px
misregistration of the product; moving by whole MS pixels cannot reduce it, so it is left);
Rotterdam 1/2/3 0.92/0.96/0.98 -> best at 1 px; 0.5 m scene, Madrid, Istanbul: best at 0;
Pamplona 0.919 -> 0.981 at (1, -1) px; Virginia 0.002: its PAN is another place or date
(excluded from training).

GDAL is imported only inside :func:`load_scene` (the catalogue is plain data).
"""

from __future__ import annotations

import logging
import math
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from psdnet_qgis.errors import PSDNetInputError

LOG = logging.getLogger(__name__)

SPACENET_LICENCE = "CC BY-SA 4.0 (SpaceNet; imagery by Maxar)"
LANDSAT_LICENCE = "Public domain (USGS Landsat)"


@dataclass(frozen=True)
class SceneSpec:
    """One PAN + MS scene of the shared data folder.

    Attributes:
        name: short identifier.
        folder: folder name under the data directory.
        pan: PAN file name (band 1 is used).
        ms: MS file name(s); several single-band files are stacked in this order.
        bands: 1-based bands of the (stacked) MS, in the model's band order.
        band_names: names of the selected bands.
        sensor: key of ``core.mtf.SENSORS`` used for the MTF gains.
        ratio: PAN / MS resolution ratio.
        nodata: value marking no-data in PAN and MS (None: only NaN / declared nodata).
        licence: licence of the imagery as far as known.
        source: where the files came from (PROVENANCE.md).
    """

    name: str
    folder: str
    pan: str
    ms: tuple[str, ...]
    bands: tuple[int, ...]
    band_names: tuple[str, ...]
    sensor: str
    ratio: int
    nodata: float | None
    licence: str
    source: str


@dataclass
class Scene:
    """An aligned scene.

    Attributes:
        spec: the scene's specification.
        ms: (C, h, w) float32, invalid pixels set to 0.
        pan: (1, H, W) float32, H = h * ratio, invalid pixels set to 0.
        ms_valid: (h, w) bool, all bands valid.
        pan_valid: (H, W) bool.
        meta: geotransform, CRS, whether the MS was resampled, file paths.
    """

    spec: SceneSpec
    ms: np.ndarray
    pan: np.ndarray
    ms_valid: np.ndarray
    pan_valid: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


_S2 = "spacenet2_shanghai_wv3_torchsat"
_S6 = "spacenet6_rotterdam_wv2_solaris"
_BGRN = ("blue", "green", "red", "nir")
_BGR = ("blue", "green", "red")

SCENES: dict[str, SceneSpec] = {
    "shanghai_wv3": SceneSpec(
        "shanghai_wv3", _S2, "PAN_AOI_4_Shanghai_img1920.tif", ("MUL_AOI_4_Shanghai_img1920.tif",),
        (2, 3, 5, 7), _BGRN, "WorldView-3", 4, None, SPACENET_LICENCE,
        "SpaceNet 2 AOI_4_Shanghai tile via github sshuair/torchsat@a7372125e290"),
    **{
        f"rotterdam{i}_wv2": SceneSpec(
            f"rotterdam{i}_wv2", _S6, f"pan{i}.tif", (f"ms{i}_native2m_derived.tif",),
            (1, 2, 3, 4), _BGRN, "WorldView-2", 4, 0.0, SPACENET_LICENCE,
            "SpaceNet 6 AOI_11_Rotterdam tile via github CosmiQ/solaris@5315390942e0 "
            "(MS = stored 1 m MS decimated back to its native 2 m)")
        for i in (1, 2, 3)
    },
    "osman_vhr": SceneSpec(
        "osman_vhr", "osman_toolkit_vhr_0p5m", "pan.tif", ("ms.tif",), (1, 2, 3, 4), _BGRN,
        "unknown", 4, 0.0,
        "unknown: redistributed in an MIT-licensed repository, original imagery source "
        "not stated",
        "github Osman-Geomatics93/pansharpening-toolkit-@99e783c2a2cf data/"),
    "madrid_l8": SceneSpec(
        "madrid_l8", "landsat_madrid_rupesh", "landsat_pan.tif", ("landsat_multi.tif",),
        (3, 2, 1), _BGR, "Landsat-8/9 OLI", 2, 0.0, LANDSAT_LICENCE,
        "github Rupesh4604/Pansharpening-using-PCA-for-Satellite-Imagery-@fa3dfc6f1f32"),
    "istanbul_l8": SceneSpec(
        "istanbul_l8", "landsat_istanbul_salihtatci", "pan.tif", ("ms.tif",), (1, 2, 3), _BGR,
        "Landsat-8/9 OLI", 2, 0.0, LANDSAT_LICENCE,
        "github salihtatci/DL_pansharpening_and_classical_methods@bd8806d059a2"),
    "virginia_l9": SceneSpec(
        "virginia_l9", "landsat9_virginia_mappykk", "subset_band8_TOA.tif",
        ("subset_band2_TOA.tif", "subset_band3_TOA.tif", "subset_band4_TOA.tif"), (1, 2, 3),
        _BGR, "Landsat-8/9 OLI", 2, None, LANDSAT_LICENCE,
        "github MappyKK/Pansharpening-Brovey-PCA@3cb64090bf27 (TOA reflectance x 1e4)"),
    "pamplona_l8": SceneSpec(
        "pamplona_l8", "landsat8_pamplona_pansharpen_r", "pan_example.tif", ("ms_example.tif",),
        (3, 2, 1), _BGR, "Landsat-8/9 OLI", 2, None, LANDSAT_LICENCE,
        "github mmontesinosanmartin/pansharpen_r@c705355086f2 (rescaled to 0-1)"),
}

# Which scenes each bundled model trains and validates on. Validation scenes are never
# used for training.
MODEL_SCENES: dict[str, dict[str, tuple[str, ...]]] = {
    "vhr4": {
        "train": ("shanghai_wv3", "rotterdam1_wv2", "rotterdam3_wv2", "osman_vhr"),
        "val": ("rotterdam2_wv2",),
    },
    "landsat3": {
        # virginia_l9 is NOT used: its PAN shows a different area than its MS (no lake,
        # no clouds where the MS has both; correlation 0.00 at the georeferenced
        # position and < 0.18 at any offset), see the module docstring.
        "train": ("madrid_l8", "istanbul_l8"),
        "val": ("pamplona_l8",),
    },
}


def default_data_dir() -> Path:
    """The shared data folder: ``$PSDNET_DATA`` or ``../shared/data`` beside the repo."""
    env = os.environ.get("PSDNET_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def scenes_for(model: str, role: str, names: str = "") -> list[SceneSpec]:
    """Scene specs of a bundled model.

    Args:
        model: "vhr4" or "landsat3".
        role: "train" or "val".
        names: comma-separated ``SCENES`` names replacing the model's list (leave-one-scene-out
            experiments); they must have the model's band count and ratio.
    """
    if model not in MODEL_SCENES:
        raise PSDNetInputError(
            f"model: unknown model {model!r}; use one of {sorted(MODEL_SCENES)}")
    if role not in ("train", "val"):
        raise PSDNetInputError(f"role: {role!r} is not 'train' or 'val'")
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    if not chosen:
        return [SCENES[n] for n in MODEL_SCENES[model][role]]
    own = SCENES[MODEL_SCENES[model]["train"][0]]
    for n in chosen:
        if n not in SCENES:
            raise PSDNetInputError(f"--{role}-scenes: unknown scene {n!r}; use one of {sorted(SCENES)}")
        if (len(SCENES[n].bands), SCENES[n].ratio) != (len(own.bands), own.ratio):
            raise PSDNetInputError(
                f"--{role}-scenes: scene {n!r} has {len(SCENES[n].bands)} bands at ratio {SCENES[n].ratio}; "
                f"model {model} needs {len(own.bands)} bands at ratio {own.ratio}")
    return [SCENES[n] for n in chosen]


def _valid(a: np.ndarray, nodata: float | None) -> np.ndarray:
    ok = np.isfinite(a)
    if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
        ok &= a != nodata
    # GeoTIFF float "nodata" of -3.4e38 (Pamplona) is stored as a huge negative value.
    ok &= a > -1e30
    return ok


def _scene_paths(spec: SceneSpec, data_dir: str | os.PathLike | None) -> tuple[Path, list[Path]]:
    """The scene's PAN and MS file paths; a PSDNetInputError names a missing one."""
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    folder = root / spec.folder
    pan_path = folder / spec.pan
    ms_paths = [folder / m for m in spec.ms]
    for p in [pan_path, *ms_paths]:
        if not p.exists():
            raise PSDNetInputError(
                f"data_dir: {p} does not exist; pass --data pointing at the shared data "
                "folder (the one holding PROVENANCE.md) or set PSDNET_DATA")
    return pan_path, ms_paths


def _ms_vrt(spec: SceneSpec, ms_paths: list[Path], tag: str) -> list[str]:
    """In-memory VRT(s) of the scene's MS as the engine should see it.

    Several single-band files are stacked in order, then ``spec.bands`` are selected in the
    model's band order and ``spec.nodata`` (when set) replaces the files' declared no-data,
    so that the engine's direct read or warp treats exactly those pixels as missing.

    Returns:
        The /vsimem paths created, the last one being the MS to open (the caller unlinks them).
    """
    from osgeo import gdal

    created: list[str] = []
    src = str(ms_paths[0])
    if len(ms_paths) > 1:
        stack = f"/vsimem/psdnet_{tag}_stack.vrt"
        ds = gdal.BuildVRT(stack, [str(p) for p in ms_paths], separate=True)
        created.append(stack)
        n_bands = ds.RasterCount
        ds = None  # flush the VRT to /vsimem before it is read again
        src = stack
    else:
        n_bands = gdal.Open(src).RasterCount
    if max(spec.bands) > n_bands:
        for p in created:
            gdal.Unlink(p)
        raise PSDNetInputError(
            f"{spec.name}: bands {spec.bands} requested but the MS has {n_bands} bands")
    out = f"/vsimem/psdnet_{tag}_ms.vrt"
    opts: dict[str, Any] = {"format": "VRT", "bandList": list(spec.bands)}
    if spec.nodata is not None:
        opts["noData"] = spec.nodata
    gdal.Translate(out, src, options=gdal.TranslateOptions(**opts))
    created.append(out)
    return created


def load_scene(spec: SceneSpec, data_dir: str | os.PathLike | None = None) -> Scene:
    """Read a scene as aligned PAN + MS arrays (through ``engine.raster.open_inputs``).

    Args:
        spec: the scene.
        data_dir: the shared data folder (default: ``default_data_dir()``).

    Returns:
        ``Scene`` with ms (C, h, w), pan (1, h*r, w*r) float32 and validity masks.

    Raises:
        PSDNetInputError: a missing file, a ratio other than ``spec.ratio``, a band beyond the
            MS, or a PAN / MS overlap under 8 x 8 MS pixels.
    """
    from osgeo import gdal

    from psdnet_qgis.engine.gdalerr import gdal_errors
    from psdnet_qgis.engine.raster import open_inputs

    pan_path, ms_paths = _scene_paths(spec, data_dir)
    r = spec.ratio
    with gdal_errors():
        created = _ms_vrt(spec, ms_paths, f"{spec.name}_{uuid.uuid4().hex}")
        try:
            inputs = open_inputs(str(pan_path), created[-1])
            try:
                if inputs.ratio != r:
                    raise PSDNetInputError(
                        f"{spec.name}: the files give ratio {inputs.ratio}, the scene says {r}; "
                        "fix SceneSpec.ratio")
                H, W, h, w = inputs.height, inputs.width, inputs.ms_height, inputs.ms_width
                if W < 8 * r or H < 8 * r:
                    raise PSDNetInputError(
                        f"{spec.name}: PAN / MS footprints overlap by only {W}x{H} PAN pixels")
                pan, _ = inputs.read_pan(0, 0, H, W)
                ms, ms_valid = inputs.read_ms(0, 0, h, w)
                # The scene's no-data replaces the PAN file's; the MS VRT already carries it.
                pan_valid = _valid(pan[0], inputs.pan_nodata if spec.nodata is None else spec.nodata)
                ms_valid &= _valid(ms, None).all(axis=0)
                gt = inputs.geotransform
                meta = {
                    "pan_path": str(pan_path),
                    "ms_paths": [str(p) for p in ms_paths],
                    "crs": inputs.crs_wkt,
                    "pan_window": (inputs.pan_yoff, inputs.pan_xoff, H, W),
                    # rasterio Affine order (px, 0, x0, 0, -py, y0) of the MS working grid
                    "ms_transform": (gt[1] * r, 0.0, gt[0], 0.0, gt[5] * r, gt[3]),
                    "ms_resampled": inputs.ms_warped,
                    "warp_reason": inputs.warp_reason,
                }
            finally:
                inputs.close()
        finally:
            for p in created:
                gdal.Unlink(p)
    ms = np.ascontiguousarray(ms, dtype=np.float32)
    pan = np.ascontiguousarray(pan, dtype=np.float32)
    ms[:, ~ms_valid] = 0.0
    pan[:, ~pan_valid] = 0.0
    LOG.info("%s: PAN %dx%d, MS %dx%d (resampled=%s)", spec.name, H, W, h, w, inputs.ms_warped)
    return Scene(spec, ms, pan, ms_valid, pan_valid, meta)
