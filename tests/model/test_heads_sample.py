"""A long history: the heads learn from a stratified sample (every target kept), the index keeps every ticket."""

from __future__ import annotations

import numpy as np

from features.config import Teams, load_config
from features.data import read_export, to_tickets
from tests.conftest import Trained
from training.fit import fit_router
from training.labels import derive_labels, heads_sample
from training.register import load_router


def test_the_sample_keeps_every_target_in_proportion() -> None:
    rng = np.random.default_rng(0)
    resolvers = rng.choice(["service-desk"] * 8 + ["billing"] * 3 + ["security"], 20_000).tolist() + ["legal"] * 7
    labels = derive_labels(resolvers, Teams(first_line=["service-desk"]), 1)
    rows = heads_sample(labels, 2000, seed=1)
    assert rows is not None and np.all(np.diff(rows) > 0)
    kept = np.where(labels.escalate, labels.target, "")[rows]
    assert 1900 <= len(rows) <= 2100 and (kept == "legal").sum() == 7  # a small target kept whole
    assert abs((kept == "billing").mean() - (labels.target == "billing").mean()) < 0.01
    assert heads_sample(labels, 30_000, seed=1) is None and heads_sample(labels, None, seed=1) is None


def test_heads_on_a_sample_and_the_index_on_every_ticket(trained: Trained) -> None:
    config = load_config(trained.config)
    model = config.model.model_copy(update={"C": 0.5, "max_seq_length": 64, "knn_words_weight": 0.3})
    config = config.model_copy(
        update={"model": model, "training": config.training.model_copy(update={"max_fit_tickets": 450})}
    )
    tickets = to_tickets(read_export(trained.data), config)
    labels = derive_labels(tickets["target"].to_numpy(dtype=str), config.teams, config.min_examples)
    embeddings = load_router(trained.settings, trained.result.version).embed(tickets["text"].tolist())
    router = fit_router(tickets, embeddings, labels, config, progress=False)
    assert 450 <= router.head_params["heads_fitted_on"] < len(tickets)
    assert len(router.index.ids) == len(tickets) and router.index.words.shape[0] == len(tickets)
    assert list(router.target_head.classes_) == sorted(router.targets)  # every target learnt from the sample
    sampled = heads_sample(labels, 450, config.training.seed)
    assert sampled is not None
    outside = np.setdiff1d(np.arange(len(tickets)), sampled)[:40]  # tickets the heads never saw
    results = router.predict(tickets.iloc[outside], top_k=3, n_similar=3, embeddings=embeddings[outside])
    assert all(r.similar and r.similar[0].similarity >= 0.99 for r in results)  # each finds itself (or its twin)
