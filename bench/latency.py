"""Latency of POST /v1/suggestions on the real server, beside the bare encoder on the same texts.

python bench/latency.py                                  # IT tickets when ../shared/data is there, else the sample
python bench/latency.py --set model.encoder=static --name static
python bench/latency.py --data FILE --config FILE --requests 400

Trains a model into a throwaway store (the embedding cache makes a rerun quick), starts `escalation serve` on a
loopback port and sends tickets drawn from the data, with ids (so suggestions are recorded, as in production), at
concurrency 1, 4 and 16: p50/p95/p99 latency, throughput and the server's peak RSS. Before the server starts, the
same texts go through the bare PyTorch encoder, one at a time and in batches of 32, in this process; the ratio of
the endpoint's p50 to the bare encoder's p50 is the cost of everything the service adds. Results go to
bench/results/latency_NAME.{md,json}.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from harness import (
    Poster,
    Server,
    parse_args,
    parse_sets,
    payload,
    percentiles,
    save,
    serve,
    tickets_of,
    trained_store,
)

from features.encoders.transformer import choose_max_length, load_encoder
from features.model.timing import STAGES, parse_header
from training.benchmark import markdown_table

LEVELS = (1, 4, 16)


def bare_encoder(texts: list[str], reference: str, max_seq_length: int | None) -> dict[str, float]:
    """The PyTorch sentence encoder alone: one text at a time (p50/p99 ms) and batched (texts per second)."""
    model = load_encoder(reference, max_seq_length)
    return timed(lambda batch, size: model.encode(batch, batch_size=size), texts)


def bare_onnx(texts: list[str], reference: str, max_seq_length: int, folder: Path) -> dict[str, float]:
    """The same encoder exported to ONNX Runtime (what a model with runtime 'onnx' serves with), measured alike."""
    from features.encoders.onnx import export_encoder

    encoder = export_encoder(reference, max_seq_length, folder)
    return timed(lambda batch, size: encoder.encode(batch, batch_size=size), texts)


def timed(encode: Callable[[list[str], int], object], texts: list[str]) -> dict[str, float]:
    encode(texts[:32], 32)  # warm-up
    single = []
    for text in texts:
        started = time.perf_counter()
        encode([text], 1)
        single.append(1000 * (time.perf_counter() - started))
    started = time.perf_counter()
    encode(texts, 32)
    batched = len(texts) / (time.perf_counter() - started)
    return {**percentiles(single), "batched_per_s": round(batched, 1)}


def load(
    server: Server, bodies: list[bytes], concurrency: int
) -> tuple[list[float], float, int, list[dict[str, float]]]:
    """Send every body with `concurrency` keep-alive clients: latencies (ms), wall seconds, errors and each
    answer's stages (ms, from its Server-Timing header)."""
    post = Poster(server.url, "/v1/suggestions", server.key, timeout=60)
    latencies: list[float] = []
    stages: list[dict[str, float]] = []
    errors = 0
    lock = threading.Lock()

    def send(body: bytes) -> None:
        nonlocal errors
        started = time.perf_counter()
        status = post(body)
        elapsed = 1000 * (time.perf_counter() - started)
        timed = parse_header(post.timing)
        with lock:
            latencies.append(elapsed)
            errors += status != 200
            if status == 200:
                stages.append(timed)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(send, bodies))
    return latencies, time.perf_counter() - started, errors, stages


def stage_rows(level: int, latencies: list[float], stages: list[dict[str, float]]) -> list[dict[str, object]]:
    """Per stage at one concurrency: median and p99 ms, and the median's share of the median request; then what no
    stage accounts for (HTTP, parsing and validating the request, auth, the route's own work)."""
    names = [s for s in STAGES if any(s in t for t in stages)]
    p50 = float(np.percentile(latencies, 50))
    rows = []
    for name in names:
        values = [t.get(name, 0.0) for t in stages]
        median = float(np.percentile(values, 50))
        rows.append(
            {"concurrency": level, "stage": name, "p50": median, "p99": float(np.percentile(values, 99)),
             "share": median / p50}
        )  # fmt: skip
    rest = [lat - sum(t.values()) for lat, t in zip(latencies, stages, strict=False)]
    median = float(np.percentile(rest, 50))
    rows.append(
        {"concurrency": level, "stage": "(outside the stages)", "p50": median, "p99": float(np.percentile(rest, 99)),
         "share": median / p50}
    )  # fmt: skip
    return rows


