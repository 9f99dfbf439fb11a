"""`escalation predict --engine ray`: the same answers as one process, scored on a Ray cluster (or Ray started on
this machine) by a pool of actors that each load the registered model once.

Ray Data reads the input (a file, a folder of parts, or any URI Ray Data and pyarrow read), the actors turn each
batch into canonical tickets with the same config and score it with the same champion version (resolved once, on
the driver, so an alias moved mid-run changes nothing), and the driver writes the answers in input order, in the
same shape as the single-process path.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import pandas as pd

from features.config import RouterConfig
from features.data import DataError
from features.settings import Settings
from serving.predict import AnswerWriter, answer_line, output_format, scorable

log = logging.getLogger(__name__)
READ = {".csv": "csv", ".jsonl": "json", ".ndjson": "json", ".json": "json", ".parquet": "parquet"}


class ClusterUnavailable(RuntimeError):
    """The Ray cluster named by --address did not answer (or Ray is not installed)."""


class Scorer:
    """A Ray actor: loads the registered version once, then scores batches of raw export rows into answer lines."""

    def __init__(self, settings: Settings, version: str, config: RouterConfig, data: str, threads: int):
        from features.text.privacy import masker_for
        from serving.model_store import load_version

        self.model = load_version(settings, version)
        use_threads = getattr(self.model.router.encoder, "use_threads", None)
        if use_threads is not None:  # the actor's share of the cores, not every core for each actor
            use_threads(threads)
        self.config, self.data, self.mask = config, data, masker_for(settings)
        self.top_k, self.n_similar = settings.top_k, settings.n_similar
        self.ref = {"name": self.model.name, "version": self.model.version, "alias": self.model.alias}

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        raw = batch.astype(object).where(batch.notna(), None)
        tickets = scorable(raw, self.config, self.data, self.model.router.metadata)
        results = self.model.router.predict(tickets, top_k=self.top_k, n_similar=self.n_similar)
        return pd.DataFrame({"line": [answer_line(r, self.mask, self.ref) for r in results]})


def input_kind(data: str) -> str:
    """Ray Data's reader for `data`: by its extension, or by the extension its part files share."""
    path = Path(data)
    if path.is_dir():
        kinds = {
            READ.get(p.suffix.lower()) for p in path.iterdir() if p.is_file() and not p.name.startswith((".", "_"))
        }
        kinds.discard(None)
        if len(kinds) != 1:
            raise DataError(f"{data}: a folder of parts must hold .csv, .jsonl or .parquet files of one kind")
        return kinds.pop()  # type: ignore[return-value]
    if "://" not in data and not path.is_file():
        raise DataError(f"{data}: file not found")
    kind = READ.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{data}: unsupported file type {path.suffix!r}; use .csv, .jsonl or .parquet")
    return kind


def connect(address: str | None) -> None:
    """Join the cluster at `address` (`auto`, `ray://HOST:PORT`), or start Ray on this machine."""
    try:
        import ray
    except ImportError:
        raise ClusterUnavailable("the Ray engine needs the ray extra: pip install 'escalation-router[ray]'") from None
    if ray.is_initialized():
        return
    reachable(address)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    except Exception as err:  # Ray raises ConnectionError, RuntimeError, ...: all mean no cluster to use
        first = str(err).strip().splitlines()[0] if str(err).strip() else err.__class__.__name__
        raise ClusterUnavailable(f"Ray cluster at {address or 'this machine'} did not answer: {first}") from None


def reachable(address: str | None, timeout: float = 5.0) -> None:
    """Fail fast when a `HOST:PORT` or `ray://HOST:PORT` address does not accept connections: Ray itself retries
    an unreachable head for minutes."""
    if not address or address == "auto":
        return
    hostport = address.removeprefix("ray://").split("/")[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterUnavailable(f"--address {address!r}: use 'auto', HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise ClusterUnavailable(f"Ray cluster at {address} did not answer: {err.strerror or err}") from None


def predict_with_ray(
    data: str | Path,
    config: RouterConfig,
    settings: Settings,
    version: str,
    output: str | Path,
    address: str | None = None,
    actors: int = 2,
    batch_size: int = 256,
    parts: bool = False,
) -> int:
    """Score every ticket in `data` on Ray with registered `version`; answers written to `output` in input order."""
    if not config.columns.id:
        raise DataError(
            f"{data}: the Ray engine needs a ticket id column (columns.id): rows scored in parallel have no position"
        )
    output_format(output)
    kind = input_kind(str(data))
    connect(address)
    import ray
    import ray.data

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # answers in the order of the input, as one process writes them
    reader = {"csv": ray.data.read_csv, "json": ray.data.read_json, "parquet": ray.data.read_parquet}[kind]
    options: dict[str, Any] = {"lines": True} if kind == "json" else {}
    try:
        dataset = reader(str(data), **options)  # Parquet footers are read here, on the driver
    except Exception as err:
        raise DataError(f"{data}: {reason(err)}") from None
    # A backlog in one file is one block, which one actor would score alone: blocks of a batch each spread the work
    # over every actor (streamed, order kept).
    dataset = dataset.repartition(target_num_rows_per_block=batch_size)
    # Each actor asks for at most a core, and together they leave one free for reading and writing: actors holding
    # every core would starve the read tasks (Ray Data waits for them forever).
    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    per_actor = max(0.25, min(1.0, (cpus - 1.0) / actors))
    scored = dataset.map_batches(
        Scorer,
        num_cpus=per_actor,
        fn_constructor_args=(settings, version, config, str(data), max(1, int(per_actor))),
        batch_format="pandas",
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=actors),
    )
    writer = AnswerWriter(output, parts)
    try:
        for batch in scored.iter_batches(batch_format="pandas", batch_size=batch_size):
            writer.write(batch["line"].tolist())
    except DataError:
        writer.abort()
        raise
    except Exception as err:  # a part Ray Data or the scorer could not read: one line, like one process says it
        writer.abort()
        raise DataError(f"{data}: {reason(err)}") from None
    return writer.close()


def reason(err: BaseException) -> str:
    """The first line of what went wrong inside Ray (the cause a worker raised, not Ray's wrapping)."""
    cause: BaseException | None = err
    while cause is not None and getattr(cause, "cause", None) is not None:
        cause = cause.cause  # type: ignore[attr-defined]
    text = str(cause or err)
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith(("Traceback", "  "))]
    return lines[-1][:500] if lines else err.__class__.__name__
