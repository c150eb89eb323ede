

def test_guard_needs_hqnr_and_consistency():
    from psdnet_qgis.model.adapt import guard_decision

    before = {"HQNR": 0.90, "SAM_consistency": 1.0, "ERGAS_consistency": 2.0}
    assert guard_decision(before, {**before, "HQNR": 0.95, "SAM_consistency": 0.9}) == (
        True, "held-out HQNR and consistency improved")
    kept, reason = guard_decision(before, {"HQNR": 0.95, "SAM_consistency": 1.9, "ERGAS_consistency": 2.1})
    assert not kept and "SAM and ERGAS consistency got worse" in reason
    assert guard_decision(before, {**before, "HQNR": 0.89})[0] is False


def test_adapt_options_are_the_configs_fields_and_defaults():
    """core.options.AdaptOptions is AdaptConfig besides the budget, with the same defaults; one conversion."""
    from dataclasses import asdict, fields

    from psdnet_qgis.core.options import AdaptOptions
    from psdnet_qgis.model.adapt import AdaptConfig

    config = {f.name: f.default for f in fields(AdaptConfig) if f.name != "seconds"}
    assert {f.name: f.default for f in fields(AdaptOptions)} == config
    opts = AdaptOptions(part="all", losses="wald", lr=0.01, spatial_weight=0.5, max_steps=7)
    cfg = AdaptConfig.from_options(30, opts)
    assert cfg == AdaptConfig(seconds=30.0, **asdict(opts))
    cfg.check()
