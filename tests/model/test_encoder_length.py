"""The encoder's sequence length chosen from the data, and the settings that guard it."""

from __future__ import annotations

import pytest

from features.config import DEFAULT_EMBEDDING_MODEL, ConfigError, parse_config
from features.encoders.transformer import choose_max_length
from tests.conftest import Trained
from training.benchmark import run_benchmark
from training.register import load_router

BASE = {"columns": {"text": "body", "target": "team"}, "teams": {"first_line": "desk"}}


def test_length_reads_the_quantile_of_tickets_whole() -> None:
    short = ["printer jammed"] * 90 + ["word " * 150] * 10
    assert choose_max_length(short, DEFAULT_EMBEDDING_MODEL, 0.9) == 32  # the long tenth is cut
    assert choose_max_length(short, DEFAULT_EMBEDDING_MODEL, 0.95) == 160  # 150 words + [CLS]/[SEP], rounded up
    assert choose_max_length(["word " * 2000], DEFAULT_EMBEDDING_MODEL, 0.9) == 256  # never past the model's limit


def test_length_setting_is_validated() -> None:
    assert parse_config({**BASE, "model": {"max_seq_length": "auto"}}).model.max_seq_length == "auto"
    assert parse_config({**BASE, "model": {"max_seq_length": 128}}).model.max_seq_length == 128
    with pytest.raises(ConfigError, match="max_seq_length"):
        parse_config({**BASE, "model": {"max_seq_length": 8}})
    with pytest.raises(ConfigError, match="max_seq_length"):
        parse_config({**BASE, "model": {"max_seq_length": "long"}})


def test_trained_router_carries_the_chosen_length(trained: Trained) -> None:
    router = load_router(trained.settings, trained.result.version)
    assert isinstance(router.max_seq_length, int) and 32 <= router.max_seq_length <= 256


def test_benchmark_refuses_variants_that_need_other_embeddings(trained: Trained) -> None:
    with pytest.raises(ConfigError, match="max_seq_length"):
        run_benchmark(trained.data, trained.config, variants={"short": {"model.max_seq_length": "64"}}, progress=False)
