"""Enum parameters take stable string ids (saved models, scripts) and, as before, an option's position."""

from __future__ import annotations

import numpy as np
import processing
import pytest
from osgeo import gdal
from qgis.core import (
    QgsApplication,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterEnum,
    QgsProcessingParameterRasterLayer,
)
from qgis.core import QgsProcessingModelChildParameterSource as Src

from psdnet_qgis.core.registry import list_models
from psdnet_qgis.processing.classical_algorithm import METHODS

gdal.UseExceptions()

MODEL_IDS = ["auto", *(m.name for m in list_models())]
#: psdnet:pansharpen also offers "Auto (fast)" (issue 11).
PANSHARPEN_MODEL_IDS = ["auto", "auto_fast", *(m.name for m in list_models())]


def read(path) -> np.ndarray:
    return gdal.Open(str(path)).ReadAsArray()


def alg(alg_id: str):
    found = QgsApplication.processingRegistry().createAlgorithmById(alg_id)
    assert found is not None, alg_id
    return found


def test_every_enum_uses_static_strings(psdnet_provider):
    expected = {
        ("psdnet:pansharpen", "MODEL"): PANSHARPEN_MODEL_IDS,
        ("psdnet:pansharpen", "DEVICE"): ["auto", "cuda", "cpu"],
        ("psdnet:pansharpen", "OTHER_METHOD"): ["mtf_glp_fs", "mtf_glp_hpm", "gsa", "bdsd_pc"],
        ("psdnet:classical", "METHOD"): ["gsa", "mtf_glp_hpm", "brovey", "exp", "mtf_glp_fs", "bdsd_pc"],
        ("psdnet:assess", "SENSOR"): ["unknown", "QuickBird", "IKONOS", "GeoEye-1", "WorldView-2",
                                      "WorldView-3", "Pleiades", "Landsat 8/9 OLI", "auto"],
    }
    # one SENSOR list for every algorithm
    expected[("psdnet:pansharpen", "SENSOR")] = expected[("psdnet:classical", "SENSOR")] = \
        expected[("psdnet:assess", "SENSOR")]
    expected.update({("psdnet:adapt", "MODEL"): MODEL_IDS,
                     ("psdnet:adapt", "SENSOR"): expected[("psdnet:assess", "SENSOR")],
                     ("psdnet:adapt", "LOSSES"): ["both", "fullres", "wald"],
                     ("psdnet:adapt", "PART"): ["head", "all"],
                     ("psdnet:install_pytorch", "VARIANT"): ["auto", "cpu", "cuda"]})
    found = {}
    for a in psdnet_provider.algorithms():
        for d in a.parameterDefinitions():
            if isinstance(d, QgsProcessingParameterEnum):
                assert d.usesStaticStrings(), (a.id(), d.name())
                found[(a.id(), d.name())] = d.options()
    assert found == expected
    assert "psdnet_vhr4" in MODEL_IDS


def test_adapt_choices_are_the_models_settings(psdnet_provider):
    """psdnet:adapt's LOSSES / PART ids are model.adapt's (written twice: torch only when running)."""
    from psdnet_qgis.model.adapt import LOSSES, PARTS

    adapt = next(a for a in psdnet_provider.algorithms() if a.id() == "psdnet:adapt")
    options = {d.name(): d.options() for d in adapt.parameterDefinitions() if d.name() in ("LOSSES", "PART")}
    assert sorted(options["LOSSES"]) == sorted(LOSSES)
    assert sorted(options["PART"]) == sorted(PARTS)


def test_help_lists_the_ids_and_their_meaning(psdnet_provider):
    text = alg("psdnet:classical").shortHelpString()
    assert "<b>mtf_glp_hpm</b>: MTF-GLP-HPM" in text
    text = alg("psdnet:pansharpen").shortHelpString()
    assert "<b>cuda</b>" in text and "<b>psdnet_vhr4</b>" in text and "Bundled models" in text


@pytest.mark.parametrize("value", ["mtf_glp_hpm", 1, "1"])
def test_id_and_index_run_the_same_method(psdnet_provider, pair, tmp_path, value):
    pan, ms = pair
    by_id, other = tmp_path / "id.tif", tmp_path / "other.tif"
    processing.run("psdnet:classical", {"PAN": str(pan), "MS": str(ms), "METHOD": "mtf_glp_hpm",
                                        "OUTPUT": str(by_id)})
    processing.run("psdnet:classical", {"PAN": str(pan), "MS": str(ms), "METHOD": value, "OUTPUT": str(other)})
    np.testing.assert_array_equal(read(other), read(by_id))
    gsa = tmp_path / "gsa.tif"
    processing.run("psdnet:classical", {"PAN": str(pan), "MS": str(ms), "METHOD": "gsa", "OUTPUT": str(gsa)})
    assert not np.array_equal(read(gsa), read(by_id))  # the choice reached the engine


@pytest.mark.parametrize(("value", "model", "device"), [
    ({}, "auto", "auto"),
    ({"MODEL": "psdnet_vhr4", "DEVICE": "cpu"}, "psdnet_vhr4", "cpu"),
    ({"MODEL": PANSHARPEN_MODEL_IDS.index("psdnet_vhr4"), "DEVICE": 2}, "psdnet_vhr4", "cpu"),
    ({"MODEL": str(PANSHARPEN_MODEL_IDS.index("psdnet_vhr4")), "DEVICE": "1"}, "psdnet_vhr4", "cuda"),
    ({"MODEL": 0, "DEVICE": 0}, "auto", "auto"),
    ({"MODEL": "auto_fast"}, "auto_fast", "auto"),
])
def test_pansharpen_engine_arguments(psdnet_provider, pair, value, model, device):
    pan, ms = pair
    a, context = alg("psdnet:pansharpen"), QgsProcessingContext()
    params = {"PAN": str(pan), "MS": str(ms), "OUTPUT": "TEMPORARY_OUTPUT", **value}
    ok, msg = a.checkParameterValues(params, context)
    assert ok, msg
    args = a.engineArguments(params, context)
    assert (args["method"], args["model"], args["device"]) == ("psdnet", model, device)


