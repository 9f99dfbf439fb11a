"""Importing the package, building an app and loading an encoder change nothing process-wide."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# Set by the libraries themselves on import (PyTorch's compiler cache, MLflow's telemetry id), not by this code.
LIBRARIES_OWN = ("TORCHINDUCTOR_", "_MLFLOW_TELEMETRY_")

PROBE = """
import importlib, json, os, pkgutil, sys
OWN = __OWN__
before = dict(os.environ)
for package in ("features", "training", "serving", "escalation"):
    importlib.import_module(package)
    for info in pkgutil.walk_packages(sys.modules[package].__path__, package + "."):
        importlib.import_module(info.name)
from features.settings import Settings
from serving.app import create_app
create_app(Settings(auth_disabled=True))
from features.encoders.transformer import load_encoder
load_encoder("sentence-transformers/all-MiniLM-L6-v2")
changed = sorted(
    k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k) and not k.startswith(OWN)
)
print(json.dumps({"changed": changed, "pyplot": "matplotlib.pyplot" in sys.modules}))
"""


def test_imports_app_and_encoder_leave_the_process_as_it_was(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_", "MLFLOW_"))}
    probe = PROBE.replace("__OWN__", repr(LIBRARIES_OWN))
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=True
    )
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found == {"changed": [], "pyplot": False}, found


SERVE_PROBE = """
import json, os, sys
before = dict(os.environ)
from features.settings import Settings
from serving.model_store import load_version
from mlflow.tracking._tracking_service import utils
loaded = load_version(Settings(tracking_uri=sys.argv[1]), sys.argv[2])
print(json.dumps({"uri_set": utils.is_tracking_uri_set(), "version": loaded.version}))
"""


def test_loading_a_registered_model_leaves_mlflow_pointing_where_it_was(trained, tmp_path: Path) -> None:  # noqa: ANN001
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    args = [sys.executable, "-c", SERVE_PROBE, trained.settings.tracking_uri, trained.result.version]
    out = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"uri_set": False, "version": trained.result.version}


TRAIN_PROBE = """
import json, sys
from features.settings import Settings
from mlflow.tracking._tracking_service import utils
from mlflow.tracking._model_registry import utils as registry
from training.train import train
settings = Settings(tracking_uri=sys.argv[1], embedding_cache=sys.argv[2], experiment="probe")
result = train(sys.argv[3], sys.argv[4], settings, progress=False)
print(json.dumps({"uri_set": utils.is_tracking_uri_set(), "registry_set": registry._registry_uri is not None,
                  "version": result.version, "run": result.run_id}))
"""


def test_training_logs_and_registers_through_a_client_and_leaves_mlflow_as_it_was(trained, tmp_path: Path) -> None:  # noqa: ANN001
    from mlflow import MlflowClient
    from mlflow.entities import LoggedModelStatus

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    args = [sys.executable, "-c", TRAIN_PROBE, uri, trained.settings.embedding_cache, trained.data, trained.config]
    out = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert (found["uri_set"], found["registry_set"], found["version"]) == (False, False, "1")
    client = MlflowClient(uri, uri)
    run = client.get_run(found["run"])
    assert run.info.status == "FINISHED" and client.get_experiment(run.info.experiment_id).name == "probe"
    assert run.data.params["rows"] and "escalation_average_precision" in run.data.metrics
    assert run.data.tags["promotion"].startswith("promoted") and "mlflow.user" in run.data.tags
    shown = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/reliability.png", "evaluation/per_target.json"} <= shown
    version = client.get_model_version_by_alias("escalation-router", "champion")
    logged = client.get_logged_model(run.outputs.model_outputs[0].model_id)
    assert version.run_id == run.info.run_id and logged.status == LoggedModelStatus.READY
    assert logged.source_run_id == run.info.run_id and version.source == logged.artifact_location