def main() -> None:
    args, name = parse_args(
        __doc__, lambda p: p.add_argument("--requests", type=int, default=300, help="Requests per concurrency level.")
    )

    with tempfile.TemporaryDirectory(prefix="latency-") as tmp:
        folder = Path(tmp)
        config_file, config, env = trained_store(args, folder)

        tickets = tickets_of(args.data, config, args.requests * 2)
        texts = tickets["text"].tolist()
        bodies = [json.dumps(payload(t, config.columns.metadata, i)).encode() for i, t in tickets.iterrows()]

        rows = []
        with serve(env, folder / "server.log") as server:
            served = server.get("/v1/model")
            # the transformer the model was trained with, at its length (a static model's source, at 'auto')
            length = served["max_seq_length"] or choose_max_length(texts, served["embedding_model"])
            bare = bare_encoder(texts[: args.requests], served["embedding_model"], length)  # server idle meanwhile
            print(f"bare PyTorch encoder at {length} tokens: {bare}", flush=True)
            onnx = bare_onnx(texts[: args.requests], served["embedding_model"], length, folder / "onnx")
            print(f"bare ONNX Runtime encoder at {length} tokens: {onnx}", flush=True)
            load(server, bodies[:30], 1)  # warm-up
            breakdown = []
            for level in LEVELS:
                n = args.requests if level == 1 else args.requests * 2
                latencies, wall, errors, timed = load(server, bodies[:n], level)
                breakdown += stage_rows(level, latencies, timed) if timed and len(timed) == len(latencies) else []
                rss, _ = server.rss_mb()
                row = {
                    "concurrency": level,
                    "requests": n,
                    **percentiles(latencies),
                    "per_s": round(n / wall, 1),
                    "errors": errors,
                    "ratio_p50_to_bare": round(float(np.percentile(latencies, 50)) / bare["p50"], 2),
                    "ratio_p50_to_bare_onnx": round(float(np.percentile(latencies, 50)) / onnx["p50"], 2),
                    "server_rss_mb": round(rss),
                }
                print(row, flush=True)
                rows.append(row)
            peak_rss = server.rss_mb()[1]

    table = markdown_table(
        rows,
        [
            ("concurrency", "concurrency", "{}"),
            ("requests", "requests", "{}"),
            ("p50", "p50 ms", "{:.1f}"),
            ("p95", "p95 ms", "{:.1f}"),
            ("p99", "p99 ms", "{:.1f}"),
            ("per_s", "suggestions/s", "{:.1f}"),
            ("errors", "errors", "{}"),
            ("ratio_p50_to_bare", "p50 / bare PyTorch p50", "{:.2f}"),
            ("ratio_p50_to_bare_onnx", "p50 / bare ONNX p50", "{:.2f}"),
        ],
    )
    stages_table = markdown_table(
        breakdown,
        [
            ("concurrency", "concurrency", "{}"),
            ("stage", "stage", "{}"),
            ("p50", "p50 ms", "{:.2f}"),
            ("p99", "p99 ms", "{:.2f}"),
            ("share", "p50 / request p50", "{:.2f}"),
        ],
    )
    notes = (
        f"Data `{args.data}` ({len(texts)} tickets drawn with seed 0, sent as `body` with an id), config overrides "
        f"`{parse_sets(args.set)}`, encoder `{config.model.encoder}`, embedding model "
        f"`{served['embedding_model']}` (served: max {served['max_seq_length']} tokens). One `escalation serve` "
        "process (uvicorn, one worker) on loopback; keep-alive clients in a separate process.\n\n"
        f"Bare PyTorch encoder ({length} tokens) on the same texts in the client process while the server idled, "
        f"one at a time: p50 {bare['p50']:.1f} ms, "
        f"p99 {bare['p99']:.1f} ms; batched (32): {bare['batched_per_s']:.1f} texts/s. The same encoder exported to "
        f"ONNX Runtime: p50 {onnx['p50']:.1f} ms, p99 {onnx['p99']:.1f} ms; batched (32): "
        f"{onnx['batched_per_s']:.1f} texts/s. The server runs the transformer on "
        f"{served.get('runtime') or 'none (static)'}.\n\n"
        f"Server peak RSS: {peak_rss:.0f} MB.\n\n"
        "Where the time goes, per stage, from each answer's Server-Timing header (features/model/timing.py; a "
        "batched stage is the whole shared call each request waited for, so at concurrency 16 the stages of "
        "requests that shared a call overlap; '(outside the stages)' is the request's time the stages do not "
        "cover: HTTP, parsing and validating the request, auth, the client):\n\n" + stages_table
    )
    md = save(
        f"latency_{name}",
        f"Suggestion latency: {name}",
        table,
        notes,
        {
            "rows": rows,
            "bare_encoder": bare,
            "bare_onnx": onnx,
            "peak_rss_mb": peak_rss,
            "stages": breakdown,
            "overrides": parse_sets(args.set),
        },
    )
    print(table)
    print(notes)
    print(f"written: {md}")


if __name__ == "__main__":
    main()
