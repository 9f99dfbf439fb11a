"""The trade-off a lead chooses per target: precision against coverage as its routing threshold moves, on the
out-of-fold answers thresholds are chosen on and on the holdout beside them; and a new version with the thresholds
of the precision a lead set (`escalation thresholds`), promoted after the smoke test like any other."""

from __future__ import annotations

import copy
import getpass
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from features.model.router import OTHER, EscalationRouter
from features.settings import Settings
from training import register
from training.evaluate import quality_per_target, reevaluate
from training.fit import thresholds_for
from training.register import ThresholdsRefused
from training.tracking import Tracker, store_missing

log = logging.getLogger(__name__)

CURVE_POINTS = 40  # points a curve keeps (the lead's view draws them; the model carries them)
SOURCES = {"out_of_fold": "out of fold (thresholds chosen here)", "holdout": "holdout (checked here)"}


def shown(threshold: float) -> float:
    """A threshold rounded for people, except one above 1 (never routed), which rounding would make 1."""
    return round(threshold, 4) if threshold <= 1 else threshold


def _mine(router: EscalationRouter, source: str, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(P(top), right, weight, routable) of the answers naming target `j`, highest probability first. On the
    holdout an answer whose escalation answer was `resolve_first` is never routed, as the router answers."""
    answers = router.routing_answers[source]
    mine = answers.top == j
    p, right = answers.probability[mine].astype(float), answers.correct[mine]
    w = np.ones(int(mine.sum())) if answers.weights is None else answers.weights[mine].astype(float)
    routable = np.ones(len(p), dtype=bool)
    if answers.escalated is not None and answers.p_escalation is not None:
        held = answers.p_escalation[answers.escalated] < router.thresholds.resolve_first
        routable = ~held[mine]
    order = np.argsort(-p, kind="stable")
    return p[order], right[order], w[order], routable[order]


def curve(router: EscalationRouter, source: str, j: int) -> list[dict[str, float]]:
    """Precision against coverage of target `j` as its threshold falls through its answers' probabilities:
    coverage is the share of the answers naming it that are routed (weighted as the thresholds are chosen),
    precision the share of those routed that name the team that resolved the ticket."""
    p, right, w, routable = _mine(router, source, j)
    if not len(p):
        return []
    routed_w = np.cumsum(w * routable)
    right_w = np.cumsum(w * right * routable)
    last = np.r_[p[1:] != p[:-1], True] & (routed_w > 0)  # ties share one threshold
    at = np.flatnonzero(last)
    if not len(at):  # none of its answers can be routed (on the holdout: each was told `resolve_first`)
        return []
    coverage, precision = routed_w[at] / w.sum(), right_w[at] / routed_w[at]
    keep = np.unique(np.r_[np.searchsorted(coverage, np.linspace(0, coverage[-1], CURVE_POINTS)), len(at) - 1])
    keep = keep[keep < len(at)]
    return [
        {"threshold": round(float(p[at[k]]), 4), "coverage": round(float(coverage[k]), 4),
         "precision": round(float(precision[k]), 4)}
        for k in keep
    ]  # fmt: skip


def at_threshold(router: EscalationRouter, source: str, j: int, threshold: float) -> dict[str, float | int | None]:
    """The answers naming target `j`, how many are routed at `threshold`, their coverage and precision."""
    p, right, w, routable = _mine(router, source, j)
    routed = (p >= threshold) & routable
    total, sent = float(w.sum()), float(w[routed].sum())
    return {
        "answers": int(len(p)),
        "routed": int(routed.sum()),
        "coverage": round(sent / total, 4) if total else None,
        "precision": round(float((w * right)[routed].sum()) / sent, 4) if sent else None,
    }


def tradeoff(router: EscalationRouter) -> dict[str, dict[str, Any]]:
    """Per suggestible target: the precision its threshold keeps and who set it, the threshold, and for each kept
    set of answers the curve and where the threshold sits on it (what the lead's view and the MLflow run show)."""
    chosen = router.target_thresholds
    if chosen is None or "out_of_fold" not in router.routing_answers:
        return {}
    out = {}
    for j, target in enumerate(router.targets):
        if target == OTHER:
            continue
        threshold = chosen.decide(target, 0.0)[1]
        entry: dict[str, Any] = {
            "precision": chosen.precision_for(target),
            "set_by": chosen.set_by.get(target),
            "threshold": shown(threshold),
        }
        for source in SOURCES:
            if source in router.routing_answers:
                entry[source] = {
                    "at_threshold": at_threshold(router, source, j, threshold),
                    "curve": curve(router, source, j),
                }
        out[target] = entry
    return out


def tradeoff_table(router: EscalationRouter) -> pd.DataFrame:
    """One row per target and set of answers: precision set, threshold and where it sits (the run's table)."""
    rows = []
    for target, entry in router.tradeoff.items():
        for source in SOURCES:
            if source in entry:
                at = entry[source]["at_threshold"]
                rows.append(
                    {"target": target, "answers_of": source, "precision_set": entry["precision"],
                     "set_by": entry["set_by"] or "training", "threshold": entry["threshold"], **at}
                )  # fmt: skip
    return pd.DataFrame(rows)


def tradeoff_figure(router: EscalationRouter, largest: int = 12) -> Figure:
    """Precision against coverage per target (the `largest` by answers), out of fold and on the holdout, with the
    precision set (dashed) and where the threshold sits (dots)."""
    entries = sorted(
        router.tradeoff.items(), key=lambda kv: -kv[1].get("out_of_fold", {}).get("at_threshold", {}).get("answers", 0)
    )[:largest]
    cols = min(4, max(1, len(entries)))
    rows = max(1, -(-len(entries) // cols))
    fig = Figure(figsize=(3.2 * cols, 2.8 * rows + 0.6))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, (target, entry) in zip(axes, entries, strict=False):
        for source, colour in (("out_of_fold", "#1f4e79"), ("holdout", "#b3541e")):
            if source not in entry or not entry[source]["curve"]:
                continue
            points = entry[source]["curve"]
            ax.plot([q["coverage"] for q in points], [q["precision"] for q in points], color=colour,
                    label=SOURCES[source].split(" (")[0])  # fmt: skip
            at = entry[source]["at_threshold"]
            if at["precision"] is not None:
                ax.scatter([at["coverage"]], [at["precision"]], color=colour, zorder=3)
        ax.axhline(entry["precision"], ls="--", color="grey", lw=1)
        ax.set(xlim=(0, 1.02), ylim=(0, 1.02), title=f"{target} ({entry['precision']:.0%})")
        ax.tick_params(labelsize=7)
    for ax in axes[len(entries) :]:
        ax.set_visible(False)
    if entries:
        axes[0].legend(fontsize=7, loc="lower left")
    fig.supxlabel("coverage: share of the answers naming the target that are routed")
    fig.supylabel("precision")
    fig.suptitle("Routing: precision against coverage per target (dashed: precision set; dots: threshold)")
    fig.tight_layout()
    return fig


def rethresholded(
    router: EscalationRouter, precision: float | None, targets: list[str] | None, by: str
) -> EscalationRouter:
    """A copy of `router` (same heads, index and encoder) whose routing thresholds keep `precision` for `targets`
    (None: every target), chosen on its out-of-fold answers as training chooses them; its holdout numbers counted
    again under them. `precision` None gives those targets back the training's precision (no lead's choice)."""
    if precision is not None and not 0 < precision <= 1:
        raise ThresholdsRefused(f"--precision {precision:g}: give a precision above 0 and at most 1")
    if router.target_thresholds is None or "out_of_fold" not in router.routing_answers:
        raise ThresholdsRefused(
            "this version keeps no out-of-fold answers to choose thresholds on (it was trained before "
            "`escalation thresholds` existed): train a new version once, then set its thresholds"
        )
    suggestible = [t for t in router.targets if t != OTHER]
    unknown = [t for t in targets or [] if t not in suggestible]
    if unknown:
        raise ThresholdsRefused(
            f"--target {unknown[0]!r}: not a target this version routes to; it knows {', '.join(suggestible)}"
        )
    chosen = router.target_thresholds
    precisions, set_by = dict(chosen.precisions), dict(chosen.set_by)
    for target in targets or suggestible:
        if precision is None:
            precisions.pop(target, None)
            set_by.pop(target, None)
        else:
            precisions[target], set_by[target] = precision, by
    changed = copy.copy(router)
    changed.target_thresholds = thresholds_for(
        router.routing_answers["out_of_fold"], router.targets, chosen.target_precision, precisions, set_by
    )
    if "holdout" in router.routing_answers:
        metrics, report = reevaluate(changed)
        changed.metrics, changed.per_target = metrics, quality_per_target(report)
    changed.tradeoff = tradeoff(changed)
    changed.info = dict(router.info)
    return changed


@dataclass
class ThresholdChange:
    """What `escalation thresholds` did: the new version, whether it serves, and per target before and after."""

    source: str
    version: str
    run_id: str
    previous: str | None  # the champion before (rolling back is promoting it again)
    promoted: bool
    reason: str
    changes: list[dict[str, Any]] = field(default_factory=list)


def who() -> str:
    """The person running the command, as MLflow records a run's user."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def param_key(target: str) -> str:
    """A target's name as MLflow accepts it in a key (letters, digits, `_-. :/`); the exact names are in
    thresholds/changes.json."""
    return re.sub(r"[^\w\-. :/]", "_", target)


def set_thresholds(
    settings: Settings,
    precision: float | None,
    targets: list[str] | None = None,
    version: int | None = None,
    by: str | None = None,
    reason: str | None = None,
) -> ThresholdChange:
    """Register `version` (default: the champion) again with the thresholds of `precision` for `targets` (None:
    all; `precision` None: back to the training's), log the run that records who set what, and make it the
    champion once it loads back and scores: a lead's decision, not a challenge. What the output lists is compared
    with the champion it replaces. The alias is not moved when the champion changed meanwhile."""
    if precision is not None and not 0 < precision <= 1:
        raise ThresholdsRefused(f"--precision {precision:g}: give a precision above 0 and at most 1")
    if store_missing(settings.tracking_uri):  # not created here: a refused change leaves no store
        raise ThresholdsRefused(f"{settings.tracking_uri} holds no models yet: train one first")
    client = register.connect(settings)
    current = register.champion_version(client, settings)
    if version is None:
        if current is None:
            raise ThresholdsRefused(
                f"{settings.model_name} has no {settings.model_alias} to set thresholds on: train one, or give "
                "--version"
            )
        source = str(current.version)
    else:
        source = str(version)
        try:
            client.get_model_version(settings.model_name, source)
        except MlflowException:
            raise ThresholdsRefused(f"{settings.model_name} has no version {source}") from None
    router = _load(settings, source)
    replaced = router
    if current is not None and str(current.version) != source:  # compared with what serves now, not the source
        try:
            replaced = register.load_router(settings, current.version)
        except Exception as err:  # it is being replaced; the list then compares with the source
            log.warning("champion v%s could not be loaded to compare with: %s", current.version, err)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    by = by or who()
    changed = rethresholded(router, precision, targets, f"{by}, {when}")
    scope = ", ".join(targets) if targets else "every target"
    why = (
        reason
        or (f"precision {precision:g}" if precision is not None else "the training's precision") + f" for {scope}"
    )
    changes = _changes(replaced, changed, targets)
    previous = str(current.version) if current is not None else None
    with Tracker.start(client, settings.experiment, run_name=f"thresholds v{source}: {why}"[:250]) as run:
        changed.info.update(
            {"thresholds_run_id": run.run_id, "thresholds_from_version": source, "thresholds_set_by": by,
             "thresholds_set_at": when}
        )  # fmt: skip
        _log(run, router, changed, source, by, when, precision, targets, why, changes)
        registered = register.log_model(run, changed, _example(changed), settings)
        new = str(registered.version)
        register.tag_lead_precisions(client, settings, new, changed)
        back = f" Roll back: escalation promote --version {previous}." if previous else ""
        client.update_model_version(
            settings.model_name,
            new,
            description=f"Version {source}'s model (same heads and index) with the routing thresholds for {why}, set "
            f"by {by} on {when}: run {run.run_id}, its thresholds/changes.json and evaluation/tradeoff.png.{back}",
        )
        outcome = _serve(client, settings, new, previous, f"thresholds set by {by}: {why}")
        run.tag("promotion", outcome)
    if not outcome.startswith("promoted"):
        raise ThresholdsRefused(f"version {new} registered, not served: {outcome}")
    return ThresholdChange(source, new, run.run_id, previous, True, outcome, changes)


def _load(settings: Settings, version: str) -> EscalationRouter:
    try:
        return register.load_router(settings, version)
    except Exception as err:  # a version that cannot load has no thresholds to set
        raise ThresholdsRefused(f"version {version} of {settings.model_name} cannot be loaded: {err}") from err


def _serve(client: MlflowClient, settings: Settings, new: str, previous: str | None, reason: str) -> str:
    """Promote `new` unless the champion moved since `previous` was read; what happened, as the version's tag."""
    try:
        now = register.champion_version(client, settings)
        if str(now.version if now else None) != str(previous):
            outcome = (
                f"{settings.model_alias} moved from v{previous} to v{now.version if now else None} meanwhile; run "
                "the command again on the new champion (or escalation promote --version " + new + ")"
            )
        else:
            register.promote(settings, new, reason)
            return f"promoted: {reason}"
    except (register.PromotionRefused, MlflowException) as err:
        outcome = str(err)
    try:
        client.set_model_version_tag(settings.model_name, new, "promotion", f"not promoted: {outcome}")
    except MlflowException as err:  # the store is failing: the message says what matters
        log.warning("could not tag v%s: %s", new, err)
    return outcome


def _changes(before: EscalationRouter, after: EscalationRouter, targets: list[str] | None) -> list[dict[str, Any]]:
    """Per target set, and any other whose precision or threshold differs from `before` (the champion replaced):
    precision and threshold before and after, and where the new threshold sits."""
    old, new = before.target_thresholds, after.target_thresholds
    assert old is not None and new is not None
    listed = list(targets or after.tradeoff)
    listed += [
        t
        for t in after.tradeoff
        if t not in listed
        and (old.precision_for(t) != new.precision_for(t) or old.decide(t, 0.0)[1] != new.decide(t, 0.0)[1])
    ]
    rows = []
    for target in listed:
        entry = after.tradeoff.get(target, {})
        rows.append(
            {
                "target": target,
                "precision_before": old.precision_for(target),
                "precision": new.precision_for(target),
                "set_by": new.set_by.get(target) or "training",
                "threshold_before": shown(old.decide(target, 0.0)[1]),
                "threshold": shown(new.decide(target, 0.0)[1]),
                "scope": new.decide(target, 0.0)[2],
                **{f"{s}_{k}": v for s in SOURCES for k, v in entry.get(s, {}).get("at_threshold", {}).items()},
            }
        )
    return rows


def _log(
    run: Tracker,
    before: EscalationRouter,
    after: EscalationRouter,
    source: str,
    by: str,
    when: str,
    precision: float | None,
    targets: list[str] | None,
    why: str,
    changes: list[dict[str, Any]],
) -> None:
    """The run a lead's change leaves: who set what when, thresholds before and after, the curves, the holdout's
    numbers counted again."""
    run.tag("kind", "thresholds")
    run.tag("set_by", by)
    run.params(
        {"source_version": source, "set_by": by, "set_at": when,
         "precision": "training's" if precision is None else precision,
         "targets": ",".join(targets) if targets else "all", "reason": why,
         "trained_in_run": before.info.get("run_id", "unknown")}
    )  # fmt: skip
    run.params({f"threshold_before.{param_key(c['target'])}": c["threshold_before"] for c in changes})
    run.params({f"threshold.{param_key(c['target'])}": c["threshold"] for c in changes})
    run.metrics({k: v for k, v in after.metrics.items() if v == v})  # NaN: no such answer on the holdout
    run.table(pd.DataFrame(changes), "thresholds/changes.json")
    run.table(tradeoff_table(after), "evaluation/tradeoff.json")
    run.json(after.tradeoff, "evaluation/tradeoff_curves.json")
    run.figure(tradeoff_figure(after), "evaluation/tradeoff.png")


def _example(router: EscalationRouter) -> pd.DataFrame:
    """An input example for the registered model: masked snippets the model already keeps, not ticket text."""
    n = min(3, len(router.index.ids))
    frame = pd.DataFrame({"id": router.index.ids[:n].astype(str), "text": router.index.snippets[:n].astype(str)})
    for name in router.metadata:
        frame[name] = ""
    return frame
