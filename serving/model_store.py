"""Load the version the serving alias points at from the MLflow registry, once, and check it scores."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from features.mlflow_model import RouterModel
from features.router import EscalationRouter
from features.settings import Settings

log = logging.getLogger(__name__)


class ModelUnavailable(RuntimeError):
    """No servable model: no alias yet, registry unreachable, or the version failed to load."""


@dataclass(frozen=True)
class LoadedModel:
    """A router with the registry coordinates it came from."""

    router: EscalationRouter
    name: str
    version: str
    alias: str


def load_champion(settings: Settings) -> LoadedModel:
    """Resolve `models:/NAME@ALIAS` to a version, load it and run a smoke prediction."""
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    try:
        version = client.get_model_version_by_alias(settings.model_name, settings.model_alias)
    except MlflowException as err:
        raise ModelUnavailable(
            f"no version of {settings.model_name!r} has alias {settings.model_alias!r} "
            f"in {settings.tracking_uri}; run `escalation train` first"
        ) from err
    uri = f"models:/{settings.model_name}/{version.version}"
    try:
        mlflow.set_registry_uri(settings.tracking_uri)
        mlflow.set_tracking_uri(settings.tracking_uri)
        wrapper = mlflow.pyfunc.load_model(uri).unwrap_python_model()
        if not isinstance(wrapper, RouterModel):
            raise TypeError(f"{uri} is not an escalation router model")
        wrapper.router.smoke_test()
    except Exception as err:  # any failure here means this version must not be served
        raise ModelUnavailable(f"{uri} could not be loaded: {err}") from err
    log.info("serving %s (alias %s)", uri, settings.model_alias)
    return LoadedModel(wrapper.router, settings.model_name, str(version.version), settings.model_alias)
