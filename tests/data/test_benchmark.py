"""The quality benchmark runs every column on the same folds and writes its table."""

import json
from pathlib import Path

import yaml

from tests.conftest import Trained
from training.benchmark import Product, run_benchmark, write_results


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
        "TF-IDF (word 1-2 + char 2-5) + LR",
        "embeddings + LR",
        "product",
        "no vote",
    ]
    rows = {r["model"]: r for r in result.rows}
    assert abs(rows["most frequent target"]["escalation_roc_auc"] - 0.5) < 0.02  # fold rates differ slightly
    assert rows["product"]["target_top1_accuracy"] > rows["most frequent target"]["target_top1_accuracy"] + 0.4
    # the thresholds chosen inside each training fold hold their precision on the unseen fold
    assert rows["product"]["escalate_precision"] >= 0.85 and rows["product"]["routing_precision"] >= 0.85
    assert "routing_precision" not in rows["embeddings + LR"]
    md, js = write_results(result, tmp_path, "t")
    assert "| product |" in md.read_text() and json.loads(js.read_text())["folds"] == 2
    again = run_benchmark(
        trained.data,
        trained.config,
        folds=2,
        cache=tmp_path / "cache.sqlite",
        baselines=False,
        progress=False,
        log=lambda _: None,
    )
    assert again.rows[0]["target_top1_accuracy"] == rows["product"]["target_top1_accuracy"]  # cached, same folds


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
