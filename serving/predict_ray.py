"""`escalation predict --engine ray`: the same answers as one process, scored on a Ray cluster (or Ray started on
this machine) by a pool of actors that each load the registered model once.

Ray Data reads the input (a file, a folder of parts, or any URI Ray Data and pyarrow read), the actors turn each
batch into canonical tickets with the same config and score it with the same champion version (resolved once, on
the driver, so an alias moved mid-run changes nothing), and the driver writes the answers in input order, in the
same shape as the single-process path.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from features.cluster import RayEngine, actor_cpus, connect, reason, share_cores
from features.config import RouterConfig
from features.data import DataError
from features.settings import Settings
from serving.predict import AnswerWriter, answer_line, output_format, scorable

log = logging.getLogger(__name__)
READ = {".csv": "csv", ".jsonl": "json", ".ndjson": "json", ".json": "json", ".parquet": "parquet"}


class Scorer:
    """A Ray actor: loads the registered version once, then scores batches of raw export rows into answer lines."""

    def __init__(self, settings: Settings, version: str, config: RouterConfig, data: str, threads: int):
        from features.text.privacy import masker_for
        from serving.model_store import load_version

        self.model = load_version(settings, version)
        share_cores(self.model.router.encoder, threads)
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


def predict_with_ray(
    data: str | Path,
    config: RouterConfig,
    settings: Settings,
    version: str,
    output: str | Path,
    engine: RayEngine,
    parts: bool = False,
) -> int:
    """Score every ticket in `data` on Ray with registered `version`; answers written to `output` in input order."""
    if not config.columns.id:
        raise DataError(
            f"{data}: the Ray engine needs a ticket id column (columns.id): rows scored in parallel have no position"
        )
    output_format(output)
    kind = input_kind(str(data))
    connect(engine.address)
    batch_size = engine.batch_size
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
    per_actor, threads = actor_cpus(engine.actors)
    scored = dataset.map_batches(
        Scorer,
        num_cpus=per_actor,
        fn_constructor_args=(settings, version, config, str(data), threads),
        batch_format="pandas",
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=engine.actors),
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
