"""Sustained load on the real server: suggestions and feedback mixed, at concurrency 32, for two minutes.

python bench/soak.py                      # IT tickets when ../shared/data is there, else the sample
python bench/soak.py --seconds 120 --concurrency 32 --max-requests 20000 --feedback-every 3

Trains a model into a throwaway store, starts `escalation serve` (with API keys, as in production) and runs
`--concurrency` keep-alive clients until `--seconds` have passed or `--max-requests` suggestions were sent. Each
client asks for a suggestion for a ticket with a fresh id and, for every `--feedback-every`-th, posts feedback
(escalated to the top suggestion, or resolved, as the answer said). Reports errors, p50/p95/p99 per kind,
throughput, the server's RSS after the first minute and at the end (growth must stay under 10%), and checks
afterwards that every acknowledged feedback row is in the feedback store. Results: bench/results/soak_NAME.{md,json}.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness import Poster, Server, parse_args, payload, percentiles, save, serve, tickets_of, trained_store

from serving.feedback_store import FeedbackStore
from training.benchmark import markdown_table


def soak(server: Server, bodies: list[bytes], args: object) -> dict[str, object]:
    """Run the load; latencies per kind, errors, acknowledged feedback ids and RSS samples."""
    post = Poster(server.url, "/v1/suggestions", server.key, timeout=60)
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    acknowledged: list[str] = []
    rss: list[tuple[float, float]] = []
    lock = threading.Lock()
    counter = iter(range(args.max_requests))
    started = time.monotonic()
    deadline = started + args.seconds
    done = threading.Event()

    def sample() -> None:
        while not done.wait(1.0):
            rss.append((time.monotonic() - started, server.rss_mb()[0]))

    def timed(kind: str, body: bytes, path: str | None = None) -> bytes | None:
        t0 = time.perf_counter()
        try:
            status, answer = post.send(body, path)
        except OSError:
            status, answer = 0, b""
        ms = 1000 * (time.perf_counter() - t0)
        with lock:
            latencies[kind].append(ms)
            if status != 200:
                errors[f"{kind} {status}"] += 1
        return answer if status == 200 else None

    def client(worker: int) -> None:
        while time.monotonic() < deadline:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            ticket = json.loads(bodies[n % len(bodies)])
            ticket["id"] = f"soak-{n}"
            answer = timed("suggestion", json.dumps(ticket).encode())
            if answer is None or n % args.feedback_every:
                continue
            result = json.loads(answer)
            escalated = result["escalation"]["decision"] == "escalate"
            feedback = {
                "ticket_id": ticket["id"],
                "escalated": escalated,
                "target": result["suggestions"][0]["target"] if escalated else None,
                "accepted_suggestion": True,
            }
            if timed("feedback", json.dumps(feedback).encode(), "/v1/feedback") is not None:
                with lock:
                    acknowledged.append(ticket["id"])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with ThreadPoolExecutor(args.concurrency) as pool:
        list(pool.map(client, range(args.concurrency)))
    done.set()
    wall = time.monotonic() - started
    return {"latencies": latencies, "errors": dict(errors), "acknowledged": acknowledged, "rss": rss, "wall": wall}


def main() -> None:
    def add(parser: object) -> None:
        parser.add_argument("--seconds", type=float, default=120.0)
        parser.add_argument("--concurrency", type=int, default=32)
        parser.add_argument("--max-requests", type=int, default=20_000, help="Most suggestions sent.")
        parser.add_argument("--feedback-every", type=int, default=3, help="Feedback for every n-th suggestion.")

    args, name = parse_args(__doc__, add)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        folder = Path(tmp)
        _, config, env = trained_store(args, folder)
        tickets = tickets_of(args.data, config, 2000)
        bodies = [json.dumps(payload(t, config.columns.metadata, i)).encode() for i, t in tickets.iterrows()]
        with serve(env, folder / "server.log") as server:
            Poster(server.url, "/v1/suggestions", server.key)(bodies[0])  # warm-up
            print(f"soak: {args.concurrency} clients for {args.seconds:.0f} s ...", flush=True)
            run = soak(server, bodies, args)
            peak = server.rss_mb()[1]
        stored = FeedbackStore(env["ESCALATION_FEEDBACK_URL"]).feedback_frame()
    acknowledged = set(run["acknowledged"])
    missing = sorted(acknowledged - set(stored["ticket_id"]))
    rss = run["rss"]
    first_minute = next((mb for t, mb in rss if t >= min(60.0, args.seconds / 2)), rss[0][1] if rss else 0.0)
    last = rss[-1][1] if rss else 0.0
    growth = (last - first_minute) / first_minute if first_minute else float("nan")
    rows = []
    for kind, ms in run["latencies"].items():
        failed = sum(v for k, v in run["errors"].items() if k.startswith(kind))
        rows.append(
            {"kind": kind, "requests": len(ms), **percentiles(ms), "per_s": len(ms) / run["wall"], "errors": failed}
        )
    table = markdown_table(
        rows,
        [
            ("kind", "request", "{}"),
            ("requests", "requests", "{}"),
            ("p50", "p50 ms", "{:.1f}"),
            ("p95", "p95 ms", "{:.1f}"),
            ("p99", "p99 ms", "{:.1f}"),
            ("per_s", "per second", "{:.1f}"),
            ("errors", "errors", "{}"),
        ],
    )
    notes = (
        f"{args.concurrency} keep-alive clients for {run['wall']:.0f} s (at most {args.max_requests} suggestions) "
        f"against one `escalation serve` process on loopback with API keys on; feedback for one suggestion "
        f"in {args.feedback_every}. Data `{args.data}`, config overrides `{args.set}`.\n\n"
        f"Errors: {run['errors'] or 'none'}. Server RSS {first_minute:.0f} MB after the first minute, {last:.0f} MB "
        f"at the end: growth {100 * growth:+.1f}% (goal under 10%); peak {peak:.0f} MB.\n\n"
        f"Feedback acknowledged: {len(acknowledged)}; in the store afterwards: {len(acknowledged) - len(missing)} "
        f"(missing: {len(missing)})."
    )
    md = save(
        f"soak_{name}",
        f"Soak: suggestions and feedback at concurrency {args.concurrency}",
        table,
        notes,
        {
            "rows": rows,
            "errors": run["errors"],
            "rss_mb": rss,
            "rss_growth": growth,
            "peak_rss_mb": peak,
            "feedback_acknowledged": len(acknowledged),
            "feedback_missing": missing,
            "seconds": run["wall"],
            "concurrency": args.concurrency,
        },
    )
    print(table)
    print(notes)
    print(f"written: {md}")


if __name__ == "__main__":
    main()
