"""`escalation predict`: score a whole export with the champion, one answer per ticket, in JSON Lines or Parquet.

The answer rows are the same whichever engine scores them (this process, or Ray: `serving/predict_ray.py`): the
API's fields, masked as the API masks them, plus the model that answered.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from features.cluster import reason
from features.config import RouterConfig
from features.data import READERS, DataError, export_columns, export_kind, read_export, text_values, to_tickets
from features.model.present import present
from features.model.results import Suggestion
from features.text.privacy import Masker
from serving.model_store import LoadedModel

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


def answer_line(result: Suggestion, mask: Masker, ref: dict[str, str]) -> str:
    """One ticket's answer as the JSON line both engines write."""
    return json.dumps({**present(result, mask), "model": ref}, ensure_ascii=False)


def flat_columns(lines: list[str]) -> pd.DataFrame:
    """The Parquet shape of answers: the columns a table tool filters on, and the whole answer as JSON."""
    answers = [json.loads(line) for line in lines]
    return pd.DataFrame(
        {
            "id": [a["id"] for a in answers],
            "decision": [a["escalation"]["decision"] for a in answers],
            "escalation_probability": [a["escalation"]["probability"] for a in answers],
            "top_target": [a["suggestions"][0]["target"] if a["suggestions"] else None for a in answers],
            "routing": [a["routing"]["decision"] for a in answers],
            "model_version": [a["model"]["version"] for a in answers],
            "answer_json": lines,
        }
    )


def output_format(output: str | Path) -> str:
    """`jsonl` or `parquet` by the output's extension (a folder of parts is named like `scored.parquet/`)."""
    kind = FORMATS.get(Path(output).suffix.lower())
    if kind is None:
        raise DataError(f"{output}: unsupported output type {Path(output).suffix!r}; use .jsonl or .parquet")
    return kind


class AnswerWriter:
    """Writes answer lines to one file, or, with `parts`, to a folder of part files; under a `.partial` name until
    `close`, so a crash never leaves a half-written output under the real name. A run that fails removes what it
    wrote (`abort`), and each run starts from nothing: a killed run's `.partial` is removed, never added to."""

    def __init__(self, output: str | Path, parts: bool = False):
        self.output, self.kind, self.parts = Path(output), output_format(output), parts
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.output.with_name(self.output.name + ".partial")
        self.count, self._part, self._fh, self._parquet = 0, 0, None, None
        _remove(self.partial)  # what a run that was killed left: parts of it must not join this run's answers
        if parts:
            self.partial.mkdir()

    def write(self, lines: list[str]) -> None:
        if not lines:
            return
        self.count += len(lines)
        if self.parts:
            self._part += 1
            target = self.partial / f"part-{self._part:05d}.{self.kind}"
            if self.kind == "jsonl":
                target.write_text("\n".join(lines) + "\n", encoding="utf-8")
            else:
                pq.write_table(pa.Table.from_pandas(flat_columns(lines), preserve_index=False), target)
        elif self.kind == "jsonl":
            if self._fh is None:
                self._fh = self.partial.open("w", encoding="utf-8")
            self._fh.write("\n".join(lines) + "\n")
        else:
            table = pa.Table.from_pandas(flat_columns(lines), preserve_index=False)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.partial, table.schema)
            self._parquet.write_table(table)

    def close(self) -> int:
        if self._fh is not None:
            self._fh.close()
        if self._parquet is not None:
            self._parquet.close()
        if not self.parts and self._fh is None and self._parquet is None:
            self.partial.write_text("", encoding="utf-8")  # nothing to score still leaves an (empty) output
        if self.parts:
            _remove(self.output)
        self.partial.replace(self.output)
        return self.count

    def abort(self) -> None:
        """Close what is open and remove what was written: a run that fails leaves nothing behind."""
        for handle in (self._fh, self._parquet):
            if handle is not None:
                handle.close()
        _remove(self.partial)


