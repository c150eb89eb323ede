"""Scene adaptation through the one engine path (``pansharpen(..., adapt_seconds=S)``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from psdnet_qgis.engine.run import pansharpen
from psdnet_qgis.errors import PSDNetCanceled
from tests.helpers import read
from tests.rasters import make_pair

torch = pytest.importorskip("torch")

FAST = {"part": "head", "losses": "both"}


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """64 x 64 MS px (256 PAN px), 4 bands, ratio 4: four 32-px crops fit (3 train + 1 held)."""
    return make_pair(tmp_path_factory.mktemp("adapt"), ms_shape=(64, 64), bands=4, ratio=4, seed=3)


@pytest.fixture
def net():
    from psdnet_qgis.model.psdnet import PSDNet

    torch.manual_seed(0)
    return PSDNet(4, 4, width=8).eval()


class _Log:
    def __init__(self, cancel_after: int | None = None) -> None:
        self.lines: list[str] = []
        self.bar: list[float] = []
        self.polls, self.cancel_after = 0, cancel_after

    def info(self, msg: str) -> None:
        self.lines.append(msg)

    def progress(self, p: float) -> None:
        self.bar.append(p)

    def is_canceled(self) -> bool:
        self.polls += 1
        return self.cancel_after is not None and self.polls > self.cancel_after


@pytest.mark.slow
def test_adaptation_lowers_the_loss_and_keeps_the_pan_grid(scene, net, tmp_path: Path) -> None:
    pan, ms = scene
    fb = _Log()
    rep = pansharpen(str(pan), str(ms), str(tmp_path / "a.tif"), model=net, adapt_seconds=60,
                     adapt_options=dict(FAST, max_steps=15), feedback=fb)
    a = rep.adaptation
    assert a is not None and a["steps"] == 15 and a["train_crops"] == 3 and a["held_crops"] == 1
    assert a["loss_after"] < a["loss_before"]
    assert set(a["metrics_before"]) == {"D_lambda_K", "D_s", "HQNR", "SAM_consistency", "ERGAS_consistency"}
    assert read(tmp_path / "a.tif").shape == (4, 256, 256)
    assert any(line.startswith("Adaptation (head, both)") for line in fb.lines)
    assert fb.bar == sorted(fb.bar) and fb.bar[-1] == 100.0  # one bar, never going back


@pytest.mark.slow
def test_guard_keeps_the_original_when_adaptation_fails(scene, net, tmp_path: Path) -> None:
    pan, ms = scene
    plain = pansharpen(str(pan), str(ms), str(tmp_path / "plain.tif"), model=net)
    rep = pansharpen(str(pan), str(ms), str(tmp_path / "bad.tif"), model=net, adapt_seconds=60,
                     adapt_options=dict(FAST, lr=50.0, max_steps=5))  # a step this large ruins the head
    assert rep.adaptation["kept"] is False and "did not improve" in rep.adaptation["reason"]
    assert plain.adaptation is None
    np.testing.assert_array_equal(read(tmp_path / "bad.tif"), read(tmp_path / "plain.tif"))


@pytest.mark.slow
def test_a_dict_and_adapt_options_give_the_same_run(scene, net, tmp_path: Path) -> None:
    """``adapt_options`` as the plain dict of scripts written before AdaptOptions: converted once,
    at the entry, to the same AdaptOptions, which the run then uses.

    (Two adaptation runs are not compared number for number: the same options twice differ in
    the losses' last digits on Debian 13's torch, 5e-5 relative.)"""
    from psdnet_qgis.core.options import AdaptOptions

    typed = AdaptOptions(losses="fullres", max_steps=3)
    assert AdaptOptions.of({"losses": "fullres", "max_steps": 3}) == typed
    assert AdaptOptions.of(typed) is typed
    pan, ms = scene
    rep = pansharpen(str(pan), str(ms), str(tmp_path / "dict.tif"), model=net, adapt_seconds=60,
                     adapt_options={"losses": "fullres", "max_steps": 3}, calibrate=False)
    assert rep.adaptation is not None and rep.adaptation["steps"] == 3 and rep.adaptation["losses"] == "fullres"


def test_cancel_during_adaptation_leaves_no_output(scene, net, tmp_path: Path) -> None:
    pan, ms = scene
    out = tmp_path / "c.tif"
    with pytest.raises(PSDNetCanceled):
        pansharpen(str(pan), str(ms), str(out), model=net, adapt_seconds=60,
                   adapt_options=dict(FAST, max_steps=50), feedback=_Log(cancel_after=3))
    assert not out.exists()


@pytest.mark.slow
def test_budget_is_honoured_within_one_step(scene, net, tmp_path: Path) -> None:
    pan, ms = scene
    budget = 2.0
    rep = pansharpen(str(pan), str(ms), str(tmp_path / "b.tif"), model=net, adapt_seconds=budget,
                     adapt_options=FAST)
    a = rep.adaptation
    assert a["steps"] >= 1
    # the loop stops when the next step would pass the budget (one step always runs, even when
    # reading the crops took it all); the final fp16 rounding and loss evaluation are one
    # forward pass at most
    assert a["seconds"] <= max(budget, a["prepare_seconds"]) + 2 * a["max_step_seconds"] + 0.5, a


@pytest.mark.slow
def test_adapted_weights_load_and_reproduce_the_adapted_run(scene, net, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from psdnet_qgis.engine import adaptation
    from psdnet_qgis.engine.adapt_scene import adapt_scene
    from psdnet_qgis.model.weights import load_model, sha256_file

    # What is tested here is saving and reusing an adapted copy, so the whole-scene check (tested
    # below) is told to keep it: 8 steps of a random narrow network do not pass it on this scene.
    monkeypatch.setattr(adaptation, "scene_check", lambda *a, **k: (True, "kept for this test", {}, {}))
    pan, ms = scene
    opts = dict(FAST, max_steps=8)
    meta = adapt_scene(str(pan), str(ms), str(tmp_path / "mine.pt"), model=net, seconds=60, adapt_options=opts)
    assert meta["sha256"] == sha256_file(tmp_path / "mine.pt")
    assert meta["adaptation"]["losses"] == "both" and meta["adaptation"]["budget_seconds"] == 60
    assert {"base_model", "adapted_on", "sensor"} <= set(meta)
    load_model(tmp_path / "mine.pt")  # sha256 checked
    pansharpen(str(pan), str(ms), str(tmp_path / "adapted.tif"), model=net, adapt_seconds=60, adapt_options=opts)
    pansharpen(str(pan), str(ms), str(tmp_path / "reused.tif"), model=str(tmp_path / "mine.pt"))
    np.testing.assert_array_equal(read(tmp_path / "reused.tif"), read(tmp_path / "adapted.tif"))


def test_whole_scene_check_rejects_a_copy_made_worse_on_purpose(scene) -> None:
    """The scene check compares the two networks on windows spread over the whole scene."""
    import copy

    from psdnet_qgis.core.radiometry import Normalizer
    from psdnet_qgis.engine.adaptation import check_windows, scene_check
    from psdnet_qgis.engine.raster import open_inputs
    from psdnet_qgis.model.psdnet import PSDNet

    torch.manual_seed(0)
    good = PSDNet(4, 4, width=8).zero_residual_().eval()  # the upsampled MS: no distortion added
    bad = copy.deepcopy(good)
    with torch.no_grad():
        bad.head3.last.bias.copy_(torch.tensor([0.4, -0.4, 0.3, -0.3]))  # a colour cast everywhere
    inputs = open_inputs(str(scene[0]), str(scene[1]))
    try:
        norm = Normalizer.from_arrays(*inputs.read_sample())
        assert len(check_windows(inputs)) >= 1
        keep, reason, before, after = scene_check(inputs, good, bad, norm, None)
        assert not keep and "got worse" in reason
        assert after["ERGAS_reduced"] > before["ERGAS_reduced"] and after["HQNR"] < before["HQNR"]
        keep, reason, _, _ = scene_check(inputs, good, copy.deepcopy(good), norm, None)
        assert keep, reason  # equal is not worse
    finally:
        inputs.close()


def test_whole_scene_check_keeps_the_original_when_reduced_resolution_cannot_be_judged(tmp_path: Path) -> None:
    """28 x 28 MS px at ratio 4: full-resolution windows fit, a Wald pair (8 MS px degraded) does not."""
    import copy

    from psdnet_qgis.core.radiometry import Normalizer
    from psdnet_qgis.engine.adaptation import check_windows, scene_check
    from psdnet_qgis.engine.raster import open_inputs
    from psdnet_qgis.model.psdnet import PSDNet

    pan, ms = make_pair(tmp_path, ms_shape=(28, 28), bands=4, ratio=4, seed=5)
    torch.manual_seed(0)
    good = PSDNet(4, 4, width=8).zero_residual_().eval()
    inputs = open_inputs(str(pan), str(ms))
    try:
        norm = Normalizer.from_arrays(*inputs.read_sample())
        assert check_windows(inputs)
        keep, reason, before, after = scene_check(inputs, good, copy.deepcopy(good), norm, None)
        assert not keep and "too small to check the adapted model at reduced resolution" in reason
        assert "needs 32" in reason and before == {} and after == {}
    finally:
        inputs.close()


def test_calibrated_scene_check_judges_what_the_run_writes(scene, tmp_path: Path) -> None:
    """With calibration on, each network is judged calibrated on the scene, consistency step
    included: the judged predictor writes what the run writes; a colour cast (which the step
    takes back) changes nothing; a copy whose detail is noise is refused; an identical copy is
    kept; the reduced-resolution scores are those of the calibration scored out of sample."""
    import copy

    from psdnet_qgis.engine.adaptation import scene_check
    from psdnet_qgis.engine.feedback import NullFeedback
    from psdnet_qgis.engine.fusion import CalibratedJudge, scene_model
    from psdnet_qgis.engine.raster import open_inputs
    from psdnet_qgis.model.psdnet import PSDNet

    torch.manual_seed(0)
    good = PSDNet(4, 4, width=8).zero_residual_().eval()
    cast, noisy = copy.deepcopy(good), copy.deepcopy(good)
    with torch.no_grad():
        cast.head3.last.bias.copy_(torch.tensor([0.4, -0.4, 0.3, -0.3]))
        weight = noisy.head3.last.weight
        weight.copy_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(1)))
    pansharpen(str(scene[0]), str(scene[1]), str(tmp_path / "run.tif"), model=good)
    inputs = open_inputs(str(scene[0]), str(scene[1]))
    try:
        sm = scene_model(inputs, "psdnet", good, None, NullFeedback())
        judge = CalibratedJudge(inputs, sm, "cpu", None, "fp32", NullFeedback())
        predictor = judge(good)[0]
        assert predictor.consistency is not None  # the run's step
        ms, _ = inputs.read_ms(0, 0, inputs.ms_height, inputs.ms_width)
        pan, _ = inputs.read_pan(0, 0, inputs.height, inputs.width)
        norm = sm.normalizer
        judged = norm.denorm_ms(predictor.predict(norm.norm_ms(ms)[None], norm.norm_pan(pan)[None])[0])
        written = read(tmp_path / "run.tif").astype(np.float64)
        inner = (slice(None), slice(16, -16), slice(16, -16))  # the judge reads windows without a margin
        np.testing.assert_allclose(np.clip(np.round(judged), 0, 65535)[inner], written[inner], atol=1.0)

        _, _, before, after = scene_check(inputs, good, cast, norm, None, judge)
        for k, v in before.items():  # the step takes the cast back: the run would write the same
            assert after[k] == pytest.approx(v, rel=1e-4, abs=1e-6), k
        keep, reason, before, after = scene_check(inputs, good, noisy, norm, None, judge)
        assert not keep and reason.startswith("calibrated as the run") and "got worse" in reason
        assert after["SAM_consistency"] > 1.03 * before["SAM_consistency"]
        keep, reason, before, after = scene_check(inputs, good, copy.deepcopy(good), norm, None, judge)
        assert keep and before == after, reason
        plain = scene_check(inputs, good, copy.deepcopy(good), norm, None)[2]
        assert plain["ERGAS_reduced"] != before["ERGAS_reduced"]  # the network alone: another number
    finally:
        inputs.close()


@pytest.mark.slow
@pytest.mark.parametrize("calibrate", [True, False])
def test_a_run_checks_the_adapted_copy_as_it_will_run(scene, net, tmp_path: Path, calibrate: bool,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """pansharpen's whole-scene check judges calibrated networks when the run is calibrated."""
    from psdnet_qgis.model import adapt

    monkeypatch.setattr(adapt, "guard_decision", lambda before, after: (True, "held-out crops: passed for this test"))
    rep = pansharpen(str(scene[0]), str(scene[1]), str(tmp_path / "o.tif"), model=net, adapt_seconds=60,
                     adapt_options=dict(FAST, max_steps=2), calibrate=calibrate)
    reason = rep.adaptation["scene_reason"]
    assert reason.startswith("calibrated as the run") == calibrate, reason
    assert (rep.calibration is not None) == calibrate


