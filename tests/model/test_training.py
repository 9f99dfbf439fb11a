"""A real training run: what it logs to MLflow, what it registers, and when `champion` moves."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from features.model.router import EscalationRouter
from serving.model_store import load_champion
from tests.conftest import Trained, point_mlflow_at, store_settings
from training.register import load_router
from training.sample_data import write_sample
from training.train import train


@pytest.fixture(autouse=True)
def _this_store(trained: Trained, monkeypatch: pytest.MonkeyPatch) -> None:
    point_mlflow_at(trained.settings, monkeypatch)


def test_run_logs_params_metrics_and_artefacts(trained: Trained) -> None:
    client = MlflowClient(trained.settings.tracking_uri)
    run = client.get_run(trained.result.run_id)
    params, metrics = run.data.params, run.data.metrics
    assert params["model.embedding_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert len(params["data_fingerprint"]) == 64
    assert int(params["train_rows"]) + int(params["holdout_rows"]) == int(params["rows"]) == 900
    assert params["holdout"] == "newest" and params["columns.target"] == "resolved_by"
    for name in (
        "escalation_roc_auc",
        "escalation_average_precision",
        "escalation_recall_at_threshold",
        "target_top1_accuracy",
        "target_top3_accuracy",
        "target_macro_f1",
    ):
        assert 0.0 <= metrics[name] <= 1.0, name
    artefacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {
        "evaluation/confusion_matrix.png",
        "evaluation/reliability.png",
        "evaluation/coverage_precision.png",
        "evaluation/coverage_precision.json",
        "evaluation/metrics.json",
        "evaluation/per_target.json",
        "evaluation/slices.json",
        "evaluation/mistakes.json",
    } <= artefacts
    logged = json.loads(mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/evaluation/metrics.json"))
    assert logged["target_top1_accuracy"] == metrics["target_top1_accuracy"]


def test_model_is_registered_with_champion_alias_and_signature(trained: Trained) -> None:
    client = MlflowClient(trained.settings.tracking_uri, trained.settings.tracking_uri)
    champion = client.get_model_version_by_alias("escalation-router", "champion")
    assert str(champion.version) == trained.result.version == "1"
    assert trained.result.promoted and "no champion existed" in trained.result.reason
    assert trained.result.run_id in champion.description
    info = mlflow.models.get_model_info("models:/escalation-router@champion")
    assert {c.name for c in info.signature.inputs} >= {"id", "text", "channel", "customer_tier"}
    assert {c.name for c in info.signature.outputs} >= {"escalation_probability", "decision", "top_target"}
    model = mlflow.pyfunc.load_model("models:/escalation-router@champion")
    out = model.predict(pd.DataFrame({"text": ["I was charged twice, please refund"], "channel": ["email"]}))
    assert out.loc[0, "top_target"] == "billing"
    assert json.loads(out.loc[0, "result_json"])["suggestions"][0]["target"] == "billing"


def test_artefact_carries_what_serving_needs(trained: Trained) -> None:
    router = load_router(trained.settings, trained.result.version)
    assert isinstance(router, EscalationRouter)
    assert router.embedding_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert router.kinds["support-manager"] == "hierarchical" and router.kinds["billing"] == "functional"
    assert router.first_line == ["service-desk"] and "service-desk" not in router.targets
    assert 0 < router.thresholds.resolve_first <= router.thresholds.escalate <= 1
    assert len(router.index.ids) == int(0.8 * 900) and router.index.vectors.shape[1] == 384
    assert router.index.resolutions is not None
    assert router.metrics == trained.result.metrics


def test_holdout_quality_on_sample(trained: Trained) -> None:
    m = trained.result.metrics
    assert m["escalation_average_precision"] > 0.9
    # a floor against breakage on a 94-ticket holdout; bench/quality.py measures quality properly
    assert m["target_top1_accuracy"] > 0.8 and m["target_top3_accuracy"] > 0.9


def test_same_data_does_not_replace_champion(trained: Trained) -> None:
    again = train(trained.data, trained.config, trained.settings, progress=False)
    assert again.version == "2" and not again.promoted
    # same data, same seed: same model (to float rounding: BLAS thread counts change the order of sums)
    assert again.metrics == pytest.approx(trained.result.metrics, rel=1e-5, abs=1e-9)
    client = MlflowClient(trained.settings.tracking_uri, trained.settings.tracking_uri)
    assert str(client.get_model_version_by_alias("escalation-router", "champion").version) == "1"
    tag = client.get_model_version("escalation-router", "2").tags["promotion"]
    assert tag.startswith("kept champion v1: routing_score")


def test_run_has_slices_calibration_and_a_model_card(trained: Trained) -> None:
    client = MlflowClient(trained.settings.tracking_uri, trained.settings.tracking_uri)
    run = client.get_run(trained.result.run_id)
    metrics = run.data.metrics
    for name in ("non_english", "alerts", "rare_targets"):
        assert f"slice_{name}_target_top1_accuracy" in metrics, name
    assert 0 <= metrics["escalation_ece"] < 0.15 and 0 <= metrics["target_ece"] < 0.2
    assert metrics["routing_precision"] >= 0.85 and 0.5 < metrics["routing_coverage"] <= 1.0
    card = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/model_card.md")
    assert card.startswith("# Model card: escalation-router v1")
    for part in ("## Data", "## Per slice", "## Per target", "## Known limits", "support-manager", "window 2025-"):
        assert part in card, part
    slices = json.loads(mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/evaluation/slices.json"))
    assert set(slices["columns"]) >= {"slice", "tickets", "target_top1_accuracy"}
    tickets = {row[0]: row[1] for row in slices["data"]}
    assert set(tickets) == {"short", "non_english", "alerts", "rare_targets"} and all(tickets.values()), tickets
    description = client.get_model_version("escalation-router", "1").description
    assert "artifacts/model_card.md" in description and "evaluation/reliability.png" in description


def test_rules_are_reported_on_the_holdout(trained: Trained) -> None:
    client = MlflowClient(trained.settings.tracking_uri, trained.settings.tracking_uri)
    run = client.get_run(trained.result.run_id)
    assert run.data.params["rules"] == "legal-threat,outage"
    assert run.data.metrics["rule_legal-threat_fired"] >= 1
    assert run.data.metrics["rule_legal-threat_agreement"] >= 0.8  # legal threats in the sample go to the manager
    table = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/evaluation/rules.json")
    assert [row[0] for row in table["data"]] == ["legal-threat", "outage"]


def test_per_target_thresholds_travel_with_the_model(trained: Trained) -> None:
    router = load_router(trained.settings, trained.result.version)
    tt = router.target_thresholds
    assert tt is not None and tt.target_precision == 0.9
    assert set(tt.per_target) <= set(router.targets) and len(tt.per_target) >= 3
    result = router.predict(pd.DataFrame({"id": ["x"], "text": ["I was charged twice, please refund one"]}))[0]
    routing = result.routing
    assert routing.target == result.targets[0].target == "billing"
    assert routing.threshold == round(tt.decide("billing", 0.0)[1], 4)
    assert routing.decision == ("route" if routing.probability >= routing.threshold else "uncertain")


def test_a_large_index_saves_its_graph_and_the_server_restores_it(tmp_path: Path) -> None:
    data, config = write_sample(tmp_path, rows=400, seed=9)
    settings = store_settings(tmp_path).model_copy(update={"ann_threshold": 100})  # 320 training tickets
    train(data, config, settings, progress=False)
    loaded = load_champion(settings)
    index = loaded.router.index
    assert index.graph and index.approximate is not None and index.approximate.restored
    assert index.search(index.vectors[:3], 1)[0][:, 0].tolist() == [0, 1, 2]
