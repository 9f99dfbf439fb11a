"""A pooled class is no place to send a ticket: 'other' is never suggested, and pooled teams count as wrong."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.config import load_config
from features.data import read_export, to_tickets
from tests.conftest import Trained
from training.evaluate import evaluate
from training.fit import fit_router
from training.labels import OTHER, derive_labels
from training.register import load_router


def test_other_is_never_suggested_and_pooled_teams_are_scored_as_wrong(trained: Trained) -> None:
    config = load_config(trained.config)
    model = config.model.model_copy(update={"C": 0.5, "max_seq_length": 64})
    config = config.model_copy(update={"min_examples": 80, "model": model})
    tickets = to_tickets(read_export(trained.data), config)
    labels = derive_labels(tickets["target"].to_numpy(dtype=str), config.teams, config.min_examples)
    assert OTHER in labels.targets and len(labels.pooled) >= 2  # the sample's smaller teams pooled
    embeddings = load_router(trained.settings, trained.result.version).embed(tickets["text"].tolist())
    router = fit_router(tickets, embeddings, labels, config, progress=False)

    results = router.predict(tickets, top_k=len(router.targets), n_similar=1, embeddings=embeddings)
    assert all(t.target != OTHER for r in results for t in r.targets)
    assert all(r.routing.target != OTHER for r in results)
    by_model = {t.target for r in results for t in r.targets if t.rule is None}
    assert by_model == set(router.targets) - {OTHER}  # every other target still ranked

    # evaluated on the real team names: a pooled team's ticket is never answered right
    hold = derive_labels(tickets["target"].to_numpy(dtype=str), config.teams, 1)
    evaluation = evaluate(router, tickets, embeddings, hold)
    pooled = np.isin(evaluation.y_true, list(labels.pooled))
    assert pooled.any() and not (evaluation.y_true[pooled] == evaluation.y_pred[pooled]).any()
    assert OTHER not in set(evaluation.y_pred)
    kept = ~pooled
    top1 = float((evaluation.y_true == evaluation.y_pred).mean())
    assert top1 <= float((evaluation.y_true[kept] == evaluation.y_pred[kept]).mean()) * kept.mean() + 1e-9
    assert isinstance(evaluation.per_target, pd.DataFrame)
