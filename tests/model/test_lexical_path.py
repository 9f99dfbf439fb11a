"""The lean TF-IDF path (issue 27): a loaded model's word and character features are exactly what scikit-learn's
own transform gives, on tickets of every shape, and the counters it keeps are not pickled with the model; the
heads scored without scikit-learn's input checks give its numbers to the bit."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from features.model import lexical as lexical_module
from features.model.heads import linear_scores, positive_probability
from features.model.lexical import _texts
from tests.conftest import Trained
from training.register import load_router

TEXTS = [
    "",
    "a",
    "VPN not connecting since 9am: error 809 on host abc-prod-17, tried restarting twice",
    "Passwort zurücksetzen bitte, ich bin seit heute morgen gesperrt. Grüße",
    "I was charged twice for the Team plan, please refund one. password: hunter2 token=abcd1234efgh",
    "CSV export fails with error 500 " * 200,
    "ＦＵＬＬＷＩＤＴＨ ünïcödé 🙂 tabs\tand\nnew lines",
    "install failed: C:\\Users\\someone\\AppData\\Local\\Temp\\setup_log_2026_12_07_0815_with_a_long_name.txt",
]


def test_the_lean_path_gives_scikit_learns_matrix(trained: Trained) -> None:
    lexical = load_router(trained.settings, trained.result.version).lexical
    sample = pd.read_csv(trained.data)
    texts = _texts(pd.DataFrame({"text": [*TEXTS, *(sample["subject"] + " " + sample["body"]).head(200)]}))
    for vectorizer in (lexical.text_, lexical.chars_):
        assert vectorizer is not None
        expected = sp.csr_matrix(vectorizer.transform(texts))
        expected.sort_indices()
        got = lexical._tfidf(vectorizer, texts)
        assert got.shape == expected.shape and got.nnz == expected.nnz > 0
        assert np.array_equal(got.indptr, expected.indptr) and np.array_equal(got.indices, expected.indices)
        assert np.allclose(got.data, expected.data, rtol=0, atol=1e-12)
        again = lexical._tfidf(vectorizer, texts)  # the words' columns remembered from the first pass
        assert (again != got).nnz == 0
    # the counters it builds are left out of a pickle (and built again after loading)
    assert "_counters" in lexical.__dict__
    again = pickle.loads(pickle.dumps(lexical))
    assert "_counters" not in again.__dict__
    frame = pd.DataFrame({"text": TEXTS, "channel": "email", "customer_tier": "standard"})
    assert (again.transform(frame) != lexical.transform(frame)).nnz == 0
    # fitted again, it forgets the counters of the vectorizers it had
    again.transform(frame)
    again.fit_transform(pd.concat([frame] * 3, ignore_index=True))
    assert "_counters" not in again.__dict__


def test_the_heads_without_input_checks_give_scikit_learns_numbers(trained: Trained) -> None:
    router = load_router(trained.settings, trained.result.version)
    sample = pd.read_csv(trained.data).head(64)
    texts = [*TEXTS, *(sample["subject"] + " " + sample["body"])]
    frame = pd.DataFrame({"id": [str(i) for i in range(len(texts))], "text": texts})
    for name in router.metadata:
        frame[name] = "email"
    X = router.features(frame, router.embed(frame["text"].tolist()))
    for head in (router.escalation_head, router.target_head):
        for rows in (X, X[:1]):  # a batch and one ticket
            assert np.array_equal(linear_scores(head, rows), head.decision_function(rows))
    inputs = np.column_stack([linear_scores(router.escalation_head, X), np.linspace(0, 1, X.shape[0])])
    inputs = inputs[:, : router.calibrator.n_features_in_]
    expected = router.calibrator.predict_proba(inputs)[:, 1]
    assert np.array_equal(positive_probability(router.calibrator, inputs), expected)
    with pytest.raises(ValueError, match="features"):  # a wrong width is refused, as scikit-learn refuses it
        linear_scores(router.escalation_head, X[:, :-1])
    broken = X[:1].copy()
    broken.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):  # and so is a value that is not a number
        linear_scores(router.escalation_head, broken)


def test_words_counted_from_a_full_memory_count_the_same(trained: Trained, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lexical_module, "WORD_CACHE", 3)  # forgets every few words
    lexical = pickle.loads(pickle.dumps(load_router(trained.settings, trained.result.version).lexical))
    texts = _texts(pd.DataFrame({"text": TEXTS}))
    assert lexical.chars_ is not None
    expected = sp.csr_matrix(lexical.chars_.transform(texts))
    expected.sort_indices()
    assert (lexical._tfidf(lexical.chars_, texts) != expected).nnz == 0
