"""The quality benchmark runs every column on the same folds and writes its table."""

import json
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from features.data import DataError
from tests.conftest import Trained
from training.benchmark import KnnVote, Product, TunedLinear, log_to_mlflow, run_benchmark, write_results


def test_benchmark_on_the_sample(trained: Trained, tmp_path: Path) -> None:
    result = run_benchmark(
        trained.data,
        trained.config,
        folds=2,
        variants={
            "product": {},
            "no vote": {"model.knn_weight": "0"},
        },
        cache=tmp_path / "cache.sqlite",
        progress=False,
        log=lambda _: None,
    )
    names = [r["model"] for r in result.rows]
    assert names == [
        "most frequent target",
        "TF-IDF (word 1-2 + char 2-5) + LR, C by inner CV",
        "TF-IDF nearest-neighbour vote",
        "embeddings + LR, C by inner CV",
        "product",
        "no vote",
    ]
    rows = {r["model"]: r for r in result.rows}
    assert abs(rows["most frequent target"]["escalation_roc_auc"] - 0.5) < 0.02  # fold rates differ slightly
    assert rows["product"]["target_top1_accuracy"] > rows["most frequent target"]["target_top1_accuracy"] + 0.4
    # the thresholds chosen inside each training fold hold their precision on the unseen fold
    assert rows["product"]["escalate_precision"] >= 0.85 and rows["product"]["routing_precision"] >= 0.85
    assert "routing_precision" not in rows["embeddings + LR, C by inner CV"]
    # every baseline's settings were chosen inside each training part, one choice per fold, from its grid
    tfidf = rows["TF-IDF (word 1-2 + char 2-5) + LR, C by inner CV"]["chosen"]
    assert len(tfidf) == 2 and all(c["target_C"] in TunedLinear.TARGET_GRID for c in tfidf)
    assert all(c["target_k"] in KnnVote.TARGET_GRID for c in rows["TF-IDF nearest-neighbour vote"]["chosen"])
    assert all(c["target_C"] in (0.1, 0.5, 2.0) for c in rows["product"]["chosen"])
    assert all(c["knn_k"] in (10, 30) for c in rows["product"]["chosen"])  # the vote's k, chosen out of fold too
    # per team size, and per team for the product: routed share and precision on unseen tickets
    sizes = rows["product"]["by_team_size"]
    assert sum(v["tickets"] for v in sizes.values()) == sum(v[0] for v in rows["product"]["per_team_routing"].values())
    per_team = rows["product"]["per_team_routing"]
    assert set(per_team) >= {"billing", "engineering"} and all(
        n >= routed >= right for n, routed, right in per_team.values()
    )
    # the sample has dates: the product is also scored on the newest tickets
    assert [r["model"] for r in result.meta["newest"]["rows"]] == ["product", "no vote"]
    md, js = write_results(result, tmp_path, "t")
    text = md.read_text()
    assert "| product |" in text and "## By team size" in text and "## Routing per team: product" in text
    assert json.loads(js.read_text())["folds"] == 2
    store = f"sqlite:///{tmp_path / 'bench.db'}"
    run_id = log_to_mlflow(result, "t", store, (md, js))
    logged = MlflowClient(store).get_run(run_id)
    assert logged.data.metrics["product.target_top1_accuracy"] == rows["product"]["target_top1_accuracy"]
    assert logged.info.status == "FINISHED" and logged.data.params["folds"] == "2"
    again = run_benchmark(
        trained.data,
        trained.config,
        folds=2,
        cache=tmp_path / "cache.sqlite",
        progress=False,
        log=lambda _: None,
        baselines_from=js,
    )
    # the baselines come from the earlier result on the same folds; the product is computed again, the same
    assert [r["model"] for r in again.rows] == names[:4] + ["product"]
    assert again.rows[:4] == json.loads(js.read_text())["rows"][:4]
    assert again.rows[4]["target_top1_accuracy"] == rows["product"]["target_top1_accuracy"]  # cached, same folds
    with pytest.raises(DataError, match="other data or another split"):
        run_benchmark(
            trained.data,
            trained.config,
            folds=3,
            cache=tmp_path / "cache.sqlite",
            baselines_from=js,
            progress=False,
            log=lambda _: None,
        )


def test_variant_can_add_a_metadata_column_the_config_does_not_name(trained: Trained, tmp_path: Path) -> None:
    config = yaml.safe_load(trained.config.read_text())
    config["columns"]["metadata"] = []
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump(config))
    fitted: dict[str, list[str]] = {}
    original = Product.fit

    def spy(self: Product, fold: object) -> Product:
        out = original(self, fold)  # type: ignore[arg-type]
        fitted[self.name] = sorted({source for source, _ in self.router_.lexical.names_})
        return out

    Product.fit = spy  # type: ignore[method-assign]
    try:
        result = run_benchmark(
            trained.data,
            plain,
            folds=2,
            variants={"text only": {}, "with channel": {"columns.metadata": "channel"}},
            cache=tmp_path / "cache.sqlite",
            baselines=False,
            progress=False,
            log=lambda _: None,
        )
    finally:
        Product.fit = original  # type: ignore[method-assign]
    assert "channel" not in fitted["text only"] and "channel" in fitted["with channel"]
    a, b = result.rows
    assert (a["target_top1_accuracy"], a["escalation_average_precision"]) != (
        b["target_top1_accuracy"],
        b["escalation_average_precision"],
    )


def test_cross_language_split_trains_on_one_value_and_scores_another(trained: Trained, tmp_path: Path) -> None:
    result = run_benchmark(
        trained.data,
        trained.config,
        cache=tmp_path / "cache.sqlite",
        baselines=False,
        progress=False,
        log=lambda _: None,
        split_by=("channel", "email", "chat"),
    )
    assert "trained on channel = email" in result.meta["split"] and result.meta["newest"] is None
    scored = sum(v["tickets"] for v in result.rows[0]["by_team_size"].values())
    assert 0 < scored < 0.5 * result.meta["escalated"]  # the chat tickets only
    with pytest.raises(DataError, match="no rows with channel = 'fax'"):
        run_benchmark(
            trained.data,
            trained.config,
            cache=tmp_path / "c.sqlite",
            baselines=False,
            progress=False,
            log=lambda _: None,
            split_by=("channel", "email", "fax"),
        )
