"""`escalation import`: a helpdesk's resolved tickets and their escalation paths, as the product's own training export.

Beside FILE (`history.csv` or `.parquet`) it keeps:
- `history.import.jsonl`, the journal: every ticket as last read from the helpdesk (its groups and assignees over
  time, its messages), latest line wins by id, a deleted ticket as a tombstone. The export is derived from it, so a
  changed directory (first line, hierarchical groups and people) relabels every ticket without fetching it again;
- `history.import.json`, the state: where the helpdesk's change feed stopped. It moves on only after a page's
  tickets are in the journal, so a run that stops half way (the helpdesk down, Ctrl-C) resumes there: pages are read
  again, never skipped, and the latest line per ticket wins;
- `history.yaml`, the proposed config (written when missing; a rerun leaves an edited one as it is and says what it
  would change) and `history.hook-groups.json`, the group-id mapping the webhook connectors need
  (ESCALATION_HOOK_GROUPS), so live outcomes join the imported targets.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from tqdm import tqdm

from features.config import ConfigError, load_config
from features.data import DataError
from features.helpdesk.paths import FINAL, Directory, History, label, resolution, start_group, visible_text
from features.helpdesk.source import HistorySource, helpdesks, history_source
from features.settings import Settings

log = logging.getLogger(__name__)
COLUMNS = [
    "ticket_id",
    "created_at",
    "subject",
    "text",
    "target",
    "path",
    "path_at",
    "resolution",
    "channel",
    "priority",
]
METADATA = ["channel", "priority"]


@dataclass
class ImportResult:
    output: Path
    config: Path
    hook_groups: Path
    labelled: int
    escalated: int
    open: int  # skipped: not solved or closed (yet)
    fetched: int  # tickets read from the helpdesk in this run
    requests: int
    waited_seconds: float
    first_line: list[str]
    first_line_why: str
    config_written: bool
    config_changes: list[str] = field(default_factory=list)  # what a rewrite would change in the user's config
    since_ignored: Path | None = None  # the state file that made --since moot: the run went on from the last

    def summary(self) -> str:
        lines = [
            f"wrote {self.output}: {self.labelled} solved tickets ({self.escalated} escalated), "
            f"{self.open} not solved yet skipped; {self.fetched} tickets read in {self.requests} requests"
            + (f", {self.waited_seconds:.0f} s waited for the helpdesk" if self.waited_seconds >= 1 else ""),
            f"first line: {', '.join(self.first_line)} ({self.first_line_why})",
        ]
        if self.config_written:
            lines.append(f"wrote {self.config}: escalation train --data {self.output} --config {self.config}")
        elif self.config_changes:
            lines.append(f"kept {self.config} as it is; a new proposal would change: " + "; ".join(self.config_changes))
        lines.append(f"wrote {self.hook_groups}: set ESCALATION_HOOK_GROUPS to its content for live outcomes")
        if self.since_ignored is not None:
            lines.append(
                f"--since ignored: this run went on from where the last one stopped ({self.since_ignored}; remove "
                "it to import from --since again)"
            )
        return "\n".join(lines)


def beside(output: Path, suffix: str) -> Path:
    return output.with_suffix(suffix)


def import_history(
    helpdesk: str,
    output: Path,
    settings: Settings,
    since: datetime | None = None,
    first_line: list[str] | None = None,
    hierarchical: list[str] | None = None,
    progress: bool = True,
) -> ImportResult:
    """Read what changed in the helpdesk since the last run (or `since`), then write the export and its config."""
    if helpdesk not in helpdesks():
        raise DataError(f"helpdesk {helpdesk!r}: this version imports from {', '.join(helpdesks())}")
    if output.suffix.lower() not in (".csv", ".parquet"):
        raise DataError(f"--output {output}: give a .csv or .parquet file")
    output.parent.mkdir(parents=True, exist_ok=True)
    source = history_source(helpdesk, settings, on_wait=lambda why, s: bar.set_postfix_str(f"waiting {s:.0f} s: {why}"))
    client = source.reader
    state_path, journal_path = beside(output, ".import.json"), beside(output, ".import.jsonl")
    state = _read_state(state_path, helpdesk, client.base)
    resumed = state.get("cursor") is not None
    if state.get("cursor") is None and since is None:
        raise DataError("--since: give the date to import from on the first run (later runs go on from the last)")
    if state.get("cursor") is not None and not (journal_path.exists() and journal_path.stat().st_size):
        raise DataError(
            f"{journal_path} is missing or empty while {state_path} says where the last run stopped: the history read "
            f"so far is gone; remove {state_path.name} and import again with --since"
        )
    config_path = beside(output, ".yaml")
    existing = _read_config(config_path)
    bar = tqdm(unit=" tickets", desc=f"{helpdesk} import", disable=not (progress and sys.stderr.isatty()))
    fetched = 0
    try:
        people = _people(source, hierarchical or [], existing)
        _mend(journal_path)
        with journal_path.open("a", encoding="utf-8") as journal:
            for n, page in enumerate(source.changed(state.get("cursor"), since), start=1):
                for ticket in page.tickets:
                    history = source.history(ticket)
                    journal.write(json.dumps(history.as_dict(), ensure_ascii=False) + "\n")
                    fetched += 1
                    bar.update(1)
                    bar.set_postfix_str(f"{client.traffic.requests} requests")
                journal.flush()
                os.fsync(journal.fileno())
                state["cursor"] = page.cursor
                _write_json(state_path, state)  # only now: the page's tickets are in the journal
                if bar.disable:  # no terminal: a plain line per page
                    log.info(
                        "%s page %d: %d tickets, %d read in %d requests, %.0f s waited for the helpdesk",
                        helpdesk,
                        n,
                        len(page.tickets),
                        fetched,
                        client.traffic.requests,
                        client.traffic.waited_seconds,
                    )
        groups = source.groups()
    finally:
        bar.close()
        client.close()

    histories = _compact(journal_path)
    directory, why = _directory(histories, first_line, hierarchical or [], people, existing)
    frame, escalated, still_open = _export(histories, directory)
    _write_frame(frame, output)
    proposal = _proposal(helpdesk, client.base, directory, people)
    written, changes = _offer_config(config_path, proposal, existing)
    hook_groups = beside(output, ".hook-groups.json")
    _write_json(hook_groups, {f"{helpdesk}:{gid}": name for gid, name in sorted(groups.items())})
    return ImportResult(
        output,
        config_path,
        hook_groups,
        labelled=len(frame),
        escalated=escalated,
        open=still_open,
        fetched=fetched,
        requests=client.traffic.requests,
        waited_seconds=client.traffic.waited_seconds,
        first_line=list(directory.first_line),
        first_line_why=why,
        config_written=written,
        config_changes=changes,
        since_ignored=state_path if since is not None and resumed else None,
    )


def _read_state(path: Path, helpdesk: str, url: str) -> dict[str, Any]:
    if not path.exists():
        return {"helpdesk": helpdesk, "url": url, "cursor": None}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not an import state file ({err}); remove it to import from --since again") from None
    if not isinstance(state, dict) or not isinstance(state.get("cursor"), str | None):
        raise DataError(f"{path}: not an import state file; remove it to import from --since again")
    if (state.get("helpdesk"), state.get("url")) != (helpdesk, url):
        raise DataError(
            f"{path}: this export was imported from {state.get('helpdesk')} at {state.get('url')}; "
            "give another --output for another helpdesk"
        )
    return dict(state)


def _read_config(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    load_config(path)  # a config train would refuse is reported now, by file and key
    return dict(yaml.safe_load(path.read_text(encoding="utf-8")))


def _people(source: HistorySource, hierarchical: list[str], existing: dict[str, Any] | None) -> dict[str, str]:
    """The helpdesk's user id -> NAME of each person given as NAME=EMAIL (looked up by e-mail, never written), else
    those the existing config names. Several people may share a NAME (the managers)."""
    for item in hierarchical:
        if "@" in item and "=" not in item:  # never taken for a group name and written into the config
            raise DataError("--hierarchical: give a person as NAME=EMAIL (the e-mail is only looked up, never written)")
    given = [h for h in hierarchical if "=" in h]
    if not given:
        kept = ((existing or {}).get("helpdesk") or {}).get("people") or {}
        return {str(uid): str(name) for name, ids in kept.items() for uid in ([ids] if isinstance(ids, str) else ids)}
    people: dict[str, str] = {}
    for item in given:
        name, _, email = item.partition("=")
        if not name.strip() or "@" not in email:
            raise DataError(f"--hierarchical {item.split('=')[0]}=...: give a group, or a person as NAME=EMAIL")
        uid = source.user_id(email.strip())
        if uid is None:
            raise DataError(f"--hierarchical {name}: no {source.helpdesk} user has that e-mail")
        people[uid] = name.strip()
    return people


def _mend(journal: Path, block: int = 1 << 16) -> None:
    """Cut a line a killed run left half written (its page is read again), so the next line starts on its own."""
    if not journal.exists() or not journal.stat().st_size:
        return
    with journal.open("rb+") as raw:
        end = raw.seek(0, os.SEEK_END)
        raw.seek(end - 1)
        if raw.read(1) == b"\n":
            return
        start = end
        while start > 0:  # back to the last whole line
            start = max(0, start - block)
            raw.seek(start)
            chunk = raw.read(end - start)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                raw.truncate(start + cut + 1)
                return
        raw.truncate(0)


def _compact(journal: Path) -> dict[str, History]:
    """The journal's latest line per ticket (deleted ones dropped), written back as one line each."""
    latest: dict[str, History] = {}
    if journal.exists():
        try:
            with journal.open(encoding="utf-8") as lines:
                for n, line in enumerate(lines, start=1):
                    if line.strip():
                        try:
                            history = History.from_dict(json.loads(line))
                        except (ValueError, TypeError) as err:
                            raise DataError(f"{journal}: line {n} is not a ticket's history ({err})") from None
                        latest[history.id] = history
        except UnicodeDecodeError as err:
            raise DataError(f"{journal}: not UTF-8 text ({err.reason}); it is the importer's own file") from None
    kept = {k: h for k, h in latest.items() if h.status != "deleted"}
    partial = journal.with_suffix(".jsonl.partial")
    with partial.open("w", encoding="utf-8") as out:
        for history in kept.values():
            out.write(json.dumps(history.as_dict(), ensure_ascii=False) + "\n")
        out.flush()
        os.fsync(out.fileno())  # the state moved on already: the journal must not be lost to a crash now
    os.replace(partial, journal)
    return kept


