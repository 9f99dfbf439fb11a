"""Is the champion judged fairly? Version 1 trains on part of an export, version 2 on all of it (the new tickets
appended), and the champion is scored beside the challenger.

python bench/champion.py                     # the real IT tickets when ../shared/data is there, else the sample
python bench/champion.py --share 0.9 --set model.encoder=static

The export's dates are dropped, so the holdout is drawn per ticket (by id, or by text without an id column) as it
is for undated exports. Version 1 trains on a random `--share` of the rows, version 2 on all of them, each with
`escalation train`'s own stages in a throwaway store. The table scores version 1 (the champion) three ways:
on the holdout tickets neither trained on (what the challenge now uses), on version 2's whole holdout, and on
the holdout that a stratified split redrawn for the grown export gives (what the challenge used before: most of
it is tickets the champion trained on). Results go to bench/results/champion_NAME.{md,json}.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from harness import environment, parse_args, parse_sets, save, write_config

from features.config import load_config
from features.data import read_export
from training.benchmark import markdown_table

METRICS = ("routing_score", "escalation_average_precision", "target_top1_accuracy", "target_macro_f1")


def main() -> None:
    args, name = parse_args(
        __doc__, lambda p: p.add_argument("--share", type=float, default=0.9, help="Rows version 1 trains on.")
    )
    with tempfile.TemporaryDirectory(prefix="champion-") as tmp:
        folder = Path(tmp)
        dated = load_config(args.config).columns.created_at
        overrides = {**parse_sets(args.set), **({"columns.created_at": "null"} if dated else {})}
        config_file, config = write_config(args.config, overrides, folder)  # undated, as the exports this is about
        raw = read_export(args.data)
        raw = raw.drop(columns=[dated]) if dated else raw
        grown = folder / "grown.csv"
        raw.to_csv(grown, index=False)
        first = folder / "first.csv"
        raw.sample(frac=args.share, random_state=7).sort_index().to_csv(first, index=False)
        os.environ.update(environment(folder, folder / "embeddings.sqlite"))
        from sklearn.model_selection import train_test_split

        from features.settings import Settings
        from training.evaluate import evaluate
        from training.labels import derive_labels
        from training.train import challenge, fit_and_evaluate, prepare, train

        settings = Settings()
        v1 = train(first, config_file, settings, progress=True)
        prepared = prepare(grown, config_file, settings, progress=True, feedback=None, strict=False)
        fitted = fit_and_evaluate(prepared, settings, progress=True)
        challenged = challenge(prepared, fitted, settings)
        champion = prepared.champion.router
        assert champion is not None and champion.provenance is not None
        p = prepared
        hold_keys = p.keys.take(p.hold_idx)
        trained_on = champion.provenance.trained_on(hold_keys)
        shared = np.flatnonzero(~trained_on)
        rows = [
            {
                "model": "challenger (v2), tickets neither trained on",
                "tickets": len(shared),
                **compared(challenged, False),
            },
            {
                "model": "champion (v1), tickets neither trained on",
                "tickets": len(shared),
                **compared(challenged, True),
            },
        ]
        whole = evaluate(champion, p.hold_t, p.hold_embeddings, p.hold_labels).metrics
        rows.append({"model": "champion (v1), v2's whole holdout", "tickets": len(p.hold_t), **pick(whole)})
        # The split before this change, as it drew it: stratified by target (lone targets pooled), seed 42, redrawn
        # whenever the number of rows changed.
        strata = pd.Series(np.where(p.tickets["target"].isin(config.teams.first_line), "", p.tickets["target"]))
        strata = strata.where(strata.map(strata.value_counts()) >= 2, "\x00rare").to_numpy(dtype=str)
        _, old_hold = train_test_split(
            np.arange(len(p.tickets)), test_size=config.training.holdout_fraction, random_state=42, stratify=strata
        )
        old_hold = np.sort(old_hold)
        old_keys = p.keys.take(old_hold)
        seen_before = champion.provenance.trained_on(old_keys)
        old_t = p.tickets.iloc[old_hold].reset_index(drop=True)
        old_labels = derive_labels(old_t["target"].to_numpy(dtype=str), config.teams, 1)
        before = evaluate(champion, old_t, p.embedded.vectors[old_hold], old_labels).metrics
        rows.append(
            {"model": "champion (v1), a stratified holdout redrawn (before)", "tickets": len(old_hold), **pick(before)}
        )
    table = markdown_table(
        rows,
        [
            ("model", "scored", "{}"),
            ("tickets", "holdout tickets", "{}"),
            ("routing_score", "routing score", "{:.4f}"),
            ("escalation_average_precision", "escalation AP", "{:.4f}"),
            ("target_top1_accuracy", "target top-1", "{:.4f}"),
            ("target_macro_f1", "target macro-F1", "{:.4f}"),
        ],
    )
    held1 = int(v1.metrics["holdout_tickets"])
    notes = (
        f"`{args.data}` ({len(raw):,} rows read), dates dropped; version 1 trained on a random {args.share:.0%} of the "
        f"rows, version 2 on all of them; holdout `{p.how}` ({len(p.hold_t):,} tickets for version 2, {held1:,} for "
        f"version 1). Of version 2's holdout, {int(trained_on.sum())} tickets were in version 1's training (left out "
        f"of the comparison, {len(shared):,} left). A stratified split redrawn for the grown export (the split before "
        f"this change) held out {len(old_hold):,} tickets, {int(seen_before.sum()):,} of them version 1's training "
        f"tickets. Decision: {challenged.reason}. Routing score: (escalation AP + target top-1) / 2; macro-F1 over the "
        "teams really escalated to."
    )
    md = save(
        f"champion_{name}",
        "Champion against challenger: on the tickets neither trained on, and as before",
        table,
        notes,
        {
            "rows": rows,
            "share": args.share,
            "holdout": p.how,
            "holdout_v2": len(p.hold_t),
            "holdout_v1": held1,
            "excluded": int(trained_on.sum()),
            "redrawn_holdout": len(old_hold),
            "redrawn_seen_by_champion": int(seen_before.sum()),
            "reason": challenged.reason,
        },
    )
    print(table)
    print(notes)
    print(f"written: {md}")


def pick(metrics: dict[str, float]) -> dict[str, float]:
    return {m: metrics[m] for m in METRICS if m in metrics}


def compared(challenged, champion: bool) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The champion's (or the challenger's) numbers of the challenge's comparison table."""
    frame = challenged.comparison.set_index("metric")
    column = "champion" if champion else "challenger"
    return {m: float(frame.loc[m, column]) for m in METRICS if m in frame.index}


if __name__ == "__main__":
    main()
