"""The MLflow pyfunc face of the router, so any MLflow client can load and score it."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from typing import Any

import mlflow.artifacts
import mlflow.pyfunc
import pandas as pd
from mlflow import MlflowClient

from features.encoders import removed_with
from features.model.present import present
from features.model.router import EscalationRouter
from features.text.privacy import Masker

ARTEFACT_KEY = "router"
log = logging.getLogger(__name__)


class RouterModel(mlflow.pyfunc.PythonModel):
    """Loads the router artefact; `predict` takes canonical tickets (id, text, metadata columns) and answers in
    the API's shape, masked as the API masks (names from ESCALATION_MASK_NAMES / _FILE where set)."""

    router: EscalationRouter
    mask: Masker | None = None

    def load_context(self, context: Any) -> None:
        self.router = EscalationRouter.load(context.artifacts[ARTEFACT_KEY])
        self.mask = environment_masker()

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        params = params or {}
        frame = model_input.copy()
        if "id" not in frame.columns:
            frame["id"] = [f"row-{i + 1}" for i in range(len(frame))]
        for name in self.router.metadata:
            if name not in frame.columns:
                frame[name] = ""
        mask = self.mask or Masker()
        results = self.router.predict(
            frame, top_k=int(params.get("top_k", 3)), n_similar=int(params.get("n_similar", 3))
        )
        return pd.DataFrame(
            {
                "id": [r.id for r in results],
                "escalation_probability": [r.escalation.probability for r in results],
                "decision": [r.escalation.decision for r in results],
                "top_target": [r.targets[0].target if r.targets else "" for r in results],
                "routing": [r.routing.decision for r in results],
                "result_json": [json.dumps(present(r, mask)) for r in results],
            }
        )


def download_registered(tracking_uri: str, name: str, version: str | int, folder: str) -> str:
    """Copy a registered version's files into `folder` (returns their path), from the store at `tracking_uri`,
    leaving MLflow's process-wide tracking and registry URI as they were."""
    source = MlflowClient(tracking_uri, tracking_uri).get_model_version_download_uri(name, str(version))
    return mlflow.artifacts.download_artifacts(artifact_uri=source, tracking_uri=tracking_uri, dst_path=folder)


def load_registered(tracking_uri: str, name: str, version: str | int) -> RouterModel:
    """A registered version's pyfunc wrapper, read from the store at `tracking_uri` without touching MLflow's
    process-wide tracking or registry URI. Its files are downloaded into a temporary folder of their own, removed
    once the router's encoder (which opens its graph from there) is done with: a served version swapped out, a
    router scored and dropped, or at exit."""
    folder = tempfile.mkdtemp(prefix="escalation-model-")
    try:
        loaded = mlflow.pyfunc.load_model(download_registered(tracking_uri, name, version, folder))
        python_model = loaded.unwrap_python_model()
        if not isinstance(python_model, RouterModel):
            raise TypeError(f"models:/{name}/{version} is not an escalation router model")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    # MLflow keeps the last model it loaded from code in a module global (mlflow.models.model.__mlflow_model__):
    # the router moves to a wrapper of our own, so that global never keeps a model, and its files, alive.
    wrapper = RouterModel()
    wrapper.router, wrapper.mask = python_model.router, python_model.mask
    del python_model.router
    removed_with(wrapper.router.encoder, folder)
    return wrapper


def environment_masker() -> Masker:
    """The masker of the names the environment lists (as the server reads them); patterns only when it lists none
    or its settings do not read."""
    from pydantic import ValidationError

    from features.settings import Settings
    from features.text.privacy import masker_for

    try:
        return masker_for(Settings())
    except (ValidationError, OSError) as err:
        log.warning("names to mask not read (%s): masking patterns and credentials only", err)
        return Masker()
