"""Similar-ticket lookup latency at 10k, 100k and 1M indexed tickets: exact search against the approximate index.

python bench/similar.py                      # 10k, 100k, 1M; results in bench/results/similar.{md,json}
python bench/similar.py --sizes 10000,100000 --queries 500 --name similar_small

Random unit vectors of the embedding's width stand in for tickets, clustered by topic (size/100 random centres, each
ticket its centre plus noise); each query is a stored vector plus noise, so it has true near neighbours. One query
at a time (as the API asks), p50/p95/p99 in milliseconds; recall@10 of the approximate index against exact search
on the same queries.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from features.model.graph import CALIBRATION_QUERIES, RECALL_TARGET, ApproximateIndex  # noqa: E402
from features.model.heads import exact_top_k  # noqa: E402
from training.benchmark import machine, markdown_table  # noqa: E402

DIM = 384
K = 10


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def timed(search, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """Neighbours of each query, searched one by one, and the milliseconds each took."""
    found, ms = [], []
    for q in queries:
        start = time.perf_counter()
        idx, _ = search(q[None, :], K)
        ms.append(1000 * (time.perf_counter() - start))
        found.append(idx[0])
    return np.array(found), np.array(ms)


def run(size: int, n_queries: int, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    # Tickets cluster by topic: random topic centres, each ticket its centre plus noise (cosine ~0.6 within a topic).
    centres = unit(rng.standard_normal((max(size // 100, 1), DIM)))
    vectors = np.empty((size, DIM), dtype=np.float32)
    for start in range(0, size, 100_000):  # in chunks, to keep the float64 temporaries small
        stop = min(size, start + 100_000)
        topic = rng.integers(0, len(centres), stop - start)
        noise = rng.standard_normal((stop - start, DIM)) / np.sqrt(DIM)
        vectors[start:stop] = unit(centres[topic] + 0.8 * noise)
    origin = rng.choice(size, n_queries, replace=False)
    queries = unit(vectors[origin] + 0.3 * rng.standard_normal((n_queries, DIM)).astype(np.float32) / np.sqrt(DIM))
    exact, exact_ms = timed(lambda q, k: exact_top_k(q, vectors, k), queries)
    started = time.perf_counter()
    ann = ApproximateIndex(vectors)  # on every core, calibrated and checked
    build_s = time.perf_counter() - started
    lists, probe, unfound, calibration_recall = int(ann.index.nlist), ann.probe, ann.unfound, ann.calibration_recall
    graph = ann.to_bytes()  # what training saves in the artefact
    started = time.perf_counter()
    ann = ApproximateIndex(vectors, graph=graph)  # what a server does at load
    restore_s = time.perf_counter() - started
    assert ann.restored
    approx, approx_ms = timed(ann.search, queries)
    recall = float(np.mean([len(set(a) & set(e)) / K for a, e in zip(approx, exact, strict=True)]))
    row = {
        "indexed": size,
        "exact_p50_ms": float(np.percentile(exact_ms, 50)),
        "exact_p95_ms": float(np.percentile(exact_ms, 95)),
        "ann_p50_ms": float(np.percentile(approx_ms, 50)),
        "ann_p95_ms": float(np.percentile(approx_ms, 95)),
        "ann_p99_ms": float(np.percentile(approx_ms, 99)),
        "ann_recall_at_10": recall,
        "ann_build_s": build_s,
        "lists": lists,
        "probe": probe,
        "calibration_recall_at_10": calibration_recall,
        "unfound": unfound,
        "ann_restore_s": restore_s,
        "graph_mb": len(graph) / 2**20,
    }
    print(", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results")
    parser.add_argument("--name", default="similar", help="Results file name (without .md/.json).")
    args = parser.parse_args()
    rows = [run(int(s), args.queries) for s in args.sizes.split(",")]
    meta = {"dim": DIM, "k": K, "queries": args.queries, "machine": machine()}
    args.output.mkdir(parents=True, exist_ok=True)
    cols = [
        ("indexed", "indexed tickets", "{:,}"),
        ("exact_p50_ms", "exact p50 ms", "{:.2f}"),
        ("exact_p95_ms", "exact p95 ms", "{:.2f}"),
        ("ann_p50_ms", "approx. p50 ms", "{:.3f}"),
        ("ann_p95_ms", "approx. p95 ms", "{:.3f}"),
        ("ann_p99_ms", "approx. p99 ms", "{:.3f}"),
        ("ann_recall_at_10", "approx. recall@10", "{:.4f}"),
        ("ann_build_s", "build s (training)", "{:.0f}"),
        ("lists", "lists", "{:,}"),
        ("probe", "probe", "{:,}"),
        ("calibration_recall_at_10", f"calibration recall@10 (target {RECALL_TARGET})", "{:.4f}"),
        ("unfound", "not finding themselves", "{:,}"),
        ("ann_restore_s", "restore s (server load)", "{:.2f}"),
        ("graph_mb", "index MB", "{:.0f}"),
    ]
    table = markdown_table(rows, cols)
    m = meta["machine"]
    (args.output / f"{args.name}.md").write_text(
        "# Similar-ticket lookup\n\n"
        f"Random unit vectors ({DIM} dims) as indexed tickets, clustered by topic (size/100 random centres, cosine "
        f"about 0.6 within a topic); {args.queries} queries, each a stored vector plus noise, "
        f"searched one at a time for the {K} nearest. Exact: one matrix product and a partial sort (numpy). "
        "Approximate: faiss inverted lists (k-means cells, about 4 * sqrt(n)), int8 codes, inner product; a search "
        "scans the `probe` cells nearest the query and re-ranks its 40 best by the exact float cosine; the service "
        "uses it from `ESCALATION_ANN_THRESHOLD` (default 50,000) indexed tickets. Built on every core at training "
        f"(k-means on a sample, then every ticket into its cell), the probe count calibrated on {CALIBRATION_QUERIES} "
        f"stored tickets (the fewest cells at which they find the target recall@10 of {RECALL_TARGET}, counted by "
        "similarity; the recall they found is in the table), checked (every stored vector must find itself), then "
        "saved in the model artefact; a server restores it at load (searched here after the restore). The queries "
        "here are not the calibration's: their recall checks the calibration.\n\n"
        + table
        + f"\n\nMachine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, Python {m['python']}; {m['date']}, "
        f"code {m['code_version']}.\n",
        encoding="utf-8",
    )
    (args.output / f"{args.name}.json").write_text(json.dumps({"rows": rows, **meta}, indent=2), encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
