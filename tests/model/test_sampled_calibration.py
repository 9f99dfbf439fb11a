"""Heads fitted on a sample of a long history still give the history's escalation rate: calibration and
thresholds weigh each sampled ticket as the tickets it stands for."""

from __future__ import annotations

import numpy as np
import pytest

from features.config import load_config
from features.data import to_tickets
from tests.conftest import Trained
from training.fit import fit_router
from training.labels import derive_labels, heads_sample
from training.register import load_router
from training.sample_data import generate


@pytest.fixture(scope="module")
def skewed(trained: Trained):  # type: ignore[no-untyped-def]
    """2,000 generated tickets whose escalations go to 24 small teams (about 45 tickets each, under the sample's
    floor of 50 a team), so a sample keeps every escalation and a share of first-line tickets: a rare-team skew."""
    config = load_config(trained.config)
    config = config.model_copy(update={"model": config.model.model_copy(update={"C": 0.5, "max_seq_length": 64})})
    frame = generate(2000, seed=23)
    rng = np.random.default_rng(3)
    escalated = frame["resolved_by"] != "service-desk"
    frame.loc[escalated, "resolved_by"] = [
        f"{t}-{k}" for t, k in zip(frame["resolved_by"][escalated], rng.integers(0, 4, escalated.sum()), strict=True)
    ]
    tickets = to_tickets(frame, config)
    embeddings = load_router(trained.settings, trained.result.version).embed(tickets["text"].tolist())
    holdout = rng.random(len(tickets)) < 0.3
    return config, tickets, embeddings, holdout


@pytest.mark.parametrize("cap", [None, 700])
def test_the_mean_escalation_probability_matches_the_rate(skewed, cap: int | None) -> None:  # type: ignore[no-untyped-def]
    config, tickets, embeddings, holdout = skewed
    config = config.model_copy(update={"training": config.training.model_copy(update={"max_fit_tickets": cap})})
    train = ~holdout
    labels = derive_labels(tickets["target"][train].to_numpy(dtype=str), config.teams, 1)
    router = fit_router(tickets[train].reset_index(drop=True), embeddings[train], labels, config, progress=False)
    sampled = router.head_params["heads_fitted_on"]
    assert (sampled < train.sum()) == (cap is not None)
    if cap is not None:  # the skew: the sample escalates far more often than the history
        rows = heads_sample(labels, cap, config.training.seed)
        assert rows is not None and labels.escalate[rows].mean() > labels.escalate.mean() + 0.1
    scored = router.score(tickets[holdout].reset_index(drop=True), embeddings[holdout])
    observed = (tickets["target"][holdout] != "service-desk").mean()
    assert abs(scored.escalation.mean() - observed) <= 0.02, (scored.escalation.mean(), observed)
