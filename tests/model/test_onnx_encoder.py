"""The sentence encoder exported to ONNX: the same embeddings as PyTorch, cached once, served without PyTorch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from features.config import DEFAULT_EMBEDDING_MODEL
from features.embed import embed_texts
from features.onnx_encoder import FILE_NAME, OnnxEncoder, OnnxExportError, export_encoder
from features.router import EscalationRouter
from tests.conftest import Trained, predict_in_fresh_process, store_settings
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
        "import sys; from features.onnx_encoder import export_encoder\n"
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
    assert isinstance(router.onnx, OnnxEncoder) and router.onnx.max_seq_length == router.max_seq_length
    folder = router.save(tmp_path / "artefact")
    assert (folder / FILE_NAME).stat().st_size > 10_000_000
    reloaded = EscalationRouter.load(folder)
    assert reloaded.onnx is not None and reloaded.onnx.path == folder / FILE_NAME
    assert predict_in_fresh_process(folder) == ("billing", False)


def test_runtime_torch_trains_a_model_without_a_graph(trained: Trained, tmp_path: Path) -> None:
    cfg = yaml.safe_load(trained.config.read_text())
    cfg.setdefault("model", {})["runtime"] = "torch"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    settings = store_settings(tmp_path)
    settings.embedding_cache = trained.settings.embedding_cache  # the cache is shared by both runtimes
    result = train(trained.data, config, settings, progress=False)
    router = load_router(settings, result.version)
    assert router.onnx is None
    assert abs(result.metrics["target_top1_accuracy"] - trained.result.metrics["target_top1_accuracy"]) < 0.02
