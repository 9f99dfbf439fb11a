"""Recurring escalations first line could handle: escalated tickets grouped into themes by their text, each named by
its distinctive words (class-based TF-IDF over the themes, as BERTopic names topics), and ranked by what documenting
it would save: its volume times how repeatable its fix is (the share of its tickets resolved the way most were)."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.cluster import AgglomerativeClustering
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

from features.config import load_config
from features.data import ISO_WEEK, DataError, load_export, to_tickets
from features.settings import Settings
from features.text.privacy import Masker, masker_for
from training.encode import settle_max_length, transformer_embeddings
from training.rates import COLUMNS as RATE_COLUMNS
from training.rates import rates_figure, weekly_rates
from training.validate import check_columns

MIN_THEME = 5  # fewer escalated tickets alike are not a theme worth a runbook
CLUSTER_SAMPLE = 4000  # agglomerative clustering is quadratic: cluster this many, assign the rest to the nearest
SAME_THEME = 0.5  # average cosine distance below which tickets join one theme
SAME_FIX = 0.8  # cosine similarity of word TF-IDF at which two resolutions are the same fix
PER_THEME = 1000  # tickets of a theme its name and its fix's repeatability are read from, at most
PLACEHOLDERS = ["email", "name", "phone", "card", "iban", "secret"]  # what masking leaves in the text


@dataclass
class Theme:
    name: str
    words: list[str]
    tickets: int
    targets: dict[str, int]
    repeatability: float | None  # None: the export has no resolutions
    examples: list[str]  # ticket ids, nearest the theme's centre first
    resolution: str | None  # the fix most of its tickets got, masked
    per_week: dict[str, int] = field(default_factory=dict)  # ISO week -> tickets; empty without dates
    saving: float = 0.0  # tickets x repeatability (x 1 without resolutions): what the ranking uses

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Insights:
    themes: list[Theme]
    escalated: int
    in_themes: int
    cannot_show: list[str] = field(default_factory=list)  # parts the export cannot support, and why
    rates: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=RATE_COLUMNS))  # training/rates.py

    def write(self, folder: str | Path) -> list[Path]:
        """`themes.json` (the ranked list), `report.md` (the same for people) and a draft runbook per theme."""
        folder = Path(folder)
        (folder / "runbooks").mkdir(parents=True, exist_ok=True)
        written = [folder / "themes.json", folder / "report.md"]
        written[0].write_text(json.dumps([t.as_dict() for t in self.themes], indent=1, ensure_ascii=False) + "\n")
        written[1].write_text(self.report(), encoding="utf-8")
        for n, theme in enumerate(self.themes, start=1):
            path = folder / "runbooks" / f"{n:02d}-{_slug(theme.words)}.md"
            path.write_text(runbook(theme), encoding="utf-8")
            written.append(path)
        if not self.rates.empty:
            self.rates.to_csv(folder / "rates.csv", index=False)
            rates_figure(self.rates).savefig(folder / "rates.png", dpi=110)
            written += [folder / "rates.csv", folder / "rates.png"]
        return written

    def report(self) -> str:
        lines = [
            "# Recurring escalations first line could handle",
            "",
            f"{self.escalated} escalated tickets; {self.in_themes} of them in {len(self.themes)} themes of at least "
            f"{MIN_THEME} alike. Ranked by what documenting each would save: tickets x repeatability (the share "
            "resolved the way most were).",
        ]
        lines += [f"- Not shown: {why}" for why in self.cannot_show]
        overall = self.rates[self.rates["scope"] == "all"]
        if not overall.empty:
            rate = overall["escalated"].sum() / overall["tickets"].sum()
            last = overall.iloc[-1]
            lines += [
                "",
                "## Escalation over time",
                "",
                f"{len(overall)} weeks ({overall['week'].iloc[0]} to {last['week']}): {rate:.0%} of tickets escalated "
                f"(first-contact resolution {1 - rate:.0%}); the last week {last['rate']:.0%} of {last['tickets']}. "
                "Per week, per target and per metadata value: rates.csv and rates.png.",
            ]
        for n, theme in enumerate(self.themes, start=1):
            targets = ", ".join(f"{t} ({c})" for t, c in theme.targets.items())
            lines += ["", f"## {n}. {theme.name}", "", f"- Tickets: {theme.tickets}, escalated to {targets}"]
            if theme.repeatability is not None:
                lines.append(f"- Repeatability: {theme.repeatability:.0%} resolved the way most were")
                lines.append(f"- Most common resolution: {theme.resolution}")
            if theme.per_week:
                weekly, weeks = _weekly(theme), sorted(theme.per_week)
                lines.append(
                    f"- Per week: {np.mean(weekly):.1f} on average over {len(weekly)} weeks ({weeks[0]} to "
                    f"{weeks[-1]}), at most {max(weekly)}"
                )
            lines.append(f"- Examples: {', '.join(theme.examples)}")
            lines.append(f"- Draft runbook: runbooks/{n:02d}-{_slug(theme.words)}.md")
        return "\n".join(lines) + "\n"


def themes_figure(insights: Insights, top: int = 12) -> Figure:
    """The ranked themes as bars: tickets per theme, the repeatable share darker; for leads comparing runs."""
    shown = insights.themes[:top][::-1]
    fig = Figure(figsize=(9, 0.45 * max(len(shown), 2) + 1.2))
    ax = fig.subplots()
    names = [t.name for t in shown]
    ax.barh(names, [t.tickets for t in shown], color="#c9d6e8", label="tickets")
    repeatable = [t.tickets * (t.repeatability or 0) for t in shown]
    if any(t.repeatability is not None for t in shown):
        ax.barh(names, repeatable, color="#2f5d8a", label="resolved the way most were")
    ax.set_xlabel("escalated tickets")
    ax.set_title(f"Recurring escalations: {len(insights.themes)} themes, ranked by tickets x repeatability")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def runbook(theme: Theme) -> str:
    """A first-line runbook draft for one theme: when it applies, what fixed it most often, and where to go on."""
    targets = ", ".join(theme.targets)
    fix = theme.resolution or "(the export has no resolutions: write the fix here)"
    return "\n".join(
        [
            f"# Runbook draft: {theme.name}",
            "",
            f"**When:** a ticket about {', '.join(theme.words)}; {theme.tickets} like it were escalated to {targets}"
            f" (examples: {', '.join(theme.examples)}).",
            "",
            f"**What fixed it most often** ({_share(theme)}):",
            "",
            f"> {fix}",
            "",
            "**Steps for first line** (to be written by the team that fixes it today):",
            "",
            "1. Check ...",
            "2. Do ...",
            "3. Tell the customer ...",
            "",
            f"**Escalate to {next(iter(theme.targets))} when:** the steps do not fix it; hand over what you checked.",
            "",
        ]
    )


def find_themes(tickets: pd.DataFrame, vectors: np.ndarray, first_line: list[str], mask: Masker) -> Insights:
    """Themes among the escalated rows of `tickets` (columns id, text, target; created_at and resolution when the
    export has them), by their embeddings `vectors` (one row per ticket)."""
    escalated = ~tickets["target"].isin(first_line).to_numpy()
    rows, found = tickets[escalated].reset_index(drop=True), vectors[escalated]
    cannot: list[str] = []
    has_dates = "created_at" in tickets and tickets["created_at"].notna().any()  # what the export has, not the themes
    has_fixes = "resolution" in tickets and (tickets["resolution"].astype(str).str.strip() != "").any()
    if not has_dates:
        cannot.append("tickets per week (the export has no creation dates)")
    if not has_fixes:
        cannot.append(
            "how alike the fixes are and the most common one (the export has no resolutions): ranked by volume"
        )
    if len(rows) < MIN_THEME:
        return Insights([], len(rows), 0, cannot)
    labels = _cluster(found)
    groups = [np.flatnonzero(labels == k) for k in np.unique(labels) if k >= 0]
    groups = [g for g in groups if len(g) >= MIN_THEME]
    # a theme of a hundred thousand tickets is named and its fix measured on a sample: the resolutions' pairwise
    # similarities are quadratic, and masking every text of a long history would cost minutes
    rng = np.random.default_rng(0)
    read = [g if len(g) <= PER_THEME else np.sort(rng.choice(g, PER_THEME, replace=False)) for g in groups]
    text = rows["text"].astype(str).to_numpy()
    names = _names([" ".join(mask(text[i]) for i in g) for g in read], mask)
    themes = []
    for members, sample, words in zip(groups, read, names, strict=True):
        centre = found[members].mean(axis=0)
        nearest = members[np.argsort(-(found[members] @ centre), kind="stable")]
        repeatability, fix = (
            _fix(rows["resolution"].astype(str).to_numpy()[sample], mask) if has_fixes else (None, None)
        )
        weeks: dict[str, int] = {}
        if has_dates:
            dates = pd.to_datetime(rows["created_at"].iloc[members], utc=True).dropna()
            weeks = dict(sorted(Counter(d.strftime(ISO_WEEK) for d in dates).items()))
        themes.append(
            Theme(
                name=" · ".join(words[:3]) or f"theme {len(themes) + 1}",
                words=words,
                tickets=len(members),
                targets=dict(Counter(rows["target"].iloc[members]).most_common()),
                repeatability=repeatability,
                examples=[str(rows["id"].iloc[i]) for i in nearest[:3]],
                resolution=fix,
                per_week=weeks,
                saving=len(members) * (repeatability if repeatability is not None else 1.0),
            )
        )
    themes.sort(key=lambda t: (-t.saving, -t.tickets, t.name))
    return Insights(themes, len(rows), sum(t.tickets for t in themes), cannot)


def _cluster(vectors: np.ndarray) -> np.ndarray:
    """Theme numbers: average-linkage clusters by cosine distance, on a sample when there are many tickets (the rest
    join the cluster whose centre is nearest)."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    picked = np.arange(len(unit))
    if len(unit) > CLUSTER_SAMPLE:
        picked = np.sort(np.random.default_rng(0).choice(len(unit), CLUSTER_SAMPLE, replace=False))
    model = AgglomerativeClustering(
        n_clusters=None, metric="cosine", linkage="average", distance_threshold=SAME_THEME
    ).fit(unit[picked])
    if len(picked) == len(unit):
        return np.asarray(model.labels_)
    ids = np.unique(model.labels_)
    centres = np.vstack([unit[picked][model.labels_ == k].mean(axis=0) for k in ids])
    centres /= np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
    labels = np.full(len(unit), -1)
    for start in range(0, len(unit), 50_000):  # in chunks: a million tickets by thousands of centres is too much
        sims = unit[start : start + 50_000] @ centres.T
        best = np.argmax(sims, axis=1)
        near = sims[np.arange(len(best)), best] >= 1 - SAME_THEME  # an outlier joins no theme
        labels[start : start + 50_000] = np.where(near, ids[best], -1)
    labels[picked] = model.labels_
    return labels


