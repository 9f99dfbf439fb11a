"""A lead chooses the trade-off (issue 26, item 4): `escalation thresholds` registers the champion again with the
thresholds of the precision set, serves it after the smoke test, records who set what, rolls back with `promote`,
and a retrained version keeps the choice. The curves it is chosen on, and the holdout's counted again, agree with
the evaluation's own numbers."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from mlflow.utils.validation import _validate_param_name
from typer.testing import CliRunner

from escalation.cli import app
from features.config import load_config
from features.data import to_tickets
from features.settings import Settings
from serving.app import create_app
from serving.hooks.note import note_for
from serving.schemas import SuggestionOut
from tests.conftest import bearer, store_settings
from training.evaluate import reevaluate
from training.fit import wilson_lower
from training.register import champion_version, connect, lead_precisions, load_router, promote
from training.sample_data import write_sample
from training.tracking import Tracker
from training.tradeoff import _serve, param_key, set_thresholds
from training.train import challenge, fit_and_evaluate, log_run, prepare, train
from training.train import promote as train_promote

TARGET = "engineering"  # on this sample, routed at the config's 0.9 with room above


@dataclass
class Store:
    folder: Path
    data: Path
    config: Path
    settings: Settings

    def env(self) -> dict[str, str]:
        return {"MLFLOW_TRACKING_URI": self.settings.tracking_uri, "USER": "cron"}

    def champion(self) -> str:
        found = champion_version(connect(self.settings), self.settings)
        assert found is not None
        return str(found.version)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    folder = tmp_path_factory.mktemp("thresholds")
    data, config = write_sample(folder, rows=600, seed=5)
    settings = store_settings(folder)
    assert train(data, config, settings, progress=False).promoted
    return Store(folder, data, config, settings)


def target_tickets(store: Store) -> pd.DataFrame:
    """Tickets of the export that went to TARGET."""
    export = pd.read_csv(store.data)
    return export[export["resolved_by"] == TARGET].head(40)


def answers(settings: Settings, tickets: pd.DataFrame) -> list[dict]:
    """The served champion's answers for `tickets` through the API."""
    with TestClient(create_app(settings), headers=bearer(settings, "agent")) as http:
        body = {
            "tickets": [
                {"id": str(r.ticket_id), "subject": str(r.subject), "body": str(r.body)} for r in tickets.itertuples()
            ]
        }
        response = http.post("/v1/suggestions/batch", json=body)
        assert response.status_code == 200, response.text
        return response.json()["results"]


def test_curves_and_the_holdout_counted_again_agree_with_the_evaluation(store: Store) -> None:
    router = load_router(store.settings, 1)
    metrics, report = reevaluate(router)  # the thresholds it was evaluated with: the same numbers
    for key in ("routing_coverage", "routing_precision", "escalate_precision", "uncertain_rate"):
        assert metrics[key] == pytest.approx(router.metrics[key]), key
    for target, entry in router.tradeoff.items():
        row = report[report["target"] == target].iloc[0]
        assert row["routed_precision"] == pytest.approx(
            router.per_target[target].get("routed_precision", np.nan), nan_ok=True
        )
        held = entry["holdout"]["at_threshold"]  # the curve's point is the holdout's routed precision, one way
        if held["precision"] is not None:
            assert held["precision"] == pytest.approx(row["routed_precision"], abs=1e-4), target
        out = entry["out_of_fold"]["at_threshold"]
        if out["precision"] is not None and entry["threshold"] <= 1:
            assert out["precision"] >= entry["precision"] - 1e-9, target  # the threshold keeps what it was chosen for
        coverage = [p["coverage"] for p in entry["out_of_fold"]["curve"]]
        assert coverage == sorted(coverage) and len(coverage) >= 10, target
        assert "other" not in router.tradeoff


