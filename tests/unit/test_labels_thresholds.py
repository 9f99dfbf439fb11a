import numpy as np
import pytest

from features.config import Teams
from features.labels import OTHER, derive_labels
from features.router import Thresholds
from training.fit import choose_thresholds

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
