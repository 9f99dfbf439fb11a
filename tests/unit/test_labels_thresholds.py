import numpy as np
import pytest

from features.config import Teams
from features.model.router import TargetThresholds, Thresholds
from training.fit import ROUTE_FLOOR, choose_target_thresholds, choose_thresholds, lowest_precise_threshold
from training.labels import OTHER, derive_labels

TEAMS = Teams(first_line=["desk"], hierarchical=["manager"])


def test_labels_derive_escalation_target_and_kind() -> None:
    resolvers = ["desk"] * 5 + ["billing"] * 3 + ["manager"] * 3 + ["legal"]
    labels = derive_labels(resolvers, TEAMS, min_examples=2)
    assert labels.escalate.tolist() == [False] * 5 + [True] * 7
    assert labels.target.tolist() == [""] * 5 + ["billing"] * 3 + ["manager"] * 3 + [OTHER]
    assert labels.targets == ["billing", "manager", OTHER]
    assert labels.kinds == {"billing": "functional", "manager": "hierarchical", OTHER: "functional"}
    assert labels.pooled == {"legal": 1}


def test_no_pooling_when_all_targets_are_common() -> None:
    labels = derive_labels(["desk", "billing", "billing"], TEAMS, min_examples=1)
    assert labels.pooled == {} and OTHER not in labels.targets


def test_thresholds_reach_the_target_precision() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(2000) < 0.5
    p = np.clip(np.where(y, 0.65, 0.35) + rng.normal(0, 0.2, 2000), 0, 1)
    t = choose_thresholds(y, p, 0.9)
    assert t.escalate_precision_reached and t.resolve_precision_reached
    assert y[p >= t.escalate].mean() >= 0.9
    assert (~y[p < t.resolve_first]).mean() >= 0.9
    assert 0 < t.resolve_first <= t.escalate < 1
    # a stricter lead widens the uncertain band
    strict = choose_thresholds(y, p, 0.97)
    assert strict.escalate > t.escalate and strict.resolve_first < t.resolve_first


def test_thresholds_unreachable_precision_is_reported() -> None:
    y = np.array([True, False] * 50)
    p = np.full(100, 0.5)
    t = choose_thresholds(y, p, 0.9)
    assert not t.escalate_precision_reached and t.escalate > 1.0 and t.decide(1.0)[0] != "escalate"


@pytest.mark.parametrize(
    ("p", "decision", "threshold"),
    [(0.95, "escalate", 0.8), (0.8, "escalate", 0.8), (0.5, "uncertain", 0.8), (0.1, "resolve_first", 0.2)],
)
def test_decision_says_which_threshold_applied(p: float, decision: str, threshold: float) -> None:
    assert Thresholds(escalate=0.8, resolve_first=0.2, target_precision=0.9).decide(p) == (decision, threshold)


def test_lowest_precise_threshold_keeps_ties_together() -> None:
    correct = np.array([True, True, True, False, True, False])
    p = np.array([0.9, 0.8, 0.7, 0.7, 0.6, 0.2])
    # p >= 0.7 gives 3 of 4 right, p >= 0.6 gives 4 of 5; only p >= 0.8 reaches 0.9
    assert lowest_precise_threshold(correct, p, 0.9) == 0.8
    assert lowest_precise_threshold(correct, p, 0.75) == 0.6
    assert lowest_precise_threshold(np.array([False]), np.array([0.9]), 0.9) is None


def test_target_thresholds_reach_precision_per_target() -> None:
    rng = np.random.default_rng(1)
    n, targets = 3000, ["a", "b", "c", "d"]
    truth = rng.integers(0, 3, n)  # 'd' is never right and rarely predicted
    sure = rng.random(n)
    proba = np.full((n, 4), 0.0)
    guess = np.where(rng.random(n) < 0.4 + 0.6 * sure, truth, (truth + 1) % 3)  # surer tickets are right more often
    guess[:10] = 3
    proba[np.arange(n), guess] = 0.3 + 0.7 * sure
    proba += (1 - proba.sum(axis=1, keepdims=True)) / 4
    tt = choose_target_thresholds(truth, proba, targets, 0.9)
    assert set(tt.per_target) == {"a", "b", "c"}  # 'd' has too few answers for its own threshold
    for j, name in enumerate(targets[:3]):
        mine = (proba.argmax(axis=1) == j) & (proba.max(axis=1) >= tt.per_target[name])
        assert (truth[mine] == j).mean() >= 0.9
        assert ROUTE_FLOOR <= tt.per_target[name] < 1.0
    # a team whose precision validation could not show is suggested but never routed, however sure
    decision, threshold, scope = tt.decide("d", 1.0)
    assert tt.unproven == {"d": 10} and (decision, scope) == ("uncertain", "unproven") and threshold > 1.0
    assert tt.decide("a", 0.99) == ("route", tt.per_target["a"], "target")
    assert tt.decide("a", 0.31)[0] == "uncertain"
    strict = choose_target_thresholds(truth, proba, targets, 0.97)
    assert all(strict.per_target[t] >= tt.per_target[t] for t in "abc")
    # a lead's precision for one target moves that target's threshold alone, and is kept with who set it
    lead = choose_target_thresholds(
        truth, proba, targets, 0.9, precisions={"b": 0.97, "zz": 0.5}, set_by={"b": "Dana", "zz": "nobody"}
    )
    assert lead.per_target["b"] == strict.per_target["b"] > tt.per_target["b"]
    assert {t: lead.per_target[t] for t in "ac"} == {t: tt.per_target[t] for t in "ac"}
    assert (lead.precision_for("b"), lead.precision_for("a")) == (0.97, 0.9)
    assert lead.precisions == {"b": 0.97} and lead.set_by == {"b": "Dana"}  # a target it does not know: dropped


