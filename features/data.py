"""Read a helpdesk export (CSV, JSON Lines, Parquet) and map its columns to canonical ticket fields."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from features.clean import clean_texts
from features.config import RouterConfig

READERS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


class DataError(ValueError):
    """An export that cannot be used; the message names the file, the column and the rows."""


def read_export(path: str | Path) -> pd.DataFrame:
    """Load an export by its suffix, every column as text, with a clear error for unreadable files."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unsupported file type {path.suffix!r}; use .csv, .jsonl or .parquet")
    try:
        if kind == "csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
        elif kind == "jsonl":
            frame = pd.read_json(path, lines=True, dtype=False)
        else:
            frame = pd.read_parquet(path)
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except Exception as err:  # parsers raise many types; all mean the file is not what it claims
        raise DataError(f"{path}: cannot be read as {kind}: {err}") from None
    if frame.empty:
        raise DataError(f"{path}: no rows")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def fingerprint(path: str | Path) -> str:
    """sha256 of the file's bytes: the same data gives the same fingerprint."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _text_column(frame: pd.DataFrame, name: str) -> list[object]:
    return [None if pd.isna(v) else str(v) for v in frame[name].to_numpy(dtype=object)]


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
        out["id"] = [str(v) for v in frame[cols.id].to_numpy(dtype=object)]
    else:
        out["id"] = [f"row-{i + 1}" for i in range(len(frame))]
    out["text"] = clean_texts([_text_column(frame, c) for c in cols.text])
    for name in cols.metadata:
        out[name] = ["" if v is None else v for v in _text_column(frame, name)]
    if with_target:
        out["target"] = ["" if v is None else v.strip() for v in _text_column(frame, cols.target)]
    if cols.created_at:
        out["created_at"] = pd.to_datetime(frame[cols.created_at], errors="coerce", utc=True).to_numpy()
    if cols.resolution:
        out["resolution"] = ["" if v is None else v for v in _text_column(frame, cols.resolution)]
    return out
