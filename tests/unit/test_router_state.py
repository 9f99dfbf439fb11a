from features.model.router import EscalationRouter

OLD_STATE = {
    "embedding_model": "m",
    "max_seq_length": 8,
    "embedding_weight": 1.0,
    "lexical": None,
    "escalation_head": None,
    "calibrator": None,
    "target_head": None,
    "targets": ["a"],
    "kinds": {},
    "first_line": ["desk"],
    "metadata": [],
    "thresholds": None,
    "index": None,
}


def test_artefact_from_before_new_fields_loads_with_defaults() -> None:
    router = EscalationRouter.__new__(EscalationRouter)
    router.__setstate__(dict(OLD_STATE))
    assert router.rules == [] and router.target_thresholds is None and router.target_stack is None
    assert router.knn_weight == 0.0 and router.pooled == {} and router.targets == ["a"]
    other = EscalationRouter.__new__(EscalationRouter)
    other.__setstate__(dict(OLD_STATE))
    assert other.rules is not router.rules  # each gets its own default list
