"""One definition of team macro-F1 for the holdout, the model card, the lead's view, selection and the benchmark."""

from __future__ import annotations

import numpy as np
import pytest

from training.benchmark import score
from training.evaluate import target_metrics, team_macro_f1
from training.fit import target_selection_score
from training.labels import OTHER

TARGETS = ["billing", "engineering", "security", OTHER]  # what a model learnt: 'other' pools its rare teams


def _answers(top1: list[str]) -> np.ndarray:
    return np.array([[1.0 if t == name else 0.0 for t in TARGETS] for name in top1])


def test_perfect_answers_score_one_on_the_holdout_and_in_the_benchmark() -> None:
    truth = np.array(["billing", "engineering", "billing", "security"], dtype=object)
    holdout, _ = target_metrics(truth, _answers(list(truth)), TARGETS)
    bench = score(np.array([1, 1, 1, 1, 0]), np.array([0.9, 0.8, 0.7, 0.6, 0.1]), truth, _answers(list(truth)), TARGETS)
    # averaged over the model's targets the never-answered 'other' would count as a zero: 0.75, not 1.0
    assert holdout["target_macro_f1"] == bench["target_macro_f1"] == 1.0


def test_a_team_the_model_never_learnt_counts_against_it() -> None:
    truth = np.array(["billing", "billing", "engineering", "legal"], dtype=object)  # legal: unseen in training
    answered = ["billing", "billing", "engineering", OTHER]
    holdout, _ = target_metrics(truth, _answers(answered), TARGETS)
    assert holdout["target_macro_f1"] == pytest.approx(2 / 3)  # billing 1, engineering 1, legal 0
    bench = score(np.array([1, 1, 1, 1, 0]), np.array([0.9, 0.8, 0.7, 0.6, 0.1]), truth, _answers(answered), TARGETS)
    assert bench["target_macro_f1"] == holdout["target_macro_f1"]


def test_selection_scores_macro_f1_the_same_way() -> None:
    truth = np.array([0, 0, 1, 2])  # positions in the targets
    scores = _answers(["billing", "engineering", "engineering", "security"])
    top1, top3 = 0.75, 1.0
    macro = team_macro_f1(truth, scores.argmax(axis=1))
    assert macro == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert target_selection_score(truth, scores) == pytest.approx((top1 + top3 + macro) / 3)
    assert np.isnan(team_macro_f1(np.array([]), np.array([])))