def test_a_lead_sets_a_precision_the_new_version_serves_it_and_a_rollback_restores_the_old(store: Store) -> None:
    before = load_router(store.settings, 1)
    old = before.target_thresholds
    assert old is not None and old.precision_for(TARGET) == pytest.approx(0.9)
    result = CliRunner().invoke(
        app,
        ["thresholds", "--target", TARGET, "--precision", "0.97", "--by", "Dana Lead", "--reason", "misroutes"],
        env=store.env(),
    )
    assert result.exit_code == 0, result.output
    assert "champion: v1 -> v2; roll back: escalation promote --version 1" in result.output
    assert f"{TARGET}: precision 0.9 -> 0.97, threshold" in result.output
    assert store.champion() == "2"

    after = load_router(store.settings, 2)
    new = after.target_thresholds
    assert new is not None and new.precision_for(TARGET) == pytest.approx(0.97)
    assert new.set_by[TARGET].startswith("Dana Lead, ")
    assert new.per_target[TARGET] > old.per_target[TARGET]
    assert {t: v for t, v in new.per_target.items() if t != TARGET} == {
        t: v for t, v in old.per_target.items() if t != TARGET
    }
    # the same weights: both versions score a ticket alike
    frame = to_tickets(target_tickets(store), load_config(store.config))
    np.testing.assert_allclose(before.score(frame).targets, after.score(frame).targets, rtol=1e-6)
    # the threshold keeps the precision on the out-of-fold answers, at the same confidence as training's
    oof = after.routing_answers["out_of_fold"]
    j = after.targets.index(TARGET)
    mine = (oof.top == j) & (oof.probability >= new.per_target[TARGET])
    shown = oof.correct[mine].mean()
    assert wilson_lower(np.array(shown), np.array(mine.sum()), 1.0) >= 0.97 - 1e-9
    # out of fold fewer are routed; the holdout is counted again under the new threshold, as served
    assert after.tradeoff[TARGET]["set_by"] == new.set_by[TARGET]
    routed = {v: r.tradeoff[TARGET]["out_of_fold"]["at_threshold"]["routed"] for v, r in (("1", before), ("2", after))}
    assert routed["2"] < routed["1"]
    held = after.routing_answers["holdout"]
    assert held.p_escalation is not None and held.escalated is not None
    sent = (held.top == j) & (held.probability >= new.per_target[TARGET])
    sent &= held.p_escalation[held.escalated] >= after.thresholds.resolve_first
    assert after.tradeoff[TARGET]["holdout"]["at_threshold"]["routed"] == sent.sum()
    assert after.metrics["routing_coverage"] <= before.metrics["routing_coverage"]
    assert after.per_target[TARGET].get("routed_precision") == pytest.approx(
        after.tradeoff[TARGET]["holdout"]["at_threshold"]["precision"], abs=1e-4
    )

    # the run records who set what; the version says what it is
    client = MlflowClient(store.settings.tracking_uri, store.settings.tracking_uri)
    version = client.get_model_version(store.settings.model_name, "2")
    run = client.get_run(version.run_id)
    assert run.data.tags["kind"] == "thresholds" and run.data.tags["set_by"] == "Dana Lead"
    assert run.data.params["source_version"] == "1" and run.data.params["targets"] == TARGET
    assert run.data.params["reason"] == "misroutes" and run.data.params["precision"] == "0.97"
    assert float(run.data.params[f"threshold.{TARGET}"]) == pytest.approx(new.per_target[TARGET], abs=1e-4)
    changes = json.loads(Path(client.download_artifacts(run.info.run_id, "thresholds/changes.json")).read_text())
    assert [r[0] for r in changes["data"]] == [TARGET]
    assert version.tags["promotion"] == "promoted: thresholds set by Dana Lead: misroutes"
    precisions, set_by = lead_precisions(version)  # readable without loading the model (a champion that cannot)
    assert precisions == {TARGET: 0.97} and set_by[TARGET] == new.set_by[TARGET]
    assert "Roll back: escalation promote --version 1" in version.description

    # each answer says which precision its target's threshold keeps, and who set it
    served = answers(store.settings, target_tickets(store))
    routed_to_target = [a for a in served if a["routing"]["target"] == TARGET]
    assert len(routed_to_target) >= 10
    for a in routed_to_target:
        assert a["model"]["version"] == "2" and a["routing"]["precision"] == 0.97
        assert a["routing"]["precision_set_by"].startswith("Dana Lead, ")
    sure = next(a for a in routed_to_target if a["routing"]["decision"] == "route")  # the helpdesk note says it too
    note = note_for(SuggestionOut.model_validate(sure), sure["id"], "esc-")
    assert "sure enough to route (threshold kept at 97% precision, set by Dana Lead, " in note
    other = [a for a in served if a["routing"]["target"] != TARGET and a["routing"]["threshold_scope"] != "rule"]
    assert all(a["routing"]["precision"] == 0.9 and a["routing"]["precision_set_by"] is None for a in other)

    # rolling back is promoting the version before
    back = CliRunner().invoke(app, ["promote", "--version", "1", "--reason", "too few routed"], env=store.env())
    assert back.exit_code == 0, back.output
    assert store.champion() == "1"
    for a in answers(store.settings, target_tickets(store)):
        assert a["model"]["version"] == "1"
        if a["routing"]["target"] == TARGET:
            assert a["routing"]["precision"] == 0.9 and a["routing"]["precision_set_by"] is None


def test_retraining_keeps_what_a_lead_set(store: Store) -> None:
    done = set_thresholds(store.settings, 0.8, ["billing"], by="Lee")
    assert done.promoted and store.champion() == done.version
    again = train(store.data, store.config, store.settings, progress=False)
    router = load_router(store.settings, again.version)
    chosen = router.target_thresholds
    assert chosen is not None and chosen.precision_for("billing") == pytest.approx(0.8)
    assert chosen.set_by["billing"].startswith("Lee, ") and chosen.precision_for("engineering") == pytest.approx(0.9)
    run = MlflowClient(store.settings.tracking_uri, store.settings.tracking_uri).get_run(again.run_id)
    assert run.data.params["lead_precision.billing"].startswith("0.8 (Lee, ")
    # the new run logs the trade-off a lead reads in the MLflow UI, beside the other evaluation files
    logged = {
        f.path
        for f in MlflowClient(store.settings.tracking_uri, store.settings.tracking_uri).list_artifacts(
            again.run_id, "evaluation"
        )
    }
    assert {"evaluation/tradeoff.json", "evaluation/tradeoff.png", "evaluation/tradeoff_curves.json"} <= logged


