"""Feedback storage on sqlite and, where one is reachable, PostgreSQL: idempotent, joined, summarised."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy import create_engine, text

from serving.feedback_store import Feedback, FeedbackStore, StoreUnavailable

POSTGRES = os.environ.get("ESCALATION_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# CI has a server: there a PostgreSQL test that skips would hide a regression, so `.ci/run` sets this to fail instead
REQUIRE_POSTGRES = "ESCALATION_REQUIRE_POSTGRES"


def no_postgres(url: str, err: Exception) -> NoReturn:
    """Skip, saying why, when no PostgreSQL answers at `url` (fail when ESCALATION_REQUIRE_POSTGRES is set)."""
    unreachable = f"no PostgreSQL at {url} ({err.__class__.__name__}); set ESCALATION_TEST_POSTGRES_URL"
    if os.environ.get(REQUIRE_POSTGRES, "") not in ("", "0"):
        pytest.fail(f"{unreachable}, or unset {REQUIRE_POSTGRES} to skip", pytrace=False)
    pytest.skip(unreachable)


def _postgres_schema(url: str = POSTGRES) -> Iterator[str]:
    """A throwaway schema in the test PostgreSQL database; skips with the reason when none is reachable (fails
    when ESCALATION_REQUIRE_POSTGRES is set)."""
    schema = f"esc_test_{uuid.uuid4().hex[:10]}"
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as err:  # any failure to connect means there is no server to test against
        no_postgres(url, err)
    try:
        yield f"{url}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FeedbackStore]:
    if request.param == "sqlite":
        yield FeedbackStore(f"sqlite:///{tmp_path / 'feedback.db'}")
    else:
        for url in _postgres_schema():
            s = FeedbackStore(url)
            yield s
            s.engine.dispose()


def suggestion(ticket_id: str, version: str = "1", decision: str = "escalate", targets: list[str] | None = None):  # type: ignore[no-untyped-def]
    return {
        "ticket_id": ticket_id,
        "model_name": "escalation-router",
        "model_version": version,
        "decision": decision,
        "escalation_probability": 0.9,
        "targets": targets or ["billing", "engineering", "support-manager"],
        "top_probability": 0.8,
        "routing": "route",
    }


def test_feedback_is_joined_to_the_latest_suggestion(store: FeedbackStore) -> None:
    store.record_suggestions([suggestion("T-1", version="1")])
    store.record_suggestions([suggestion("T-1", version="2", targets=["engineering", "billing"])])
    stored = store.record_feedback(Feedback("T-1", True, "engineering", True, "fixed by eng"), {"engineering"})
    assert stored.status == "created" and stored.model_version == "2" and stored.flags == []
    frame = store.feedback_frame()
    assert frame.loc[0, "suggested"] == ["engineering", "billing"] and frame.loc[0, "note"] == "fixed by eng"


def test_repeat_updates_never_duplicates(store: FeedbackStore) -> None:
    store.record_suggestions([suggestion("T-2")])
    store.record_feedback(Feedback("T-2", True, "billing", True))
    again = store.record_feedback(Feedback("T-2", False, None, False, "solved it myself"))
    assert again.status == "updated"
    frame = store.feedback_frame()
    assert len(frame) == 1 and not frame.loc[0, "escalated"] and frame.loc[0, "target"] is None


def test_unknown_target_and_missing_suggestion_are_flagged(store: FeedbackStore) -> None:
    stored = store.record_feedback(Feedback("T-3", True, "legal", False), {"billing", "engineering"})
    assert set(stored.flags) == {"unknown_target", "no_suggestion_recorded"} and stored.model_version is None
    assert not store.feedback_frame().loc[0, "target_known"]


def test_concurrent_first_writes_of_one_ticket_leave_one_row(store: FeedbackStore) -> None:
    store.record_suggestions([suggestion("T-4")])
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(lambda i: store.record_feedback(Feedback("T-4", True, "billing", i % 2 == 0)), range(16))
        )
    assert sorted(r.status for r in results).count("created") == 1
    assert len(store.feedback_frame()) == 1


def test_summary_rates_per_version(store: FeedbackStore) -> None:
    store.record_suggestions(
        [
            suggestion("a", "1", targets=["billing", "engineering", "security"]),
            suggestion("b", "1", targets=["billing", "engineering", "security"]),
            suggestion("c", "1", targets=["billing", "engineering", "security"]),
            suggestion("d", "1", decision="resolve_first"),
            suggestion("e", "2"),
        ]
    )
    store.record_feedback(Feedback("a", True, "billing", True))  # top-1
    store.record_feedback(Feedback("b", True, "security", True))  # top-3
    store.record_feedback(Feedback("c", True, "legal", False))  # missed
    store.record_feedback(Feedback("d", False, None, True))  # escalation avoided
    summary = store.summary()
    v1 = summary["versions"]["1"]
    assert v1["suggestions"] == 4 and v1["feedback"] == 4 and v1["decisions"] == {"escalate": 3, "resolve_first": 1}
    assert v1["accepted_top1_rate"] == pytest.approx(1 / 3) and v1["accepted_top3_rate"] == pytest.approx(2 / 3)
    assert v1["escalations_avoided"] == 1 and v1["escalation_rate"] == pytest.approx(0.75)
    assert summary["versions"]["2"]["suggestions"] == 1 and summary["versions"]["2"]["feedback"] == 0
    assert summary["escalations_per_target"] == {"billing": 1, "legal": 1, "security": 1}


def test_unreachable_database_is_a_clear_error() -> None:
    with pytest.raises(StoreUnavailable, match="unavailable"):
        FeedbackStore("postgresql+psycopg://nobody@127.0.0.1:1/none")


@pytest.mark.parametrize(
    ("required", "outcome"), [("", pytest.skip.Exception), ("0", pytest.skip.Exception), ("1", pytest.fail.Exception)]
)
def test_postgres_tests_skip_without_a_server_unless_it_is_required(
    monkeypatch: pytest.MonkeyPatch, required: str, outcome: type[BaseException]
) -> None:
    """Where no server answers the PostgreSQL half skips, saying why; with ESCALATION_REQUIRE_POSTGRES (CI) it fails."""
    monkeypatch.setenv(REQUIRE_POSTGRES, required)
    either = (pytest.skip.Exception, pytest.fail.Exception)  # caught alike, so a wrong skip fails this test
    with pytest.raises(either, match=r"no PostgreSQL at postgresql\+psycopg://nobody@127.0.0.1:1/none \(") as raised:
        next(_postgres_schema("postgresql+psycopg://nobody@127.0.0.1:1/none"))
    assert raised.type is outcome


def test_unfamiliar_share_per_week_counts_only_answers_that_tell(store: FeedbackStore) -> None:
    store.record_suggestions(
        [
            {**suggestion("u1"), "unfamiliar": True},
            {**suggestion("u2"), "unfamiliar": False},
            {**suggestion("u3"), "unfamiliar": False},
            {**suggestion("u4"), "unfamiliar": None},  # a version trained before familiarity: not counted either way
        ]
    )
    weeks = store.summary()["weeks"]
    assert sum(w["suggestions"] for w in weeks) == 4 and sum(w["unfamiliar"] for w in weeks) == 1
    if len(weeks) == 1:  # the usual case; across Monday 00:00 UTC the four rows may fall in two weeks
        assert weeks[0]["unfamiliar_rate"] == pytest.approx(1 / 3)


OLD_SUGGESTIONS = """CREATE TABLE suggestions (
    id INTEGER NOT NULL PRIMARY KEY, ticket_id VARCHAR(200) NOT NULL, model_name VARCHAR(200) NOT NULL,
    model_version VARCHAR(50) NOT NULL, decision VARCHAR(20) NOT NULL, escalation_probability FLOAT NOT NULL,
    targets JSON NOT NULL, top_probability FLOAT NOT NULL, routing VARCHAR(20) NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL)"""


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_store_made_before_familiarity_gains_the_column_and_keeps_its_rows(database: str, tmp_path: Path) -> None:
    urls = iter([f"sqlite:///{tmp_path / 'old.db'}"]) if database == "sqlite" else _postgres_schema()
    for url in urls:
        engine = create_engine(url)
        with engine.begin() as conn:  # the table as the release before this one created it, with one answer
            conn.execute(
                text(
                    OLD_SUGGESTIONS.replace("INTEGER NOT NULL PRIMARY KEY", "SERIAL PRIMARY KEY")
                    if database == "postgresql"
                    else OLD_SUGGESTIONS
                )
            )
            conn.execute(
                text(
                    "INSERT INTO suggestions (ticket_id, model_name, model_version, decision, escalation_probability,"
                    " targets, top_probability, routing, created_at) VALUES ('old-1', 'm', '1', 'escalate', 0.7,"
                    " '[\"billing\"]', 0.6, 'route', :now)"
                ),
                {"now": datetime.now(UTC)},
            )
        engine.dispose()
        store = FeedbackStore(url)
        store.record_suggestions([{**suggestion("new-1"), "unfamiliar": True}])
        stored = store.record_feedback(Feedback("old-1", True, "billing", True))
        weeks = store.summary()["weeks"]
        assert stored.model_version == "1"  # the row from before is still there and joined
        assert sum(w["suggestions"] for w in weeks) == 2 and sum(w["unfamiliar"] for w in weeks) == 1
        assert [w["unfamiliar_rate"] for w in weeks if w["unfamiliar_rate"] is not None] == [1.0]
        FeedbackStore(url).engine.dispose()  # opening it again adds nothing and fails nothing
        store.engine.dispose()
