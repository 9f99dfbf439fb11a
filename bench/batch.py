"""Tickets per second of POST /v1/suggestions/batch and of `escalation predict` on a file of 10,000 tickets.

python bench/batch.py                                    # IT tickets when ../shared/data is there, else the sample
python bench/batch.py --set model.encoder=static --name static --tickets 10000

Trains a model into a throwaway store, writes a file of N tickets drawn (with replacement) from the data, then
(1) scores it with `escalation predict` (a fresh process: model loading included, and reported apart) and
(2) sends it to a real `escalation serve` in batches of 100 from 2 concurrent clients.
Results go to bench/results/batch_NAME.{md,json}.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness import (
    ESCALATION,
    Poster,
    Server,
    parse_args,
    parse_sets,
    payload,
    save,
    serve,
    tickets_of,
    trained_store,
)

from features.data import read_export
from training.benchmark import markdown_table

BATCH = 100


def predict_file(data: Path, config: Path, output: Path, env: dict[str, str]) -> float:
    """Wall seconds of one `escalation predict` process on `data`."""
    started = time.perf_counter()
    command = [ESCALATION, "predict", "--data", str(data), "--config", str(config), "--output", str(output)]
    subprocess.run([*command, "--no-progress"], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def post_batches(server: Server, bodies: list[bytes], clients: int) -> tuple[float, int]:
    """Send every batch body from `clients` keep-alive connections: wall seconds and failed batches."""
    post = Poster(server.url, "/v1/suggestions/batch", server.key)
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        failed = sum(status != 200 for status in pool.map(post, bodies))
    return time.perf_counter() - started, failed


def main() -> None:
    args, name = parse_args(__doc__, lambda p: p.add_argument("--tickets", type=int, default=10_000))

    with tempfile.TemporaryDirectory(prefix="batch-") as tmp:
        folder = Path(tmp)
        config_file, config, env = trained_store(args, folder)

        tickets = tickets_of(args.data, config, args.tickets, seed=1)
        raw = read_export(args.data)
        columns = [c for c in [config.columns.id, *config.columns.text, *config.columns.metadata] if c]
        sample = raw.sample(n=args.tickets, replace=len(raw) < args.tickets, random_state=1)[
            [c for c in columns if c in raw.columns]
        ].reset_index(drop=True)
        if config.columns.id:
            sample[config.columns.id] = [f"bench-{i}" for i in range(len(sample))]
        file = folder / "tickets.csv"
        sample.to_csv(file, index=False)

        cli_wall = predict_file(file, config_file, folder / "out.jsonl", env)
        lines = sum(1 for _ in (folder / "out.jsonl").open())
        assert lines == args.tickets, f"predict wrote {lines} lines for {args.tickets} tickets"
        # the same command on one ticket: the fixed cost of starting and loading the model
        one = folder / "one.csv"
        sample.head(1).to_csv(one, index=False)
        startup = predict_file(one, config_file, folder / "one.jsonl", env)
        print(f"escalation predict: {args.tickets} tickets in {cli_wall:.1f} s (start-up {startup:.1f} s)", flush=True)

        payloads = [payload(t, config.columns.metadata, i) for i, t in tickets.iterrows()]
        bodies = [json.dumps({"tickets": payloads[i : i + BATCH]}).encode() for i in range(0, len(payloads), BATCH)]
        with serve(env, folder / "server.log") as server:
            post_batches(server, bodies[:2], 1)  # warm-up
            api_wall, failed = post_batches(server, bodies, 2)
            peak = server.rss_mb()[1]
        print(f"batch endpoint: {args.tickets} tickets in {api_wall:.1f} s, {failed} failed batches", flush=True)

    rows = [
        {
            "path": "POST /v1/suggestions/batch (100 per request, 2 clients)",
            "seconds": api_wall,
            "per_s": args.tickets / api_wall,
            "failed": failed,
        },
        {"path": "escalation predict (whole run)", "seconds": cli_wall, "per_s": args.tickets / cli_wall, "failed": 0},
        {
            "path": "escalation predict (scoring, start-up excluded)",
            "seconds": cli_wall - startup,
            "per_s": args.tickets / max(cli_wall - startup, 1e-9),
            "failed": 0,
        },
    ]
    table = markdown_table(
        rows,
        [
            ("path", "path", "{}"),
            ("seconds", "seconds", "{:.1f}"),
            ("per_s", "tickets/s", "{:.1f}"),
            ("failed", "failed batches", "{}"),
        ],
    )
    notes = (
        f"{args.tickets} tickets drawn with replacement (seed 1) from `{args.data}`; config overrides "
        f"`{parse_sets(args.set)}`, encoder `{config.model.encoder}`. Start-up of `escalation predict` (process, "
        f"imports, model load; measured on a one-ticket file): {startup:.1f} s. Server peak RSS {peak:.0f} MB."
    )
    md = save(f"batch_{name}", f"Batch scoring: {name}", table, notes, {"rows": rows, "startup_s": startup})
    print(table)
    print(notes)
    print(f"written: {md}")


if __name__ == "__main__":
    main()