def _names(documents: list[str], mask: Masker, top: int = 5) -> list[list[str]]:
    """Each theme's most distinctive words: class-based TF-IDF (a theme's word frequency, weighted by how rare the
    word is across themes), as BERTopic names its topics."""
    if not documents:
        return []
    counts = CountVectorizer(
        stop_words=[*CountVectorizer(stop_words="english").get_stop_words(), *PLACEHOLDERS],
        token_pattern=r"(?u)\b[^\W\d_]{2,}\b",
        lowercase=True,
    )
    try:
        tf = counts.fit_transform(documents).toarray().astype(float)
    except ValueError:  # no word left (only stop words, placeholders or digits): themes without words
        return [[] for _ in documents]
    words = counts.get_feature_names_out()
    per_theme = tf / np.maximum(tf.sum(axis=1, keepdims=True), 1)
    average = tf.sum() / len(documents)
    idf = np.log(1 + average / np.maximum(tf.sum(axis=0), 1))
    scores = per_theme * idf
    return [[mask.term(str(words[j])) for j in np.argsort(-row, kind="stable")[:top] if row[j] > 0] for row in scores]


def _fix(resolutions: np.ndarray, mask: Masker) -> tuple[float, str | None]:
    """How repeatable the theme's fix is (the share of its resolutions alike the most typical one) and that one,
    masked; (0, None) when none of its tickets has a resolution."""
    written = [mask(r.strip()) for r in resolutions if r and r.strip() and r.strip().lower() != "nan"]
    if not written:  # masked first: the same fix for two customers is the same fix
        return 0.0, None
    if len(written) == 1:
        return 1 / len(resolutions), written[0]
    tfidf = TfidfVectorizer(token_pattern=r"(?u)\b\w+\b").fit_transform(written)
    alike = (tfidf @ tfidf.T).toarray()
    typical = int(np.argmax(alike.mean(axis=1)))
    same = int((alike[typical] >= SAME_FIX).sum())
    return same / len(resolutions), written[typical]