@pytest.mark.parametrize(("value", "sensor"), [("WorldView-2", "WorldView-2"), (4, "WorldView-2"),
                                               ("unknown", "unknown"), (0, "unknown"), (None, "unknown")])
def test_assess_sensor_by_id_or_index(psdnet_provider, value, sensor):
    a = alg("psdnet:assess")
    params = {} if value is None else {"SENSOR": value}
    assert a.choiceId(params, "SENSOR", QgsProcessingContext()) == sensor


@pytest.mark.parametrize(("alg_id", "name", "value", "fragments"), [
    ("psdnet:pansharpen", "MODEL", "psdnet_vhr5",
     ["MODEL", "Model", "'psdnet_vhr5'", *MODEL_IDS]),
    ("psdnet:pansharpen", "DEVICE", "gpu", ["DEVICE", "'gpu'", "auto, cuda, cpu"]),
    ("psdnet:pansharpen", "DEVICE", 3, ["DEVICE", "no option 3", "auto, cuda, cpu"]),
    ("psdnet:classical", "METHOD", "GSA", ["METHOD", "'GSA'", "gsa, mtf_glp_hpm, brovey, exp"]),
])
def test_unknown_id_names_the_parameter_and_the_valid_ids(psdnet_provider, pair, tmp_path, zero_weights,
                                                          alg_id, name, value, fragments):
    pan, ms = pair
    out = tmp_path / "o.tif"
    params = {"PAN": str(pan), "MS": str(ms), name: value, "OUTPUT": str(out)}
    if alg_id == "psdnet:pansharpen":
        params["MODEL_FILE"] = str(zero_weights)
    with pytest.raises(QgsProcessingException) as err:
        processing.run(alg_id, params)
    msg = str(err.value)
    for f in fragments:
        assert f in msg, msg
    assert "Traceback" not in msg
    assert not out.exists()


def test_unknown_sensor_on_assess(psdnet_provider, pair, tmp_path):
    pan, ms = pair
    with pytest.raises(QgsProcessingException, match=r"SENSOR.*'Sentinel-2'.*unknown, QuickBird"):
        processing.run("psdnet:assess", {"FUSED": str(pan), "PAN": str(pan), "MS": str(ms),
                                         "SENSOR": "Sentinel-2", "OUTPUT_HTML": str(tmp_path / "r.html")})


def _classical_model(method) -> QgsProcessingModelAlgorithm:
    model = QgsProcessingModelAlgorithm("sharpen", "tests")
    for name in ("pan", "ms"):
        model.addModelParameter(QgsProcessingParameterRasterLayer(name, name), QgsProcessingModelParameter(name))
    child = QgsProcessingModelChildAlgorithm("psdnet:classical")
    child.setChildId("sharpen")
    child.addParameterSources("PAN", [Src.fromModelParameter("pan")])
    child.addParameterSources("MS", [Src.fromModelParameter("ms")])
    child.addParameterSources("METHOD", [Src.fromStaticValue(method)])
    out = QgsProcessingModelOutput("fused")
    out.setChildOutputName("OUTPUT")
    child.setModelOutputs({"fused": out})
    model.addChildAlgorithm(child)
    return model


def test_saved_model_keeps_the_method_by_id(psdnet_provider, pair, tmp_path):
    """A .model3 stores the id; reloaded, it runs the same method as the index-based call."""
    pan, ms = pair
    path = tmp_path / "sharpen.model3"
    assert _classical_model("mtf_glp_hpm").toFile(str(path))
    assert "mtf_glp_hpm" in path.read_text()
    loaded = QgsProcessingModelAlgorithm()
    assert loaded.fromFile(str(path))
    res = processing.run(loaded, {"pan": str(pan), "ms": str(ms), "sharpen:fused": str(tmp_path / "model.tif")})
    direct = tmp_path / "direct.tif"
    index = [mid for mid, _ in METHODS].index("mtf_glp_hpm")
    processing.run("psdnet:classical", {"PAN": str(pan), "MS": str(ms), "METHOD": index, "OUTPUT": str(direct)})
    np.testing.assert_array_equal(read(res["sharpen:fused"]), read(direct))


def test_classical_choices_are_the_engines_methods():
    """The dialog offers exactly the classical methods the engine and the CLI know (one list, in core)."""
    from psdnet_qgis.core.classical import METHODS as CLASSICAL
    from psdnet_qgis.engine.run import METHODS as ENGINE

    assert sorted(mid for mid, _ in METHODS) == sorted(CLASSICAL)
    assert ENGINE == ("psdnet", *CLASSICAL)


def test_device_choices_are_the_option_list(psdnet_provider):
    """psdnet:pansharpen's DEVICE ids are core.options.DEVICES, in the same order (index calls)."""
    from psdnet_qgis.core.options import DEVICES, TORCH_VARIANTS

    ids = {(a.id(), d.name()): tuple(d.options()) for a in psdnet_provider.algorithms()
           for d in a.parameterDefinitions() if d.name() in ("DEVICE", "VARIANT")}
    assert ids == {("psdnet:pansharpen", "DEVICE"): DEVICES, ("psdnet:install_pytorch", "VARIANT"): TORCH_VARIANTS}