def _directory(
    histories: dict[str, History],
    first_line: list[str] | None,
    hierarchical: list[str],
    people: dict[str, str],
    existing: dict[str, Any] | None,
) -> tuple[Directory, str]:
    """The directory the labels follow: the options given, else the existing config's teams, else the group most
    tickets start in."""
    teams = (existing or {}).get("teams") or {}
    groups = [h for h in hierarchical if "=" not in h]
    if not groups and not any("=" in h for h in hierarchical):
        groups = [t for t in teams.get("hierarchical") or [] if t not in people.values()]
    seen = {step.group for h in histories.values() for step in h.steps if step.group is not None}
    for option, names in (
        ("--first-line", first_line or []),
        ("--hierarchical", [h for h in hierarchical if "=" not in h]),
    ):
        unknown = [n for n in names if n not in seen]
        if seen and unknown:  # a typo would label every ticket of the real group as something else
            known = ", ".join(sorted(seen)[:8])
            raise DataError(f"{option} {unknown[0]!r}: no ticket was ever in that group (groups: {known})")
    if first_line:
        chosen, why = list(first_line), "given with --first-line"
    elif teams.get("first_line"):
        chosen, why = list(teams["first_line"]), "as the existing config says"
    else:
        starts = Counter(g for h in histories.values() if (g := start_group(h)) is not None)
        if not starts:
            raise DataError("no ticket has a group: name the first line with --first-line")
        chosen = [starts.most_common(1)[0][0]]
        share = starts[chosen[0]] / sum(starts.values())  # of the tickets that started in a group
        why = f"the group {share:.0%} of tickets start in; --first-line to change"
    return Directory(tuple(chosen), tuple(groups), people), why