def _remove(path: Path) -> None:
    """Remove a file or a folder of parts, if there is one."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Backlog:
    """The files of an input as the driver found and checked them: paths on `filesystem` in the order they are
    answered, and the name each goes by in messages (the input as given, for one file)."""

    filesystem: pafs.FileSystem
    files: list[str]
    names: list[str]


def find_backlog(data: str | Path, config: RouterConfig) -> Backlog:
    """The files of `data`: one file, or a folder of parts of one kind (.csv, .jsonl or .parquet; names starting
    with `.` or `_` left out), on this machine or at any URI pyarrow reads (`s3://`, `gs://`, ...), each checked for
    the columns scoring needs before any work starts (its head only: `features.data.export_columns`), so a file
    without one is the same one line on every engine, not an error in a task."""
    text = str(data)
    if "://" in text:
        try:
            filesystem, root = pafs.FileSystem.from_uri(text)
            found = filesystem.get_file_info(root)
        except Exception as err:  # an unknown scheme, no credentials, ...: pyarrow's own words say which
            raise DataError(f"{data}: {reason(err)}") from None
    else:
        filesystem, root = pafs.LocalFileSystem(), str(Path(text).absolute())
        found = filesystem.get_file_info(root)
    if found.type == pafs.FileType.NotFound:
        raise DataError(f"{data}: file not found")
    if found.type != pafs.FileType.Directory:
        export_kind(data)
        return _checked(Backlog(filesystem, [root], [text]), config)
    root = root.rstrip("/")
    parts = []
    for info in filesystem.get_file_info(pafs.FileSelector(root, recursive=True)):
        relative = info.path[len(root) :].lstrip("/")
        if info.is_file and not any(step.startswith((".", "_")) for step in relative.split("/")):
            parts.append(relative)
    kinds = {READERS.get(Path(part).suffix.lower()) for part in parts} - {None}
    if len(kinds) != 1:
        raise DataError(f"{data}: a folder of parts must hold .csv, .jsonl or .parquet files of one kind")
    parts = sorted(part for part in parts if Path(part).suffix.lower() in READERS)
    found_parts = Backlog(
        filesystem, [f"{root}/{part}" for part in parts], [f"{text.rstrip('/')}/{part}" for part in parts]
    )
    return _checked(found_parts, config)


def _checked(backlog: Backlog, config: RouterConfig) -> Backlog:
    for file, name in zip(backlog.files, backlog.names, strict=True):
        with backlog.filesystem.open_input_file(file) as stream:
            check_columns(export_columns(stream, name, needed_columns(config)), config, name)
    return backlog


def needed_columns(config: RouterConfig) -> list[str]:
    """The columns scoring cannot do without: the text columns, and the id column when the config names one."""
    return list(dict.fromkeys([*config.columns.text, *([config.columns.id] if config.columns.id else [])]))


def check_columns(columns: Iterable[str], config: RouterConfig, where: str | Path) -> None:
    """A DataError naming the columns scoring needs that an export (or a part of one) lacks."""
    present = set(columns)
    missing = [c for c in needed_columns(config) if c not in present]
    if missing:
        raise DataError(f"{where}: missing column(s) {', '.join(map(repr, missing))}")


def scoring_rows(raw: pd.DataFrame, config: RouterConfig, where: str | Path) -> pd.DataFrame:
    """The columns scoring reads from an export as `read_export` read it, every value as text (None where missing):
    what both engines score, so a value means the same on each (Ray's reading tasks hand these rows to the actors)."""
    check_columns(raw.columns, config, where)
    keep = [c for c in dict.fromkeys([*needed_columns(config), *config.columns.metadata]) if c in raw.columns]
    return pd.DataFrame({c: text_values(raw[c]) for c in keep}, columns=keep, dtype=object)


def scorable(rows: pd.DataFrame, config: RouterConfig, metadata: list[str]) -> pd.DataFrame:
    """Canonical tickets of scoring rows: text columns required, metadata optional (missing counts as unknown)."""
    tickets = to_tickets(rows, config, with_target=False)
    for name in metadata:
        if name not in tickets.columns:
            tickets[name] = ""
    return tickets


def predict_file(
    data: str | Path,
    config: RouterConfig,
    model: LoadedModel,
    output: str | Path,
    top_k: int = 3,
    n_similar: int = 3,
    chunk: int = 256,
    progress: bool = True,
    mask: Masker | None = None,
    parts: bool = False,
) -> int:
    """Write the API's fields, masked as the API masks them, for every ticket in `data`; returns the count."""
    mask = mask or Masker()
    output_format(output)  # the output's type is checked before any work
    tickets = scorable(scoring_rows(read_export(data), config, data), config, model.router.metadata)
    writer = AnswerWriter(output, parts)
    ref = {"name": model.name, "version": model.version, "alias": model.alias}
    try:
        with tqdm(total=len(tickets), desc="scoring", unit="ticket", disable=not progress) as bar:
            for start in range(0, len(tickets), chunk):
                part = tickets.iloc[start : start + chunk].reset_index(drop=True)
                results = model.router.predict(part, top_k=top_k, n_similar=n_similar)
                writer.write([answer_line(r, mask, ref) for r in results])
                bar.update(len(part))
    except BaseException:
        writer.abort()
        raise
    return writer.close()


def answers_in(output: str | Path) -> list[dict[str, Any]]:
    """The answers an output holds (a file or a folder of parts, JSON Lines or Parquet), in order."""
    path = Path(output)
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    found: list[dict[str, Any]] = []
    for file in files:
        if output_format(file) == "jsonl":
            found += [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line]
        else:
            found += [json.loads(line) for line in pq.read_table(file).column("answer_json").to_pylist()]
    return found
