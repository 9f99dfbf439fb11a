"""`escalation predict --engine ray`: the same answers as one process, scored on a Ray cluster (or Ray started on
this machine) by a pool of actors that each load the registered model once.

Ray tasks read the input (a file, a folder of parts, or any URI pyarrow reads), each part with the reader one process
uses (`features.data.read_export`: CSV columns as text, JSON Lines and Parquet with their own types, the same on
both engines, not Ray Data's readers, which guess types and make `7.0` of an id `007`); the actors turn each batch
into canonical tickets with the same config and score it with the same champion version (resolved once, on the
driver, so an alias moved mid-run changes nothing), and the driver writes the answers in input order, in the same
shape as the single-process path.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from features.cluster import RayEngine, actor_cpus, connect, innermost, reason, share_cores
from features.config import RouterConfig
from features.data import DataError, read_export
from features.settings import Settings
from serving.predict import (
    AnswerWriter,
    Backlog,
    answer_line,
    find_backlog,
    output_format,
    scorable,
    scoring_rows,
)

log = logging.getLogger(__name__)


def read_parts(batch: pd.DataFrame, filesystem: Any, config: RouterConfig) -> pd.DataFrame:
    """A Ray task: the parts named in `batch` read as one process reads a file, as the rows scoring reads."""
    frames = []
    for file, name in zip(batch["file"], batch["name"], strict=True):
        with filesystem.open_input_stream(file) as stream:
            raw = stream.read()
        frames.append(scoring_rows(read_export(name, raw), config, name))
    return pd.concat(frames, ignore_index=True)


def read_backlog(backlog: Backlog, config: RouterConfig) -> Any:
    """A Ray Dataset of the rows scoring reads from every part of `backlog`, in order: one task per part."""
    import ray.data

    parts = [{"file": file, "name": name} for file, name in zip(backlog.files, backlog.names, strict=True)]
    return ray.data.from_items(parts, override_num_blocks=len(parts)).map_batches(
        read_parts,
        batch_size=1,
        batch_format="pandas",
        fn_kwargs={"filesystem": backlog.filesystem, "config": config},
    )


class Scorer:
    """A Ray actor: loads the registered version once, then scores batches of rows into answer lines."""

    def __init__(self, settings: Settings, version: str, config: RouterConfig, threads: int):
        from features.text.privacy import masker_for
        from serving.model_store import load_version

        self.model = load_version(settings, version)
        share_cores(self.model.router.encoder, threads)
        self.config, self.mask = config, masker_for(settings)
        self.top_k, self.n_similar = settings.top_k, settings.n_similar
        self.ref = {"name": self.model.name, "version": self.model.version, "alias": self.model.alias}

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        rows = batch.astype(object).where(batch.notna(), None)  # Arrow's nulls back to the None one process has
        tickets = scorable(rows, self.config, self.model.router.metadata)
        results = self.model.router.predict(tickets, top_k=self.top_k, n_similar=self.n_similar)
        return pd.DataFrame({"line": [answer_line(r, self.mask, self.ref) for r in results]})


def failed(err: BaseException, data: str | Path) -> DataError:
    """What went wrong in a Ray task as one line: a DataError a reading task raised says what one process says.

    Ray Data hands a task's exception back wrapped in a UserCodeException that keeps only its traceback's text (the
    option that keeps the exception itself logs it as a bug in Ray), so the DataError's line is found in that text.
    """
    cause = innermost(err)
    if isinstance(cause, DataError):
        return DataError(str(cause).splitlines()[0])
    raised = f"{DataError.__module__}.{DataError.__qualname__}: "
    for line in str(err).splitlines():
        if line.startswith(raised):
            return DataError(line.removeprefix(raised))
    return DataError(f"{data}: {reason(err)}")


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
    backlog = find_backlog(data, config)  # every part's columns checked here, before Ray starts
    connect(engine.address)
    batch_size = engine.batch_size
    import ray
    import ray.data

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # answers in the order of the input, as one process writes them
    # A backlog in one file is one block, which one actor would score alone: blocks of a batch each spread the work
    # over every actor (streamed, order kept).
    dataset = read_backlog(backlog, config).repartition(target_num_rows_per_block=batch_size)
    per_actor, threads = actor_cpus(engine.actors)
    scored = dataset.map_batches(
        Scorer,
        num_cpus=per_actor,
        fn_constructor_args=(settings, version, config, threads),
        batch_format="pandas",
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=engine.actors),
    )
    writer = AnswerWriter(output, parts)
    try:
        for batch in scored.iter_batches(batch_format="pandas", batch_size=batch_size):
            writer.write(batch["line"].tolist())
    except Exception as err:  # a part that cannot be read, or a failure in Ray: one line, as one process says it
        writer.abort()
        raise failed(err, data) from None
    except BaseException:  # interrupted: nothing left behind either
        writer.abort()
        raise
    return writer.close()
