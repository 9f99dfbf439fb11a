"""Read a helpdesk export (CSV, JSON Lines, Parquet) and map its columns to canonical ticket fields."""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from features.config import RouterConfig
from features.text.clean import clean_texts

READERS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
# What a file really is when its first bytes say so, whatever its name claims.
MAGIC = {
    b"PK\x03\x04": "a ZIP archive (an Excel .xlsx workbook?)",
    b"\xd0\xcf\x11\xe0": "an Excel .xls workbook",
    b"PAR1": "a Parquet file",
    b"\x1f\x8b": "a gzip archive",
    b"%PDF": "a PDF document",
}
DELIMITERS = {";": "semicolons", "\t": "tabs", "|": "pipes"}
ISO_WEEK = "%G-W%V"  # how weeks are labelled everywhere (2026-W49): the ISO year and week
MARK = "\U0010fffd"  # stands in for bytes that are not UTF-8, so the rows holding them can be found
codecs.register_error("escalation-mark", lambda err: (MARK, err.end))  # type: ignore[arg-type, return-value]


class DataError(ValueError):
    """An export that cannot be used; the message names the file, the column and the rows."""


@dataclass
class Export:
    """An export as read: its rows (every column as text for CSV), rows the reader had to drop, and which of
    the kept rows held bytes that are not UTF-8."""

    frame: pd.DataFrame
    dropped: dict[str, list[str]] = field(default_factory=dict)  # reason -> where ("line 7")
    bad_encoding: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


def _sniff(path: str | Path, kind: str, head: bytes) -> None:
    """Refuse a file that is not what its name claims, before a parser makes a confusing error of it."""
    if not head.strip():
        raise DataError(f"{path}: the file is empty")
    if kind == "parquet":
        return
    for magic, what in MAGIC.items():
        if head.startswith(magic):
            raise DataError(f"{path}: is {what}, not {kind} text; export the tickets as CSV (UTF-8) or JSON Lines")
    if b"\x00" in head[:4096]:
        raise DataError(f"{path}: holds binary data, not {kind} text (UTF-16, or not a text file at all?)")


def _read_csv(text: str, path: str | Path, nrows: int | None = None) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, on_bad_lines="warn", nrows=nrows)
    dropped = [
        f"line {m.group(1)} ({m.group(2)})"
        for w in caught
        if (m := re.search(r"Skipping line (\d+): (.*)", str(w.message).strip()))
    ]
    if len(frame.columns) == 1:
        header = str(frame.columns[0])
        for sep, name in DELIMITERS.items():
            if sep in header:
                raise DataError(
                    f"{path}: the header {header[:80]!r} looks separated by {name}, not commas; "
                    "save the file as comma-separated CSV"
                )
    return frame, {"wrong number of fields": dropped} if dropped else {}


def _read_json_lines(text: str) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    if text.lstrip().startswith("["):  # one JSON array of records rather than JSON Lines
        records = json.loads(text)
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ValueError("a JSON array whose items are not all objects")
        return pd.DataFrame(records, dtype=object), {}
    records, bad = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            bad.append(f"line {number}")
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            bad.append(f"line {number}")
    return pd.DataFrame(records, dtype=object), {"not a JSON object": bad} if bad else {}


def _why(err: Exception) -> str:
    """A parser's reason, without pyarrow's note of the buffer it read from (the file's name says which)."""
    return re.sub(r"^Could not open Parquet input source '[^']*': ", "", str(err))


