"""`escalation predict`: score a whole export with the champion, one JSON line per ticket."""

from __future__ import annotations

import json
from pathlib import Path

from tqdm.auto import tqdm

from features.config import RouterConfig
from features.data import DataError, read_export, to_tickets
from features.text.privacy import Masker
from serving.model_store import LoadedModel
from serving.present import present


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
) -> int:
    """Write the API's fields, masked as the API masks them, for every ticket in `data`; returns the count."""
    mask = mask or Masker()
    raw = read_export(data)
    needed = [*config.columns.text, *([config.columns.id] if config.columns.id else [])]
    missing = [c for c in needed if c not in raw.columns]
    if missing:
        raise DataError(f"{data}: missing column(s) {', '.join(map(repr, missing))}")
    tickets = to_tickets(raw, config, with_target=False)
    for name in model.router.metadata:
        if name not in tickets.columns:
            tickets[name] = ""
    ref = {"name": model.name, "version": model.version, "alias": model.alias}
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with (
        partial.open("w", encoding="utf-8") as fh,
        tqdm(total=len(tickets), desc="scoring", unit="ticket", disable=not progress) as bar,
    ):
        for start in range(0, len(tickets), chunk):
            part = tickets.iloc[start : start + chunk].reset_index(drop=True)
            for result in model.router.predict(part, top_k=top_k, n_similar=n_similar):
                fh.write(json.dumps({**present(result, mask), "model": ref}, ensure_ascii=False) + "\n")
            bar.update(len(part))
    partial.replace(output)  # a crash never leaves a half-written file under the real name
    return len(tickets)
