"""Any export splits into training and holdout; head settings are chosen on out-of-fold answers only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.config import Teams, parse_config
from features.model.router import distinct
from training.fit import HeadParams, head_grid, split_holdout, target_selection_score
from training.labels import derive_labels

TEAMS = Teams(first_line=["desk"])


def _config(**model: object) -> object:
    return parse_config({"columns": {"text": "t", "target": "r"}, "teams": {"first_line": ["desk"]}, "model": model})


@pytest.mark.parametrize(
    "resolvers",
    [
        ["desk"] * 40 + ["billing"] * 20 + ["legal"],  # one team with one ticket: the 'rare' stratum holds one
        ["desk"] * 40 + ["billing"] * 20 + ["legal", "audit", "tax"],  # three lone teams
        ["desk"] * 6 + [f"team-{i}" for i in range(8)] + ["billing"] * 2,  # more strata than the holdout holds
        ["desk"] * 10 + ["billing"],  # a single escalated ticket
    ],
)
def test_any_export_splits(resolvers: list[str]) -> None:
    tickets = pd.DataFrame({"text": ["x"] * len(resolvers), "target": resolvers})
    labels = derive_labels(resolvers, TEAMS, 1)
    train, holdout, how = split_holdout(tickets, labels, _config())
    assert len(train) + len(holdout) == len(resolvers) and not set(train) & set(holdout)
    assert len(holdout) > 0 and how in {"stratified", "stratified by escalation", "random"}


def test_grid_follows_the_settings() -> None:
    esc, tgt = head_grid(_config())
    assert [p.C for p in esc] == [0.1, 0.5, 2.0]
    assert {(p.C, p.balanced) for p in tgt} == {(c, w) for c in (0.1, 0.5, 2.0) for w in (False, True)}
    esc, tgt = head_grid(_config(C=1.5, class_weight="balanced"))
    assert esc == [HeadParams(1.5)] and tgt == [HeadParams(1.5, True)]
    esc, tgt = head_grid(_config(C_grid=[3, 1], class_weight=None))
    assert [p.C for p in esc] == [1.0, 3.0] and all(not p.balanced for p in tgt)


def test_selection_score_rewards_small_teams_too() -> None:
    truth = np.array([0] * 90 + [1] * 10)
    majority = np.tile([1.0, 0.0], (100, 1))  # top-1 0.9, but team 1 never named
    both = np.where(truth[:, None] == np.arange(2), 1.0, 0.0)
    both[:15] = [0.0, 1.0]  # 15 of team 0 called team 1: top-1 0.85
    assert target_selection_score(truth, both) > target_selection_score(truth, majority)


def test_similar_tickets_shown_are_distinct() -> None:
    vectors = np.eye(4, dtype=np.float32)
    vectors[2] = (vectors[0] * 0.99 + vectors[3] * 0.14) / np.linalg.norm([0.99, 0.14])  # near-duplicate of 0
    snippets = np.array(["Printer jam", "printer   JAM", "Printer jam on floor 2", "VPN down"], dtype=object)
    kept = distinct(np.array([0, 1, 2, 3]), np.array([0.9, 0.9, 0.8, 0.7]), snippets, vectors, 3)
    assert [j for j, _ in kept] == [0, 3]  # 1 has the same text, 2 is a near-duplicate
