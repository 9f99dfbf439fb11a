"""Load the version the serving alias points at from the MLflow registry, once, and check it scores."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from features.mlflow_model import ModelUnavailable, RouterModel
from features.router import EscalationRouter
from features.settings import Settings

__all__ = ["LoadedModel", "ModelUnavailable", "champion_version", "load_champion", "load_version"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A router with the registry coordinates it came from."""

    router: EscalationRouter
    name: str
    version: str
    alias: str


def champion_version(settings: Settings) -> str:
    """The version number the serving alias points at now."""
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    try:
        return str(client.get_model_version_by_alias(settings.model_name, settings.model_alias).version)
    except MlflowException as err:
        raise ModelUnavailable(
            f"no version of {settings.model_name!r} has alias {settings.model_alias!r} "
            f"in {settings.tracking_uri}; run `escalation train` first"
        ) from err
    except Exception as err:  # an unreachable tracking server surfaces as many exception types
        raise ModelUnavailable(f"registry {settings.tracking_uri} unreachable: {err}") from err


def load_version(settings: Settings, version: str) -> LoadedModel:
    """Load one registered version and run a smoke prediction; a version that fails is never served."""
    uri = f"models:/{settings.model_name}/{version}"
    try:
        mlflow.set_registry_uri(settings.tracking_uri)
        mlflow.set_tracking_uri(settings.tracking_uri)
        wrapper = mlflow.pyfunc.load_model(uri).unwrap_python_model()
        if not isinstance(wrapper, RouterModel):
            raise TypeError(f"{uri} is not an escalation router model")
        wrapper.router.index.prepare(settings.ann_threshold)
        wrapper.router.smoke_test()
    except Exception as err:  # any failure here means this version must not be served
        raise ModelUnavailable(f"{uri} could not be loaded: {err}") from err
    log.info("loaded %s (alias %s)", uri, settings.model_alias)
    return LoadedModel(wrapper.router, settings.model_name, str(version), settings.model_alias)


def load_champion(settings: Settings) -> LoadedModel:
    """Resolve `models:/NAME@ALIAS` to a version, load it and run a smoke prediction."""
    return load_version(settings, champion_version(settings))