def export_kind(path: str | Path) -> str:
    """`csv`, `jsonl` or `parquet` by the file's suffix; anything else is a DataError."""
    suffix = Path(str(path)).suffix
    kind = READERS.get(suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unsupported file type {suffix!r}; use .csv, .jsonl or .parquet")
    return kind


def load_export(path: str | Path, raw: bytes | None = None) -> Export:
    """Read an export by its suffix, keeping what can be read: rows the parser cannot take are dropped and
    listed, rows with bytes that are not UTF-8 are marked. A file that is not what it claims is a DataError.

    `raw` is the file's bytes when the caller has them already (a Ray task reads a part from any filesystem): every
    engine reads through here, so a value means the same wherever it was read (CSV columns stay text).
    """
    if raw is None and not Path(path).is_file():
        raise DataError(f"{path}: file not found")
    kind = export_kind(path)
    if raw is None:
        raw = Path(path).read_bytes()
    _sniff(path, kind, raw[:8192])
    dropped: dict[str, list[str]] = {}
    try:
        if kind == "parquet":
            # Nullable dtypes: an integer column with a gap stays integer (7, not 7.0 as float64 would make it).
            frame = pd.read_parquet(io.BytesIO(raw), dtype_backend="numpy_nullable")
        else:
            text = raw.decode("utf-8", "escalation-mark").removeprefix("\ufeff")
            frame, dropped = _read_csv(text, path) if kind == "csv" else _read_json_lines(text)
    except DataError:
        raise
    except Exception as err:  # parsers raise many types; all mean the file is not what it claims
        raise DataError(f"{path}: cannot be read as {kind}: {_why(err)}") from None
    if frame.empty:
        raise DataError(f"{path}: no rows")
    frame.columns = [str(c) for c in frame.columns]
    bad = np.zeros(len(frame), dtype=bool)
    for column in frame.columns:
        values = frame[column]
        if values.dtype == object or pd.api.types.is_string_dtype(values):
            bad |= values.astype(str).str.contains(MARK, regex=False).to_numpy(dtype=bool)
    return Export(frame, dropped, bad)


def export_columns(stream: BinaryIO, path: str | Path, wanted: Iterable[str]) -> list[str]:
    """The columns `read_export` would find in the export `stream` holds, as many as it takes to tell which of
    `wanted` are there, reading no more than its format needs: a CSV's header, a Parquet footer, JSON Lines records
    until each of `wanted` was seen (a record may leave out a key another has; one that no record has is read to
    the end). A file that is not what it claims is the DataError `read_export` gives."""
    kind = export_kind(path)
    head = stream.read(8192)
    _sniff(path, kind, head)
    try:
        if kind == "parquet":
            stream.seek(0)
            return [str(c) for c in pq.read_schema(stream).names]
        if kind == "csv":  # a header longer than 1 MB is not one we expect
            text = (head + stream.read(1 << 20)).decode("utf-8", "escalation-mark").removeprefix("\ufeff")
            return [str(c) for c in _read_csv(text, path, nrows=0)[0].columns]
        if head.lstrip().lstrip(b"\xef\xbb\xbf").startswith(b"["):  # a JSON array: its records are not lines
            text = (head + stream.read()).decode("utf-8", "escalation-mark").removeprefix("\ufeff")
            return [str(c) for c in _read_json_lines(text)[0].columns]
        needed, seen = set(wanted), set[str]()
        for line in _lines(head, stream):
            try:
                record = json.loads(line.decode("utf-8", "escalation-mark").removeprefix("\ufeff"))
            except ValueError:
                continue  # the whole read names the line; here only the keys matter
            if isinstance(record, dict):
                seen.update(str(k) for k in record)
                if needed <= seen:
                    break
        return sorted(seen)
    except DataError:
        raise
    except Exception as err:
        raise DataError(f"{path}: cannot be read as {kind}: {_why(err)}") from None


def _lines(head: bytes, stream: BinaryIO, block: int = 1 << 20) -> Iterator[bytes]:
    """The lines of a file already read up to `head`, a block at a time."""
    rest = head
    while True:
        more = stream.read(block)
        rest += more
        *whole, rest = rest.split(b"\n")
        yield from whole
        if not more:
            break
    if rest.strip():
        yield rest


def read_export(path: str | Path, raw: bytes | None = None) -> pd.DataFrame:
    """Read an export that must be whole: any row that cannot be read is a DataError naming where it is."""
    export = load_export(path, raw)
    problems = [f"{reason} at {', '.join(where[:10])}" for reason, where in export.dropped.items()]
    if export.bad_encoding.any():
        rows = np.flatnonzero(export.bad_encoding) + 1
        problems.append(f"not UTF-8 text in row(s) {', '.join(map(str, rows[:10]))}")
    if problems:
        raise DataError(f"{path}: " + "; ".join(problems))
    return export.frame


def fingerprint(path: str | Path) -> str:
    """sha256 of the file's bytes: the same data gives the same fingerprint."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def text_values(values: pd.Series) -> list[str | None]:
    """A column's values as text, None where missing: what a value means to every engine and every model."""
    return [None if pd.isna(v) else str(v) for v in values.to_numpy(dtype=object)]


def missing_columns(frame: pd.DataFrame, config: RouterConfig) -> list[str]:
    """Columns the config names that the export lacks."""
    cols = config.columns
    wanted = [*cols.text, cols.target, *cols.metadata]
    wanted += [c for c in (cols.id, cols.created_at, cols.resolution) if c]
    return [c for c in dict.fromkeys(wanted) if c not in frame.columns]


def to_tickets(frame: pd.DataFrame, config: RouterConfig, with_target: bool = True) -> pd.DataFrame:
    """Canonical frame: id, text (cleaned, joined), metadata columns, and target/created_at/resolution.

    For scoring (`with_target=False`) only the text columns (and the id column, if named) must be there: missing
    metadata counts as unknown and missing created_at/resolution columns are left out.
    """
    cols = config.columns
    if not with_target:
        present = {"created_at": cols.created_at, "resolution": cols.resolution}
        present = {k: (v if v in frame.columns else None) for k, v in present.items()}
        frame = frame.assign(**{m: None for m in cols.metadata if m not in frame.columns})
        cols = cols.model_copy(update=present)
    out = pd.DataFrame(index=range(len(frame)))
    if cols.id:
        out["id"] = ["" if v is None else v for v in text_values(frame[cols.id])]
    else:
        out["id"] = [f"row-{i + 1}" for i in range(len(frame))]
    out["text"] = clean_texts([text_values(frame[c]) for c in cols.text])
    for name in cols.metadata:
        out[name] = ["" if v is None else v for v in text_values(frame[name])]
    if with_target:
        out["target"] = ["" if v is None else v.strip() for v in text_values(frame[cols.target])]
    if cols.created_at:
        out["created_at"] = pd.to_datetime(frame[cols.created_at], errors="coerce", utc=True).to_numpy()
    if cols.resolution:
        out["resolution"] = ["" if v is None else v for v in text_values(frame[cols.resolution])]
    return out