def test_target_that_never_reaches_precision_is_always_uncertain() -> None:
    truth = np.zeros(40, dtype=int)
    proba = np.tile([0.2, 0.8], (40, 1))  # always says target 1, always wrong
    tt = choose_target_thresholds(truth, proba, ["x", "y"], 0.9)
    assert tt.unreached == ["y"] and tt.per_target["y"] > 1.0
    assert tt.decide("y", 1.0)[0] == "uncertain"


def test_few_answers_do_not_promise_the_precision() -> None:
    correct, p = np.ones(5, dtype=bool), np.linspace(0.9, 0.5, 5)
    assert lowest_precise_threshold(correct, p, 0.9) == 0.5  # 5 of 5 right looks perfect
    assert lowest_precise_threshold(correct, p, 0.9, z=1.0) is None  # but 5 answers cannot show 0.9
    many = np.ones(200, dtype=bool)
    assert lowest_precise_threshold(many, np.linspace(0.99, 0.5, 200), 0.9, z=1.0) == 0.5


def test_no_target_threshold_sits_below_the_floor() -> None:
    # every answer is right, so precision alone would route at any probability: the floor still applies
    proba = np.column_stack([np.linspace(0.2, 0.9, 200), 1 - np.linspace(0.2, 0.9, 200)])
    proba = np.column_stack([proba[:, 0], proba[:, 1] * 0.5, proba[:, 1] * 0.5])
    truth = np.zeros(200, dtype=int)
    keep = proba.argmax(axis=1) == 0
    tt = choose_target_thresholds(truth[keep], proba[keep], ["a", "b", "c"], 0.9)
    lowest = proba[keep][:, 0][proba[keep][:, 0] >= ROUTE_FLOOR].min()  # the lowest answer at or above the floor
    assert tt.per_target["a"] == lowest and lowest >= ROUTE_FLOOR
    assert tt.decide("a", 0.45)[0] == "uncertain" and tt.decide("a", lowest)[0] == "route"


def test_a_precision_shown_only_below_the_floor_routes_nothing() -> None:
    # five sure answers, all wrong, above many unsure right ones: together they look 95% precise, but the floor
    # would route only the five; the target is never routed rather than routed at 0% precision
    p = np.r_[np.full(5, 0.6), np.full(100, 0.4)]
    proba = np.column_stack([p, (1 - p) / 2, (1 - p) / 2])
    truth = np.r_[np.full(5, 1), np.zeros(100, dtype=int)]
    tt = choose_target_thresholds(truth, proba, ["a", "b", "c"], 0.9)
    assert tt.per_target["a"] > 1.0 and tt.unreached == ["a"]


def test_thresholds_saved_before_unproven_still_share_one_threshold() -> None:
    old = TargetThresholds({"a": 0.7}, 0.6, 0.9, [])
    del old.__dict__["unproven"]  # as unpickled from an artefact made before the field existed
    assert old.decide("b", 0.65) == ("route", 0.6, "all targets")


def test_thresholds_pickled_before_leads_could_set_a_precision_keep_the_trainings() -> None:
    state = TargetThresholds({"a": 0.7}, 2.0, 0.85, [], {}).__dict__.copy()
    del state["precisions"], state["set_by"]  # as pickled before the fields existed
    old = TargetThresholds.__new__(TargetThresholds)
    old.__setstate__(state)
    assert old.precision_for("a") == 0.85 and old.set_by == {} and old.decide("a", 0.75) == ("route", 0.7, "target")
