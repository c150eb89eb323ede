

def test_guard_needs_hqnr_and_consistency():
    from psdnet_qgis.model.adapt import guard_decision

    before = {"HQNR": 0.90, "SAM_consistency": 1.0, "ERGAS_consistency": 2.0}
    assert guard_decision(before, {**before, "HQNR": 0.95, "SAM_consistency": 0.9}) == (
        True, "held-out HQNR and consistency improved")
    kept, reason = guard_decision(before, {"HQNR": 0.95, "SAM_consistency": 1.9, "ERGAS_consistency": 2.1})
    assert not kept and "SAM and ERGAS consistency got worse" in reason
    assert guard_decision(before, {**before, "HQNR": 0.89})[0] is False