def _export(histories: dict[str, History], directory: Directory) -> tuple[pd.DataFrame, int, int]:
    rows, escalated, still_open = [], 0, 0
    for history in histories.values():
        if history.status != FINAL:
            still_open += 1
            continue
        found = label(history, directory)
        escalated += found.escalated
        rows.append(
            {
                "ticket_id": history.id,
                "created_at": history.created_at,
                "subject": history.subject,
                "text": visible_text(history, found.first_hop_at),
                "target": found.target,
                "path": " > ".join(found.path),
                "path_at": " > ".join(found.path_at),  # when it reached each, in the same order
                "resolution": resolution(history),
                **{k: history.metadata.get(k, "") for k in METADATA},
            }
        )
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.sort_values("created_at", kind="stable").reset_index(drop=True), escalated, still_open


def _write_frame(frame: pd.DataFrame, output: Path) -> None:
    partial = output.with_name(output.name + ".partial")
    try:
        if output.suffix.lower() == ".parquet":
            frame.astype(str).to_parquet(partial, index=False)
        else:
            frame.to_csv(partial, index=False)
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)  # a write that failed leaves nothing beside the export


def _proposal(helpdesk: str, url: str, directory: Directory, people: dict[str, str]) -> dict[str, Any]:
    hierarchical = [*directory.hierarchical, *sorted(set(people.values()))]
    return {
        "columns": {
            "id": "ticket_id",
            "text": ["subject", "text"],
            "target": "target",
            "created_at": "created_at",
            "resolution": "resolution",
            "metadata": METADATA,
        },
        "teams": {"first_line": list(directory.first_line), "hierarchical": hierarchical},
        "helpdesk": {"kind": helpdesk, "url": url, "people": _by_name(people)},
    }


def _by_name(people: dict[str, str]) -> dict[str, list[str]]:
    """user id -> NAME as the config keeps it: NAME -> the ids of everyone who stands for it."""
    named: dict[str, list[str]] = {}
    for uid, name in sorted(people.items()):
        named.setdefault(name, []).append(uid)
    return named


def _offer_config(path: Path, proposal: dict[str, Any], existing: dict[str, Any] | None) -> tuple[bool, list[str]]:
    """Write the proposal when there is no config; else keep the user's and list what the proposal would change."""
    if existing is None:
        partial = path.with_name(path.name + ".partial")
        partial.write_text(yaml.safe_dump(proposal, sort_keys=False, allow_unicode=True), encoding="utf-8")
        try:
            load_config(partial)
        except ConfigError as err:  # never leave a config train would refuse
            partial.unlink()
            raise DataError(f"the proposed config is not valid: {err}") from None
        os.replace(partial, path)
        return True, []
    changes = []
    for section, values in proposal.items():
        for key, value in values.items():
            now = (existing.get(section) or {}).get(key)
            if now != value:
                changes.append(f"{section}.{key}: {now!r} -> {value!r}")
    return False, changes


def _write_json(path: Path, data: Any) -> None:
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
