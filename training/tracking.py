"""One MLflow run written through a client on the configured store, so no process-wide tracking URI is touched."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus
from mlflow.tracking.context.registry import resolve_tags

BATCH = 100  # params (and metrics) per request: the stores take batches of limited size


def experiment_id(client: MlflowClient, name: str) -> str:
    """The experiment's id, created on first use (its artefacts kept where `artifact_location` says)."""
    found = client.get_experiment_by_name(name)
    if found:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=artifact_location(client.tracking_uri, name))


def sqlite_database(tracking_uri: str) -> Path | None:
    """The database file of a sqlite store's URI; None for other stores (and an in-memory one)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = tracking_uri.removeprefix("sqlite:///").split("?")[0]
    return Path(database) if database and database != ":memory:" else None


def store_missing(tracking_uri: str) -> bool:
    """Whether the store is a sqlite file that does not exist yet: it holds nothing, and a read must not create it
    (a command refused before it logs leaves no store behind)."""
    database = sqlite_database(tracking_uri)
    return database is not None and not database.exists()


def artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """Where a new experiment of a sqlite store keeps its artefacts: in `mlruns/` beside the database, so a store
    is one folder wherever a command runs (MLflow's default is `./mlruns` in the working directory, which scatters
    a store's models over every folder `escalation train` ran in). None for other stores: a tracking server or a
    database server decides for itself."""
    database = sqlite_database(tracking_uri)
    if database is None:
        return None
    folder = re.sub(r"[^\w.-]+", "-", experiment).strip("-.") or "experiment"
    return str(database.absolute().parent / "mlruns" / folder)


@dataclass
class Tracker:
    """A run being written: parameters, metrics, tags and artefacts go to `run_id` through `client`."""

    client: MlflowClient
    run_id: str
    experiment_id: str

    @classmethod
    @contextmanager
    def start(cls, client: MlflowClient, experiment: str, run_name: str | None = None) -> Iterator[Tracker]:
        """A new run in `experiment` (with the user, source and git tags MLflow's own `start_run` sets), marked
        FINISHED when the block ends, FAILED when it raises."""
        exp = experiment_id(client, experiment)
        run = client.create_run(exp, tags=resolve_tags(), run_name=run_name)
        tracker = cls(client, run.info.run_id, exp)
        try:
            yield tracker
        except BaseException:
            client.set_terminated(tracker.run_id, RunStatus.to_string(RunStatus.FAILED))
            raise
        client.set_terminated(tracker.run_id, RunStatus.to_string(RunStatus.FINISHED))

    def params(self, values: dict[str, Any]) -> None:
        found = [Param(k, str(v)) for k, v in values.items()]
        for start in range(0, len(found), BATCH):
            self.client.log_batch(self.run_id, params=found[start : start + BATCH])

    def metrics(self, values: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        found = [Metric(k, float(v), now, 0) for k, v in values.items()]
        for start in range(0, len(found), BATCH):
            self.client.log_batch(self.run_id, metrics=found[start : start + BATCH])

    def tag(self, key: str, value: str) -> None:
        self.client.set_tag(self.run_id, key, value)

    def text(self, text: str, path: str) -> None:
        self.client.log_text(self.run_id, text, path)

    def json(self, data: Any, path: str) -> None:
        self.text(json.dumps(data, indent=2, default=str), path)

    def table(self, frame: pd.DataFrame, path: str) -> None:
        self.client.log_table(self.run_id, frame, path)

    def figure(self, figure: Figure, path: str) -> None:
        self.client.log_figure(self.run_id, figure, path)

    def files(self, paths: list[Path] | tuple[Path, ...], folder: str | None = None) -> None:
        for path in paths:
            self.client.log_artifact(self.run_id, str(path), folder)

    def folder(self, local: Path, folder: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(local), folder)
