"""Escalation over time: per ISO week, the share of tickets escalated overall (and its complement, first-contact
resolution: resolved without escalation), to each target, and per value of each metadata field."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from features.data import ISO_WEEK
from features.text.privacy import Masker

COLUMNS = ["week", "scope", "value", "tickets", "escalated", "rate"]
TOP_VALUES = 8  # targets and metadata values drawn, by volume; the rest are left out of the breakdowns


def weekly_rates(tickets: pd.DataFrame, first_line: list[str], metadata: list[str], mask: Masker) -> pd.DataFrame:
    """One row per week and scope: `all` (every ticket; `rate` is the escalation rate), `target` (the week's tickets
    escalated to `value`, over all of the week's tickets) and each metadata field (the tickets with that `value`, and
    how many of them were escalated; values masked). Empty without creation dates."""
    if "created_at" not in tickets or not tickets["created_at"].notna().any():
        return pd.DataFrame(columns=COLUMNS)
    dated = tickets[tickets["created_at"].notna()].copy()
    dated["week"] = pd.to_datetime(dated["created_at"], utc=True).dt.strftime(ISO_WEEK)
    dated["escalated"] = ~dated["target"].isin(first_line)
    weeks = dated.groupby("week")["escalated"].agg(tickets="size", escalated="sum").reset_index()
    parts = [weeks.assign(scope="all", value="")]
    escalated = dated[dated["escalated"]]
    top = escalated["target"].value_counts().index[:TOP_VALUES]
    counts = pd.crosstab(escalated["week"], escalated["target"]).reindex(index=weeks["week"], columns=top, fill_value=0)
    per_target = counts.reset_index().melt(id_vars="week", var_name="value", value_name="escalated")  # 0s kept
    parts.append(per_target.merge(weeks[["week", "tickets"]], on="week").assign(scope="target"))
    for field in metadata:  # values are shown (lead's view, MLflow): masked as key terms, like every output
        values = dated[field].astype(str).map(mask.term)
        dated[field] = values
        kept = values.value_counts().index[:TOP_VALUES]
        chosen = dated[values.isin(kept) & (values != "")]
        grouped = chosen.groupby(["week", field])["escalated"].agg(tickets="size", escalated="sum").reset_index()
        parts.append(grouped.rename(columns={field: "value"}).assign(scope=field))
    frame = pd.concat(parts, ignore_index=True)
    frame["value"] = frame["value"].astype(str)
    frame["tickets"], frame["escalated"] = frame["tickets"].astype(int), frame["escalated"].astype(int)
    frame["rate"] = frame["escalated"] / frame["tickets"]
    return frame[COLUMNS].sort_values(["scope", "value", "week"], kind="stable").reset_index(drop=True)


def rates_figure(frame: pd.DataFrame) -> Figure:
    """The escalation rate per week, overall and per target (first-contact resolution is one minus the first)."""
    fig = Figure(figsize=(10, 5))
    ax = fig.subplots()
    overall = frame[frame["scope"] == "all"]
    ax.plot(overall["week"], overall["rate"], color="black", lw=2, label="escalated (all targets)")
    for target, rows in frame[frame["scope"] == "target"].groupby("value"):
        ax.plot(rows["week"], rows["rate"], lw=1, label=str(target))
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of the week's tickets")
    ax.set_title("Escalation per week (first-contact resolution = 1 - escalated)")
    ax.tick_params(axis="x", labelrotation=90, labelsize=7)
    ax.legend(loc="upper left", fontsize=7, ncols=2)
    fig.tight_layout()
    return fig
