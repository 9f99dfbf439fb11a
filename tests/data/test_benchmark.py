"""The quality benchmark runs every column on the same folds and writes its table."""

import json
from pathlib import Path

from tests.conftest import Trained
from training.benchmark import run_benchmark, write_results


def test_benchmark_on_the_sample(trained: Trained, tmp_path: Path) -> None:
    result = run_benchmark(
        trained.data,
        trained.config,
        folds=2,
        variants={"product": {}, "no vote": {"model.knn_weight": "0"}},
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
