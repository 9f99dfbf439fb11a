"""Heads fitted on a stratified sample against heads fitted on every ticket: quality, time and peak memory.

python bench/fit_sample.py                                   # 64,000 generated tickets: all, then samples of 32k, 16k
python bench/fit_sample.py --tickets 16000 --caps 8000 --name small
python bench/fit_sample.py --shared --caps 3400 --name shared_it   # the real IT tickets, half of them sampled

`escalation train` runs on the same export and config once per cap (`training.max_fit_tickets`; the first run
fits on every ticket), each into its own throwaway store, sharing one embedding cache (so only the first run
embeds). The holdout is the same in every run (the cap does not change the split), so the metrics compare the heads
alone; the similar-ticket index keeps every training ticket in all of them. The goal: a sample within 0.5 points of
every ticket on the routing score. Results go to bench/results/fit_sample_NAME.{md,json}.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from harness import ROOT, SHARED_IT, environment, save, write_config
from train import PHASES, timed_train

from training.benchmark import markdown_table
from training.sample_data import write_sample

METRICS = ("routing_score", "escalation_average_precision", "target_top1_accuracy", "target_macro_f1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=64_000, help="Generated tickets in the export.")
    parser.add_argument("--caps", default="32000,16000", help="training.max_fit_tickets values to compare.")
    parser.add_argument("--shared", action="store_true", help="The real IT tickets instead of generated ones.")
    parser.add_argument("--name", default=None)
    args = parser.parse_args()
    caps = [int(c) for c in args.caps.split(",")]

    rows = []
    with tempfile.TemporaryDirectory(prefix="fit-sample-") as tmp:
        folder = Path(tmp)
        if args.shared:
            data, base, label = SHARED_IT, ROOT / "bench/configs/shared_it.yaml", "IT tickets"
        else:
            data, base = write_sample(folder / "sample", rows=args.tickets, seed=args.tickets)
            label = f"generated {args.tickets:,}"
        cache = folder / "embeddings.sqlite"
        for cap in [None, *caps]:
            work = folder / f"cap-{cap}"
            work.mkdir()
            config, _ = write_config(base, {"training.max_fit_tickets": "null" if cap is None else str(cap)}, work)
            env = environment(work, cache)
            timed = timed_train(data, config, env)
            run = timed.run(env)
            row = {
                "heads": "every ticket" if cap is None else f"sample, cap {cap:,}",
                "fitted_on": int(run.data.params["chosen.heads_fitted_on"]),
                "seconds": timed.seconds,
                "peak_mb": timed.peak_mb,
                "machine_peak_gb": timed.machine_peak_gb,
                **{m: run.data.metrics[m] for m in (*METRICS, *PHASES) if m in run.data.metrics},
            }
            rows.append(row)
            print(row, flush=True)
    base_row = rows[0]
    for row in rows:
        row["routing_delta_points"] = 100 * (row["routing_score"] - base_row["routing_score"])
    table = markdown_table(
        rows,
        [
            ("heads", "heads", "{}"),
            ("fitted_on", "fitted on", "{:,}"),
            ("routing_score", "routing score", "{:.4f}"),
            ("routing_delta_points", "vs every ticket (points)", "{:+.2f}"),
            ("escalation_average_precision", "escalation AP", "{:.4f}"),
            ("target_top1_accuracy", "target top-1", "{:.4f}"),
            ("target_macro_f1", "target macro-F1", "{:.4f}"),
            ("fit_seconds", "fitting s", "{:.0f}"),
            ("embed_seconds", "embedding s", "{:.0f}"),
            ("seconds", "train s", "{:.0f}"),
            ("peak_mb", "peak MB", "{:.0f}"),
        ],
    )
    notes = (
        f"{label}: `escalation train` once per `training.max_fit_tickets` (the first fits on every ticket), same "
        "export, config and holdout; one embedding cache, so the first run's train s (the whole command) includes "
        "embedding and the others' do not: compare fitting s (the heads' fit as each run logged it). Routing score: "
        "(escalation AP + target top-1) / 2 on the holdout. Goal: a sample within 0.5 points."
    )
    name = args.name or ("shared_it" if args.shared else f"{args.tickets // 1000}k")
    md = save(f"fit_sample_{name}", f"Heads on a sample: {label}", table, notes, {"rows": rows})
    print(table)
    print(f"written: {md}")


if __name__ == "__main__":
    main()
