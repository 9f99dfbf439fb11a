"""The trade-off curves and operating points on hand-made answers: coverage and precision counted as the router
answers (ties share a threshold, held-back holdout answers are never routed, weights count as tickets)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from features.model.router import RoutingAnswers
from training.tradeoff import at_threshold, curve


def router(answers: RoutingAnswers, resolve_first: float = 0.3) -> SimpleNamespace:
    return SimpleNamespace(routing_answers={"s": answers}, thresholds=SimpleNamespace(resolve_first=resolve_first))


def test_a_curve_counts_each_threshold_once_and_only_the_targets_answers() -> None:
    # target 0: answers at 0.9 (right), 0.8 (right), 0.8 (wrong), 0.6 (wrong); target 1's answer is not its own
    answers = RoutingAnswers(
        top=np.array([0, 0, 0, 0, 1]),
        probability=np.array([0.9, 0.8, 0.8, 0.6, 0.99]),
        truth=np.array([0, 0, 1, 1, 1]),
    )
    points = curve(router(answers), "s", 0)  # type: ignore[arg-type]
    assert points == [
        {"threshold": 0.9, "coverage": 0.25, "precision": 1.0},
        {"threshold": 0.8, "coverage": 0.75, "precision": round(2 / 3, 4)},
        {"threshold": 0.6, "coverage": 1.0, "precision": 0.5},
    ]
    assert at_threshold(router(answers), "s", 0, 0.8) == {  # type: ignore[arg-type]
        "answers": 4, "routed": 3, "coverage": 0.75, "precision": round(2 / 3, 4)
    }  # fmt: skip
    assert at_threshold(router(answers), "s", 0, 1.5)["precision"] is None  # type: ignore[arg-type]


def test_weights_count_as_tickets_and_held_back_answers_are_never_routed() -> None:
    weighted = RoutingAnswers(
        top=np.array([0, 0]), probability=np.array([0.9, 0.7]), truth=np.array([0, 1]), weights=np.array([1.0, 3.0])
    )
    assert at_threshold(router(weighted), "s", 0, 0.7) == {  # type: ignore[arg-type]
        "answers": 2, "routed": 2, "coverage": 1.0, "precision": 0.25
    }  # fmt: skip
    # holdout: the second ticket's escalation answer was resolve_first (P 0.1 < 0.3): not routed, still counted
    held = RoutingAnswers(
        top=np.array([0, 0]),
        probability=np.array([0.9, 0.95]),
        truth=np.array([0, 0]),
        escalated=np.array([True, False, True]),
        p_escalation=np.array([0.8, 0.5, 0.1]),
    )
    assert at_threshold(router(held), "s", 0, 0.5) == {  # type: ignore[arg-type]
        "answers": 2, "routed": 1, "coverage": 0.5, "precision": 1.0
    }  # fmt: skip
    assert curve(router(held), "s", 0) == [{"threshold": 0.9, "coverage": 0.5, "precision": 1.0}]  # type: ignore[arg-type]
    # every answer held back: no curve at all, rather than a failed training run
    assert curve(router(held, resolve_first=0.9), "s", 0) == []  # type: ignore[arg-type]
