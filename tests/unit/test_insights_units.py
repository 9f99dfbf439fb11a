"""The parts of insights that need no model: themes of a long history, names when no word is left, masked rates,
and what the report says of an export with dates but no escalation."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.text.privacy import Masker
from training.insights import CLUSTER_SAMPLE, _cluster, _names, find_themes
from training.rates import weekly_rates


def test_beyond_the_sample_an_outlier_joins_no_theme() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 32))
    each = (CLUSTER_SAMPLE + 600) // 3
    tight = np.repeat(centres, each, axis=0) + 0.05 * rng.normal(size=(3 * each, 32))
    outliers = rng.normal(size=(50, 32))  # unlike each other and every centre
    labels = _cluster(np.vstack([tight, outliers]))
    themes = set(labels[: len(tight)])
    assert len(themes) == 3 and not themes & set(labels[len(tight) :])  # outliers join none of the three


def test_themes_whose_text_is_only_stop_words_still_get_a_name() -> None:
    assert _names(["the and of", "it is the"], Masker()) == [[], []]
    tickets = pd.DataFrame(
        {"id": [f"t{i}" for i in range(10)], "text": ["the and of"] * 10, "target": ["billing"] * 10}
    )
    found = find_themes(tickets, np.ones((10, 4)), ["desk"], Masker())
    assert [t.name for t in found.themes] == ["theme 1"] and found.themes[0].tickets == 10


def test_metadata_values_in_the_rates_are_masked() -> None:
    tickets = pd.DataFrame(
        {
            "target": ["billing", "desk"],
            "created_at": pd.to_datetime(["2026-01-05", "2026-01-06"], utc=True),
            "requester": ["anna.schmidt@example.com", "web"],
        }
    )
    rates = weekly_rates(tickets, ["desk"], ["requester"], Masker())
    assert set(rates.loc[rates["scope"] == "requester", "value"]) == {"[email]", "web"}


def test_an_export_with_dates_and_no_escalation_does_not_say_it_has_no_dates() -> None:
    tickets = pd.DataFrame(
        {
            "id": ["a", "b"],
            "text": ["x", "y"],
            "target": ["desk", "desk"],
            "created_at": pd.to_datetime(["2026-01-05", "2026-01-06"], utc=True),
            "resolution": ["reset", "reset"],
        }
    )
    found = find_themes(tickets, np.ones((2, 4)), ["desk"], Masker())
    assert found.themes == [] and found.cannot_show == []