@pytest.mark.slow
def test_an_adapted_calibrated_run_reuses_the_checks_fit(scene, net, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The check fitted the kept network's calibration: the run uses it (two fits, not three), and
    writes what fitting it again would write."""
    from psdnet_qgis.engine import calibration, fusion
    from psdnet_qgis.model import adapt

    monkeypatch.setattr(adapt, "guard_decision", lambda before, after: (True, "held-out crops: passed for this test"))
    fits: list = []
    fit = calibration.fit_calibration
    monkeypatch.setattr(calibration, "fit_calibration", lambda *a, **k: fits.append(fit(*a, **k)) or fits[-1])
    kw = dict(model=net, adapt_seconds=60, adapt_options=dict(FAST, max_steps=2))
    rep = pansharpen(str(scene[0]), str(scene[1]), str(tmp_path / "o.tif"), **kw)
    assert len(fits) == 2 and rep.calibration is not None
    assert "cross_fitted" not in rep.calibration["reduced_resolution"]
    kept = fits[1] if rep.adaptation["kept"] else fits[0]
    assert rep.calibration["weights"] == kept.to_dict()["weights"]
    monkeypatch.setattr(fusion.CalibratedJudge, "fit_of_kept", lambda self, adaptation: None)
    again = pansharpen(str(scene[0]), str(scene[1]), str(tmp_path / "again.tif"), **kw)
    assert len(fits) == 5 and again.calibration["weights"] == rep.calibration["weights"]
    np.testing.assert_array_equal(read(tmp_path / "o.tif"), read(tmp_path / "again.tif"))


def test_scene_decision_needs_every_metric_not_worse() -> None:
    from psdnet_qgis.model.adapt import scene_decision

    base = {"HQNR": 0.9, "D_s": 0.05, "ERGAS_reduced": 3.0, "SAM_reduced": 2.0}
    assert scene_decision(base, {**base, "HQNR": 0.95})[0]
    keep, reason = scene_decision(base, {**base, "HQNR": 0.95, "SAM_reduced": 2.01})
    assert not keep and "SAM_reduced" in reason


# ------------------------------------------------- adaptation that cannot run: skipped, not fatal
class _Warned(_Log):
    def __init__(self) -> None:
        super().__init__()
        self.warnings: list[str] = []

    def warning(self, msg: str) -> None:
        self.warnings.append(msg)


def _assert_skipped(rep, fb: _Warned, *words: str) -> None:
    a = rep.adaptation
    assert a is not None and a["skipped"] is True and a["kept"] is False and a["steps"] == 0, a
    mine = [w for w in fb.warnings if w.startswith("Adaptation")]  # a small scene also skips calibration
    assert len(mine) == 1 and mine[0].startswith("Adaptation skipped: "), fb.warnings
    assert mine[0].endswith("The run fuses without it.")
    for w in words:
        assert w in mine[0], mine[0]
    assert fb.bar == sorted(fb.bar) and fb.bar[-1] == 100.0


def test_small_ms_fuses_without_adaptation(net, tmp_path: Path) -> None:
    pan, ms = make_pair(tmp_path, ms_shape=(12, 12), bands=4, ratio=4, seed=2, name="small")
    fb = _Warned()
    rep = pansharpen(str(pan), str(ms), str(tmp_path / "a.tif"), model=net, adapt_seconds=30,
                     adapt_options=FAST, feedback=fb)
    _assert_skipped(rep, fb, str(ms), "12 x 12 px", "at least 16 x 16 MS px")
    pansharpen(str(pan), str(ms), str(tmp_path / "plain.tif"), model=net)
    np.testing.assert_array_equal(read(tmp_path / "a.tif"), read(tmp_path / "plain.tif"))


def test_no_crop_free_of_nodata_fuses_without_adaptation(net, tmp_path: Path) -> None:
    from tests.rasters import synthetic_scene, write_geotiff

    pan, ms = synthetic_scene((32, 32), 4, 4, seed=6)
    ms[:, 8::16, 8::16] = 0  # one nodata pixel in each 16 x 16 window
    p = write_geotiff(tmp_path / "p.tif", pan, (500000.0, 5700000.0), 0.5)
    m = write_geotiff(tmp_path / "m.tif", ms, (500000.0, 5700000.0), 2.0, nodata=0)
    fb = _Warned()
    rep = pansharpen(str(p), str(m), str(tmp_path / "a.tif"), model=net, adapt_seconds=30, feedback=fb)
    _assert_skipped(rep, fb, "free of nodata")
    assert (tmp_path / "a.tif").exists()


def test_wald_losses_on_crops_too_small_fuse_without_adaptation(net, tmp_path: Path) -> None:
    pan, ms = make_pair(tmp_path, ms_shape=(20, 20), bands=4, ratio=4, seed=2, name="wald")
    fb = _Warned()
    rep = pansharpen(str(pan), str(ms), str(tmp_path / "a.tif"), model=net, adapt_seconds=30,
                     adapt_options={"losses": "wald"}, feedback=fb)
    _assert_skipped(rep, fb, "losses 'wald'", "'fullres'")


def test_without_torch_for_adaptation_the_run_goes_on(net, tmp_path: Path, monkeypatch) -> None:
    import sys

    pan, ms = make_pair(tmp_path, ms_shape=(24, 24), bands=4, ratio=4, seed=2, name="notorch")
    monkeypatch.setitem(sys.modules, "psdnet_qgis.model.adapt", None)  # import fails like a missing torch
    fb = _Warned()
    rep = pansharpen(str(pan), str(ms), str(tmp_path / "a.tif"), model=net, adapt_seconds=30, feedback=fb)
    _assert_skipped(rep, fb, "needs torch")


def test_eight_band_ms_fuses_without_adaptation(tmp_path: Path) -> None:
    from psdnet_qgis.core.registry import list_models
    from tests.rasters import worldview8_scene, write_geotiff

    if not any(m.name == "psdnet_vhr4" for m in list_models()):
        pytest.skip("bundled psdnet_vhr4 weights not present")
    pan, ms = worldview8_scene((24, 28), 4, seed=5)
    p = write_geotiff(tmp_path / "p8.tif", pan, (500000.0, 5700000.0), 0.5)
    m = write_geotiff(tmp_path / "m8.tif", ms, (500000.0, 5700000.0), 2.0)
    fb = _Warned()
    rep = pansharpen(str(p), str(m), str(tmp_path / "a8.tif"), adapt_seconds=30, feedback=fb)
    assert rep.band_methods == {"psdnet_vhr4": [2, 3, 5, 7], "mtf_glp_fs": [1, 4, 6, 8]}
    _assert_skipped(rep, fb, "psdnet_vhr4", "2, 3, 5, 7", str(m))


def test_psdnet_adapt_still_refuses_a_scene_it_cannot_adapt(net, tmp_path: Path) -> None:
    from psdnet_qgis.engine.adapt_scene import adapt_scene
    from psdnet_qgis.errors import PSDNetInputError

    pan, ms = make_pair(tmp_path, ms_shape=(12, 12), bands=4, ratio=4, seed=2, name="small")
    with pytest.raises(PSDNetInputError, match="adapt on a larger scene"):
        adapt_scene(str(pan), str(ms), str(tmp_path / "w.pt"), model=net, seconds=10)
    assert not (tmp_path / "w.pt").exists()


def test_adapt_report_to_dict_is_the_plain_report() -> None:
    """``AdaptReport.to_dict()``: the dict the adaptation step built before it was typed, key for key."""
    import dataclasses

    from psdnet_qgis.engine.adaptation import AdaptReport, skipped
    from psdnet_qgis.model.adapt import AdaptResult

    result = AdaptResult(kept=True, reason="better on the held-out crops", part="head", losses="both", steps=5,
                         train_crops=3, held_crops=1, seconds=1.5, max_step_seconds=0.1, loss_before=0.2,
                         loss_after=0.1, metrics_before={"HQNR": 0.8}, metrics_after={"HQNR": 0.9},
                         budget_seconds=60.0, prepare_seconds=0.3)
    rep = AdaptReport(**result.to_dict(), crop_ms=32, sensor="WorldView-3", gains_ms=(0.3, 0.29),
                      gain_pan=0.15, note="")
    want = result.to_dict()
    want.update(crop_ms=32, sensor="WorldView-3", gains_ms=[0.3, 0.29], gain_pan=0.15, note="")
    assert rep.to_dict() == want and list(rep.to_dict()) == list(want)

    checked = dataclasses.replace(rep, scene_metrics_before={"HQNR": 0.8}, scene_metrics_after={"HQNR": 0.7},
                                  scene_reason="HQNR got worse")
    checked = dataclasses.replace(checked, kept=False, reason="HQNR got worse")
    want.update(scene_metrics_before={"HQNR": 0.8}, scene_metrics_after={"HQNR": 0.7}, scene_reason="HQNR got worse")
    want.update(kept=False, reason="HQNR got worse")
    assert checked.to_dict() == want and list(checked.to_dict()) == list(want)

    fb = _Warned()
    assert skipped(30, "MS too small.", fb).to_dict() == {
        "kept": False, "skipped": True, "reason": "MS too small.", "steps": 0, "budget_seconds": 30.0}
    with pytest.raises(dataclasses.FrozenInstanceError):
        rep.kept = False  # type: ignore[misc]
