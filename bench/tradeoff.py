"""Does the precision a lead sets hold on tickets it was not chosen on? `escalation thresholds` at several
precisions, each target's threshold chosen on the out-of-fold answers, checked on the holdout.

python bench/tradeoff.py                 # the IT tickets when ../shared/data is there, else the sample
python bench/tradeoff.py --precisions 0.8 0.9 0.95

Trains one model into a throwaway store, then for each precision sets every target to it (as `escalation
thresholds --precision P` does, without registering) and counts, per target and pooled over targets: the answers
routed and their precision out of fold (where the thresholds are chosen) and on the holdout (as served: an answer
told `resolve_first` is never routed). A target whose holdout precision falls short of P is listed with its
holdout answers: few answers make a short fall likely and say little. Results go to bench/results/tradeoff_NAME.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from harness import parse_args, save, trained_store

from features.settings import Settings
from training.benchmark import markdown_table
from training.register import load_router
from training.tradeoff import rethresholded


def pooled(entries: dict[str, dict], source: str) -> dict[str, float | int | None]:
    """Routed answers and their precision over every target: each target's precision times its routed answers
    (exact unless the heads were fitted on a sample, whose weights are in each target's own precision)."""
    answers = sum(e[source]["at_threshold"]["answers"] for e in entries.values() if source in e)
    routed = sum(e[source]["at_threshold"]["routed"] for e in entries.values() if source in e)
    right = sum(
        e[source]["at_threshold"]["routed"] * (e[source]["at_threshold"]["precision"] or 0.0)
        for e in entries.values()
        if source in e
    )
    return {
        "answers": answers,
        "routed": routed,
        "coverage": round(routed / answers, 4) if answers else None,
        "precision": round(right / routed, 4) if routed else None,
    }


def main() -> None:
    args, name = parse_args(
        __doc__ or "",
        lambda p: p.add_argument("--precisions", type=float, nargs="+", default=[0.8, 0.85, 0.9, 0.95]),
    )
    with tempfile.TemporaryDirectory(prefix="tradeoff-") as tmp:
        folder = Path(tmp)
        _, _, env = trained_store(args, folder)
        settings = Settings(tracking_uri=env["MLFLOW_TRACKING_URI"])
        router = load_router(settings, 1)
    rows, short = [], []
    for precision in args.precisions:
        changed = rethresholded(router, precision, None, "benchmark")
        entries = changed.tradeoff
        out, held = pooled(entries, "out_of_fold"), pooled(entries, "holdout")
        routed_targets = [t for t, e in entries.items() if e["threshold"] <= 1]
        below = [
            (t, e["holdout"]["at_threshold"])
            for t, e in entries.items()
            if e["threshold"] <= 1
            and e["holdout"]["at_threshold"]["precision"] is not None
            and e["holdout"]["at_threshold"]["precision"] < precision
        ]
        short += [
            {
                "precision_set": precision,
                "target": t,
                "holdout_routed": a["routed"],
                "holdout_precision": a["precision"],
            }
            for t, a in below
        ]
        rows.append(
            {
                "precision_set": precision,
                "targets_routed": f"{len(routed_targets)} of {len(entries)}",
                "oof_coverage": out["coverage"],
                "oof_precision": out["precision"],
                "holdout_coverage": held["coverage"],
                "holdout_precision": held["precision"],
                "holdout_routed": held["routed"],
                "routing_coverage": changed.metrics.get("routing_coverage"),
                "routing_precision": changed.metrics.get("routing_precision"),
                "targets_short": len(below),
            }
        )
        print(rows[-1], flush=True)
    table = markdown_table(
        rows,
        [
            ("precision_set", "precision set", "{:.2f}"),
            ("targets_routed", "targets with a threshold", "{}"),
            ("oof_coverage", "out of fold: routed share", "{:.3f}"),
            ("oof_precision", "out of fold: precision", "{:.3f}"),
            ("holdout_coverage", "holdout: routed share", "{:.3f}"),
            ("holdout_precision", "holdout: precision", "{:.3f}"),
            ("holdout_routed", "holdout: routed", "{}"),
            ("routing_coverage", "holdout routing_coverage", "{:.3f}"),
            ("routing_precision", "holdout routing_precision", "{:.3f}"),
            ("targets_short", "targets below it on the holdout", "{}"),
        ],
    )
    shortfalls = (
        markdown_table(
            short,
            [
                ("precision_set", "precision set", "{:.2f}"),
                ("target", "target", "{}"),
                ("holdout_routed", "holdout answers routed", "{}"),
                ("holdout_precision", "holdout precision", "{:.3f}"),
            ],
        )
        if short
        else "No target fell below the precision set on the holdout."
    )
    notes = (
        f"Data `{args.data}`, config overrides `{args.set}`; one model (holdout: {router.info.get('holdout')}, "
        f"{router.info.get('trained_rows')} training tickets, heads fitted on "
        f"{router.head_params.get('heads_fitted_on')}). Routed share and precision are pooled over targets "
        "from each target's answers (the answers naming it as top-1); `routing_coverage` / `routing_precision` are "
        "the holdout metrics of `escalation train` counted again under the thresholds (share of escalated holdout "
        "tickets routed, and how often to the right team). Each threshold keeps the lower end of the precision's "
        "Wilson interval (z=1) at the precision set, on the out-of-fold answers.\n\nTargets below the precision set "
        f"on the holdout:\n\n{shortfalls}"
    )
    md = save(
        f"tradeoff_{name}",
        f"Precision set by a lead, held on the holdout: {name}",
        table,
        notes,
        {"rows": rows, "short": short},
    )
    print(table)
    print(notes)
    print(f"written: {md}")


if __name__ == "__main__":
    main()
