"""What the approximate similar-ticket index costs in quality: one fitted model, its holdout scored three ways.

python bench/index_quality.py                                          # 200k generated tickets, static encoder
python bench/index_quality.py --tickets 64000 --set model.encoder=onnx

The router is fitted once (`training.train.prepare` and `fit_and_evaluate`, as `escalation train` does); then the
same holdout is scored with the index as training built it (faiss inverted lists, the probe count calibrated at the
build), with the index scanning every cell (what the calibration chose on generated tickets before it counted recall
by similarity: identical tickets made it scan everything) and with exact search. The neighbours' vote and the
similar tickets shown are what differ. Results go to bench/results/index_quality_NAME.{md,json}.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from harness import environment, parse_sets, save, write_config

from training.benchmark import markdown_table
from training.sample_data import write_sample

METRICS = ("routing_score", "escalation_average_precision", "target_top1_accuracy", "target_macro_f1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=200_000, help="Generated tickets in the export.")
    parser.add_argument("--set", action="append", default=[], help="Config override (default: static encoder).")
    parser.add_argument("--name", default=None)
    args = parser.parse_args()
    overrides = parse_sets(args.set) or {"model.encoder": "static", "model.static_tuning": "false"}

    with tempfile.TemporaryDirectory(prefix="index-quality-") as tmp:
        folder = Path(tmp)
        data, base = write_sample(folder / "sample", rows=args.tickets, seed=args.tickets)
        config, _ = write_config(base, overrides, folder)
        os.environ.update(environment(folder, folder / "embeddings.sqlite"))
        from features.settings import Settings
        from training.evaluate import evaluate
        from training.train import fit_and_evaluate, prepare

        settings = Settings()
        prepared = prepare(data, config, settings, progress=True, feedback=None, strict=False)
        fitted = fit_and_evaluate(prepared, settings, progress=True)
        router, index = fitted.router, fitted.router.index
        if index.approximate is None:
            raise SystemExit(f"{len(index.vectors):,} indexed tickets: below ann_threshold, no approximate index")
        approximate = index.approximate
        calibrated = approximate.probe
        rows = []
        for label, probe, exact in (
            (f"inverted lists, probe {calibrated} (calibrated)", calibrated, False),
            (f"inverted lists, every cell ({approximate.index.nlist})", approximate.index.nlist, False),
            ("exact search", None, True),
        ):
            index.approximate = None if exact else approximate
            if probe:
                approximate.index.nprobe = probe
            started = time.perf_counter()
            metrics = evaluate(router, prepared.hold_t, prepared.hold_embeddings, prepared.hold_labels).metrics
            rows.append({"search": label, "seconds": time.perf_counter() - started, **{m: metrics[m] for m in METRICS}})
            print(rows[-1], flush=True)
    for row in rows:
        row["delta_points"] = 100 * (row["routing_score"] - rows[-1]["routing_score"])
    table = markdown_table(
        rows,
        [
            ("search", "similar-ticket search", "{}"),
            ("routing_score", "routing score", "{:.4f}"),
            ("delta_points", "vs exact (points)", "{:+.2f}"),
            ("escalation_average_precision", "escalation AP", "{:.4f}"),
            ("target_top1_accuracy", "target top-1", "{:.4f}"),
            ("target_macro_f1", "target macro-F1", "{:.4f}"),
            ("seconds", "holdout scored in s", "{:.0f}"),
        ],
    )
    notes = (
        f"generated {args.tickets:,} tickets, config overrides `{overrides}`; {len(index.vectors):,} indexed, "
        f"{len(prepared.hold_t):,} in the holdout. One fitted router; only the similar-ticket search differs. "
        "Routing score: (escalation AP + target top-1) / 2."
    )
    name = args.name or f"{args.tickets // 1000}k"
    md = save(f"index_quality_{name}", "Approximate against exact similar-ticket search", table, notes, {"rows": rows})
    print(table)
    print(f"written: {md}")


if __name__ == "__main__":
    main()
