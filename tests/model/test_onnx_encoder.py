"""The sentence encoder exported to ONNX: the same embeddings as PyTorch, cached once, served without PyTorch."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from features.config import DEFAULT_EMBEDDING_MODEL, ModelOptions
from features.encoders.onnx import FILE_NAME, OnnxEncoder, OnnxExportError, configured_tokenizer, export_encoder
from features.encoders.transformer import TransformerEncoder, embed_texts, resolve_model
from features.model.router import EscalationRouter
from tests.conftest import Trained, predict_in_fresh_process, store_settings
from training.encode import embed_tickets
from training.register import load_router
from training.train import train

TEXTS = [
    "",
    "vpn",
    "I was charged twice for the Team plan this month, please refund one of the payments.",
    "Passwort zurücksetzen bitte, ich bin seit heute morgen gesperrt",
    "job_scheduler failed on host abc-prod-17: error 0x80070005 access denied " * 30,  # cut at the length
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> OnnxEncoder:
    return export_encoder(DEFAULT_EMBEDDING_MODEL, 64, tmp_path_factory.mktemp("onnx"))


def test_onnx_gives_the_pytorch_embeddings_alone_and_in_batches(exported: OnnxEncoder) -> None:
    torch_rows = embed_texts(TEXTS, DEFAULT_EMBEDDING_MODEL, 64)
    batched = exported.encode(TEXTS, batch_size=3)  # batches mix lengths, so padding is exercised
    alone = np.vstack([exported.encode([t]) for t in TEXTS])
    assert batched.shape == (len(TEXTS), 384) and batched.dtype == np.float32
    assert np.allclose(np.linalg.norm(batched, axis=1), 1, atol=1e-5)
    assert (batched * torch_rows).sum(axis=1).min() > 0.9999
    assert (alone * torch_rows).sum(axis=1).min() > 0.9999
    longer = export_encoder(DEFAULT_EMBEDDING_MODEL, 256, Path(exported.path).parent)  # same graph, longer read
    assert longer.path == exported.path
    assert (longer.encode(TEXTS[-1:]) @ exported.encode(TEXTS[-1:]).T)[0, 0] < 0.9999  # the length is honoured


def test_the_export_is_cached_and_needs_no_pytorch_the_second_time(exported: OnnxEncoder) -> None:
    folder = Path(exported.path).parent
    stamp = exported.path.stat().st_mtime_ns
    assert sorted(p.suffix for p in folder.iterdir()) == [".json", ".onnx"]  # no partial file left behind
    code = (
        "import sys; from features.encoders.onnx import export_encoder\n"
        f"e = export_encoder({DEFAULT_EMBEDDING_MODEL!r}, 64, {str(folder)!r})\n"
        "print(e.encode(['hello']).shape, 'torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[2], check=True
    )
    assert done.stdout.split()[-1] == "False", done.stdout
    assert exported.path.stat().st_mtime_ns == stamp


def test_an_encoder_without_its_graph_says_so(tmp_path: Path, exported: OnnxEncoder) -> None:
    with pytest.raises(OnnxExportError, match=FILE_NAME):
        OnnxEncoder(**{k: v for k, v in exported.__getstate__().items() if not k.startswith("_")}).attach(tmp_path)


def test_the_champion_carries_its_graph_and_serves_without_pytorch(trained: Trained, tmp_path: Path) -> None:
    router = load_router(trained.settings, trained.result.version)
    assert isinstance(router.encoder, OnnxEncoder) and router.encoder.runtime == "onnx"
    assert router.encoder.max_seq_length == router.max_seq_length and router.max_seq_length is not None
    folder = router.save(tmp_path / "artefact")
    assert (folder / FILE_NAME).stat().st_size > 10_000_000
    reloaded = EscalationRouter.load(folder)
    assert isinstance(reloaded.encoder, OnnxEncoder) and reloaded.encoder.path == folder / FILE_NAME
    assert predict_in_fresh_process(folder) == ("billing", False)


def test_runtime_torch_trains_the_same_model_without_a_graph(trained: Trained, tmp_path: Path) -> None:
    cfg = yaml.safe_load(trained.config.read_text())
    cfg.setdefault("model", {})["runtime"] = "torch"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    settings = store_settings(tmp_path)  # an empty embedding cache: every ticket is embedded by PyTorch here
    result = train(trained.data, config, settings, progress=False)
    router = load_router(settings, result.version)
    assert isinstance(router.encoder, TransformerEncoder) and router.encoder.runtime == "torch"
    for metric in ("target_top1_accuracy", "escalation_average_precision"):
        assert abs(result.metrics[metric] - trained.result.metrics[metric]) < 0.01, metric


def test_a_model_that_cannot_be_exported_runs_on_pytorch_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A real model the export refuses: the bundled one, told to prefix every text with a prompt.
    source, _ = resolve_model(DEFAULT_EMBEDDING_MODEL)
    prompted = tmp_path / "prompted"
    shutil.copytree(source, prompted)
    (prompted / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": {"query": "query: "}, "default_prompt_name": "query"})
    )
    opts = ModelOptions(embedding_model=str(prompted), max_seq_length=64)
    with caplog.at_level(logging.WARNING):
        embedded = embed_tickets(TEXTS, np.arange(len(TEXTS)), opts, tmp_path / "cache" / "embeddings.sqlite", False)
    assert isinstance(embedded.encoder, TransformerEncoder)
    assert "adds a prompt" in caplog.text and "runs on PyTorch instead" in caplog.text
    assert (embedded.vectors * embed_texts(TEXTS, str(prompted), 64)).sum(axis=1).min() > 0.9999
    assert not list((tmp_path / "cache").rglob("*.onnx")) and not list((tmp_path / "cache").rglob("*.partial"))


def test_the_tokenizer_keeps_the_models_padding_and_truncation_sides(exported: OnnxEncoder) -> None:
    from tokenizers import Tokenizer

    saved = Tokenizer.from_str(exported.tokenizer_json)
    saved.enable_padding(direction="left", pad_id=1, pad_token="<pad>")  # as RoBERTa-style models save it
    saved.enable_truncation(512, direction="left")
    tokenizer = configured_tokenizer(Tokenizer.from_str(saved.to_str()), 8)
    assert tokenizer.padding["direction"] == "left" and tokenizer.padding["pad_id"] == 1
    assert tokenizer.padding["length"] is None  # to the longest text of each call
    assert tokenizer.truncation["max_length"] == 8 and tokenizer.truncation["direction"] == "left"
    short, long = tokenizer.encode_batch(["vpn", "one two three four five six seven eight nine ten"])
    assert len(long.ids) == len(short.ids) == 8 and short.ids[0] == 1  # padded on the left with the model's id


def test_the_graph_runs_onnx_runtimes_fused_attention(exported: OnnxEncoder) -> None:
    import onnx

    operators = {node.op_type for node in onnx.load(str(exported.path)).graph.node}
    assert {"Attention", "SkipLayerNormalization", "BiasGelu"} <= operators  # and the first test: the same vectors
    assert "Softmax" not in operators  # no attention left unfused
    note = json.loads(Path(exported.path).with_suffix(".json").read_text())
    assert note["fused"]["Attention"] == 6  # one per layer, recorded beside the graph


def test_a_fused_graph_that_strays_from_the_model_is_not_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import copy

    import torch

    from features.encoders.onnx import _check, _eager_attention, _fuse, _trace
    from features.encoders.transformer import load_encoder

    model = copy.deepcopy(load_encoder(DEFAULT_EMBEDDING_MODEL, 64))  # changed below: not the process's shared one
    inner = next(m for m in model.modules() if hasattr(m, "set_attn_implementation"))
    before = inner.config._attn_implementation
    assert before != "eager"
    with _eager_attention(model):
        assert inner.config._attn_implementation == "eager"
    assert inner.config._attn_implementation == before  # the model is left as it was loaded
    with pytest.raises(RuntimeError, match="trace failed"), _eager_attention(model):
        raise RuntimeError("trace failed")
    assert inner.config._attn_implementation == before  # also when tracing fails
    sample = model.preprocess(["an example ticket", "a second, somewhat longer example ticket text"])
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
    graph = tmp_path / "encoder.onnx"
    _trace(model, sample, names, graph, "minilm")
    fast = model.tokenizer.backend_tokenizer
    meta = {"tokenizer_json": fast.to_str(), "input_names": names, "max_seq_length": 64, "dimension": 384}
    _check(model, meta, graph, "minilm")
    traced = graph.read_bytes()
    with torch.no_grad():  # the model changes after tracing: its fused graph no longer gives its embeddings
        next(model.parameters()).mul_(1.5)
    with caplog.at_level(logging.INFO, logger="features.encoders.onnx"):
        _fuse(model, meta, graph, "minilm")
    assert "gives other embeddings" in caplog.text  # fused, then refused by the check
    assert graph.read_bytes() == traced and [p.name for p in tmp_path.iterdir()] == ["encoder.onnx"]
    assert meta["fused"] == {}


def test_a_new_export_removes_the_models_graphs_from_other_versions_only(tmp_path: Path) -> None:
    old = {"encoder-0ld.json": "", "encoder-0ld.onnx": "graph", "encoder-0ld-int8-abc.onnx": "int8 graph"}
    other = {"encoder-0ther.json": "", "encoder-0ther.onnx": "graph", "encoder-0ther-int8-abc.onnx": "int8 graph"}
    for name, body in (old | other).items():
        (tmp_path / name).write_text(body)
    (tmp_path / "encoder-0ld.json").write_text(json.dumps({"source": DEFAULT_EMBEDDING_MODEL}))
    (tmp_path / "encoder-0ther.json").write_text(json.dumps({"source": "another/model"}))
    (tmp_path / "encoder-br0ken.json").write_text("{not json")
    encoder = export_encoder(DEFAULT_EMBEDDING_MODEL, 64, tmp_path)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert not set(old) & set(left)  # an earlier export of this model, and its int8 graph: gone
    assert set(other) | {"encoder-br0ken.json", encoder.path.name} <= set(left)  # another model's, and unknowns: kept
    assert encoder.encode(["vpn"]).shape == (1, 384)
    stale = encoder.path.with_name(f"{encoder.path.stem}-int8-0therquantiser.onnx")
    stale.write_text("an int8 graph quantised otherwise")
    int8 = export_encoder(DEFAULT_EMBEDDING_MODEL, 64, tmp_path, "int8")
    assert int8.path.is_file() and encoder.path.is_file() and not stale.exists()