def test_a_change_lists_what_it_changes_against_the_champion_it_replaces_and_reset_undoes_it(store: Store) -> None:
    start = store.champion()
    set_thresholds(store.settings, 0.97, [TARGET], by="Dana")
    # from an older version without Dana's choice: the output names TARGET too, whose precision goes back to 0.9
    result = CliRunner().invoke(
        app, ["thresholds", "--target", "billing", "--precision", "0.85", "--version", "1"], env=store.env()
    )
    assert result.exit_code == 0, result.output
    assert f"{TARGET}: precision 0.97 -> 0.9, threshold" in result.output and "billing: precision" in result.output
    # --reset gives a target back the training's precision: set by nobody, as in an answer
    reset = CliRunner().invoke(app, ["thresholds", "--target", "billing", "--reset"], env=store.env())
    assert reset.exit_code == 0, reset.output
    assert "billing: precision 0.85 -> 0.9" in reset.output
    chosen = load_router(store.settings, store.champion()).target_thresholds
    assert chosen is not None and chosen.precisions == {} and chosen.set_by == {}
    neither = CliRunner().invoke(app, ["thresholds", "--target", "billing"], env=store.env())
    assert neither.exit_code == 2 and "give either --precision P or --reset" in neither.output
    promote(store.settings, start, "test: back to where it started")


def test_a_champion_that_moved_meanwhile_is_never_replaced_unseen(store: Store) -> None:
    client = MlflowClient(store.settings.tracking_uri, store.settings.tracking_uri)
    start = store.champion()
    # a retrain reads the champion, then a lead's change lands while it trains: the challenger is not promoted
    prepared = prepare(store.data, store.config, store.settings, False, None, False)
    lead = set_thresholds(store.settings, 0.95, [TARGET], by="Dana")
    fitted = fit_and_evaluate(prepared, store.settings, False)
    challenged = replace(challenge(prepared, fitted, store.settings), promoted=True, reason="promoted: test")
    with Tracker.start(client, store.settings.experiment) as run:
        version = log_run(run, prepared, fitted, challenged, store.data, store.settings, False)
        promoted, reason = train_promote(run, prepared, fitted, challenged, version, store.settings, client)
    assert not promoted and f"champion moved from v{start} to v{lead.version} while this version trained" in reason
    assert store.champion() == lead.version
    # a lead's change whose champion moved before it was served: registered, not served, and said so
    outcome = _serve(client, store.settings, str(version.version), start, "test")
    assert outcome.startswith(f"champion moved from v{start} to v{lead.version} meanwhile")
    assert store.champion() == lead.version
    assert (
        client.get_model_version(store.settings.model_name, str(version.version))
        .tags["promotion"]
        .startswith("not promoted: champion moved")
    )


def test_target_names_mlflow_refuses_in_keys_are_logged_under_safe_keys() -> None:
    for name in ("Billing & Payments", "R&D", "2nd-line (EU)", "Team/Ops: night"):
        _validate_param_name(f"threshold.{param_key(name)}")  # raises on a key MLflow refuses
    assert param_key("billing") == "billing"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "legal", "--precision", "0.9"], "--target 'legal': not a target this version routes to"),
        (["--target", "other", "--precision", "0.9"], "--target 'other': not a target"),
        (["--precision", "0"], "--precision 0: give a precision above 0 and at most 1"),
        (["--precision", "0.9", "--version", "99"], "has no version 99"),
    ],
)
def test_a_refused_change_is_one_line_and_registers_nothing(store: Store, args: list[str], message: str) -> None:
    client = MlflowClient(store.settings.tracking_uri, store.settings.tracking_uri)
    versions = len(client.search_model_versions(f"name='{store.settings.model_name}'"))
    champion = store.champion()
    result = CliRunner().invoke(app, ["thresholds", *args], env=store.env())
    errors = [line for line in result.output.splitlines() if "error" in line.lower()]
    assert result.exit_code == 1 and len(errors) == 1 and errors[0].startswith("error: ") and message in errors[0]
    assert "Traceback" not in result.output
    assert len(client.search_model_versions(f"name='{store.settings.model_name}'")) == versions
    assert store.champion() == champion


def test_without_a_champion_it_says_what_to_do(tmp_path: Path) -> None:
    settings = store_settings(tmp_path)
    env = {"MLFLOW_TRACKING_URI": settings.tracking_uri}
    result = CliRunner().invoke(app, ["thresholds", "--precision", "0.9"], env=env)
    assert result.exit_code == 1 and "holds no models yet: train one first" in result.output
    assert not (tmp_path / "mlflow.db").exists()  # asking created no store
    MlflowClient(settings.tracking_uri).search_experiments()  # an empty store: no champion in it
    result = CliRunner().invoke(app, ["thresholds", "--precision", "0.9"], env=env)
    assert (
        result.exit_code == 1 and "has no champion to set thresholds on: train one, or give --version" in result.output
    )
