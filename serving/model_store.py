"""Load the version the serving alias points at from the MLflow registry, once, and check it scores."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from features.model.pyfunc import RouterModel, download_registered, load_registered
from features.model.router import EscalationRouter
from features.settings import Settings
from serving.locks import held

__all__ = [
    "LoadedModel",
    "ModelUnavailable",
    "RegistryUnreachable",
    "champion_version",
    "load_cached",
    "load_champion",
    "load_version",
    "remember",
    "remember_later",
]
CACHED = "local cache"
NOT_FOUND = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}  # the registry answered: there is no such alias

log = logging.getLogger(__name__)
# MLflow's HTTP client retries an unreachable server for minutes by default; a server wants to know sooner. MLflow
# reads these from the environment only, so the process that serves (`escalation serve`) sets them, not the app.
REGISTRY_CLIENT_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


class ModelUnavailable(RuntimeError):
    """No servable model: no alias yet, registry unreachable, or the version failed to load or score."""


class RegistryUnreachable(ModelUnavailable):
    """The registry did not answer (rather than: it has no version with the alias)."""


@dataclass(frozen=True)
class LoadedModel:
    """A router with the registry coordinates it came from, and where it was loaded from."""

    router: EscalationRouter
    name: str
    version: str
    alias: str
    source: str = "registry"  # or CACHED: the copy kept from the last load, while the registry is unreachable


_CREDENTIALS = re.compile(r"(//)[^/@\s]+@|((?:password|token|secret)=)[^&\s]+", re.IGNORECASE)


def scrub(text: str) -> str:
    """Text about a store without the credentials its URI may carry: /readyz and logs show it."""
    return _CREDENTIALS.sub(lambda m: f"{m.group(1)}***@" if m.group(1) else f"{m.group(2)}***", text)


def champion_version(settings: Settings) -> str:
    """The version number the serving alias points at now."""
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    try:
        return str(client.get_model_version_by_alias(settings.model_name, settings.model_alias).version)
    except MlflowException as err:
        if err.error_code in NOT_FOUND:
            raise ModelUnavailable(
                f"no version of {settings.model_name!r} has alias {settings.model_alias!r} "
                f"in {scrub(settings.tracking_uri)}; run `escalation train` first"
            ) from err
        raise RegistryUnreachable(scrub(f"registry {settings.tracking_uri} unreachable: {err.message[:300]}")) from err
    except Exception as err:  # an unreachable tracking server surfaces as many exception types
        raise RegistryUnreachable(scrub(f"registry {settings.tracking_uri} unreachable: {err}")) from err


def load_version(settings: Settings, version: str) -> LoadedModel:
    """Load one registered version and run a smoke prediction; a version that fails is never served."""
    uri = f"models:/{settings.model_name}/{version}"
    try:
        router = _ready(load_registered(settings.tracking_uri, settings.model_name, version), uri, settings)
    except Exception as err:  # any failure here means this version must not be served
        raise ModelUnavailable(scrub(f"{uri} could not be loaded: {err}")) from err
    log.info("loaded %s (alias %s)", uri, settings.model_alias)
    return LoadedModel(router, settings.model_name, str(version), settings.model_alias)


def _ready(wrapper: object, where: str, settings: Settings) -> EscalationRouter:
    if not isinstance(wrapper, RouterModel):
        raise TypeError(f"{where} is not an escalation router model")
    wrapper.router.index.prepare(settings.ann_threshold)
    wrapper.router.smoke_test()
    return wrapper.router


_remember_lock = threading.Lock()


def remember(settings: Settings, loaded: LoadedModel, served: Callable[[], LoadedModel | None] = lambda: None) -> None:
    """Keep a copy of the version just loaded in `settings.model_cache_dir`, so a restart while the registry is
    unreachable still serves it. Replaces the previous copy only once the new one is whole, one copy at a time,
    and not at all when `served()` says another version has been swapped in meanwhile."""
    if not settings.model_cache_dir or loaded.source != "registry":
        return
    folder = Path(settings.model_cache_dir)
    with _remember_lock, held(folder.with_name(f".{folder.name}.lock")):  # workers replace the copy one at a time
        current = served()
        if current is None or current.version == loaded.version:
            _remember(settings, loaded)


def remember_later(settings: Settings, loaded: LoadedModel, served: Callable[[], LoadedModel | None]) -> None:
    """`remember` on a thread of its own: downloading the copy never delays serving the version."""
    threading.Thread(target=remember, args=(settings, loaded, served), name="model-cache", daemon=True).start()


def _remember(settings: Settings, loaded: LoadedModel) -> None:
    folder = Path(settings.model_cache_dir)
    meta = {
        "name": loaded.name,
        "version": loaded.version,
        "alias": loaded.alias,
        "registry": scrub(settings.tracking_uri),
    }
    try:
        if json.loads((folder / "served.json").read_text())["version"] == loaded.version:
            return
    except (OSError, ValueError, KeyError):
        pass
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        got = download_registered(settings.tracking_uri, loaded.name, loaded.version, str(staging / "download"))
        os.replace(got, staging / "model")  # the model's files arrive in a folder of the store's naming
        shutil.rmtree(staging / "download", ignore_errors=True)
        (staging / "served.json").write_text(json.dumps({**meta, "cached_at": datetime.now(UTC).isoformat()}))
        old = folder.with_name(f".{folder.name}-old")
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            os.replace(folder, old)
        os.replace(staging, folder)
        shutil.rmtree(old, ignore_errors=True)
        log.info("kept version %s in %s for starts without the registry", loaded.version, folder)
    except Exception as err:  # caching is a convenience: never let it stop serving
        log.warning("could not keep version %s in %s: %s", loaded.version, folder, err)
        shutil.rmtree(staging, ignore_errors=True)


def load_cached(settings: Settings) -> LoadedModel:
    """The copy kept by `remember`, loaded and smoke-tested like a registry version."""
    folder = Path(settings.model_cache_dir)
    try:
        meta = json.loads((folder / "served.json").read_text())
        if (meta["name"], meta["alias"]) != (settings.model_name, settings.model_alias):
            raise ValueError(
                f"it holds {meta['name']}@{meta['alias']}, not {settings.model_name}@{settings.model_alias}"
            )
        router = _ready(mlflow.pyfunc.load_model(str(folder / "model")).unwrap_python_model(), str(folder), settings)
    except Exception as err:
        raise ModelUnavailable(f"no usable model in the local cache {folder}: {err}") from err
    log.warning("serving version %s from the local cache %s: the registry is unreachable", meta["version"], folder)
    return LoadedModel(router, meta["name"], str(meta["version"]), meta["alias"], CACHED)


def load_champion(settings: Settings) -> LoadedModel:
    """Resolve `models:/NAME@ALIAS` to a version, load it and run a smoke prediction."""
    return load_version(settings, champion_version(settings))