def _slug(words: list[str]) -> str:
    return re.sub(r"[^a-z0-9]+", "-", "-".join(words[:3]).lower()).strip("-") or "theme"


def _share(theme: Theme) -> str:
    if theme.repeatability is None:
        return "no resolutions in the export"
    return f"{theme.repeatability:.0%} of these tickets"


def _weekly(theme: Theme) -> list[int]:
    """Tickets per ISO week from the first week to the last, weeks without any as 0."""
    mondays = [pd.Timestamp.fromisocalendar(int(w[:4]), int(w[6:]), 1) for w in sorted(theme.per_week)]
    span = pd.date_range(mondays[0], mondays[-1], freq="7D")
    return [theme.per_week.get(day.strftime(ISO_WEEK), 0) for day in span]


def insights_for_export(
    data: str | Path, config_path: str | Path, settings: Settings, since: datetime | None = None, progress: bool = True
) -> Insights:
    """Themes of an export's escalated tickets (those created since `since`), embedded with the config's model."""
    config = load_config(config_path)
    export = load_export(data)
    check_columns(export.frame, config, data)
    tickets = to_tickets(export.frame, config)
    tickets = tickets[tickets["text"].astype(str).str.strip() != ""].reset_index(drop=True)
    if since is not None:
        if "created_at" not in tickets or not tickets["created_at"].notna().any():
            raise DataError(f"--since: {data} has no creation dates (columns.created_at in {config_path})")
        dates = pd.to_datetime(tickets["created_at"], utc=True)
        tickets = tickets[dates >= pd.Timestamp(since)].reset_index(drop=True)
    escalated = ~tickets["target"].isin(config.teams.first_line).to_numpy()
    vectors = np.zeros((len(tickets), 1))
    if escalated.sum():
        texts = tickets["text"][escalated].tolist()
        config = settle_max_length(config, texts, settings.embedding_cache)
        found, _ = transformer_embeddings(texts, config.model, settings.embedding_cache, progress)
        vectors = np.zeros((len(tickets), found.shape[1]), dtype=found.dtype)
        vectors[escalated] = found
    found = find_themes(tickets, vectors, config.teams.first_line, masker_for(settings))
    found.rates = weekly_rates(tickets, config.teams.first_line, config.columns.metadata, masker_for(settings))
    return found
