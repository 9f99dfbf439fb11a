"""Batch scoring at scale: one process against Ray started on this machine, on the same generated backlog.

python bench/scale.py                    # 200,000 generated tickets (about an hour each way on 2 cores)
python bench/scale.py --tickets 10000    # a quicker look

Trains a model on the sample generator's tickets into a throwaway store, writes a backlog of `--tickets` generated
tickets as Parquet, scores it with `escalation predict` (one process) and with `escalation predict --engine ray`
(Ray local, `--actors`), and reports tickets per second for each, their ratio, and from the measured
rate per core how long 10M tickets would take on 8, 32 and 128 cores. Results go to bench/results/scale_NAME.{md,json}.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from harness import ESCALATION, ROOT, environment, save

from serving.predict import answers_in
from training.sample_data import generate, write_sample


def run(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([ESCALATION, *args], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=200_000)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--name", default=None)
    args = parser.parse_args()
    name = args.name or f"{args.tickets // 1000}k"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data, config = write_sample(folder / "train", rows=3000, seed=7)
        env = environment(folder)
        env["TOKENIZERS_PARALLELISM"] = "false"
        run(["train", "--data", str(data), "--config", str(config), "--no-progress"], env)
        backlog = folder / "backlog.parquet"
        frame = generate(args.tickets, seed=99)
        frame["ticket_id"] = [f"B-{i}" for i in range(len(frame))]  # unique ids across the whole backlog
        frame.astype(str).to_parquet(backlog, index=False)
        common = ["predict", "--data", str(backlog), "--config", str(config), "--no-progress"]
        single = run([*common, "--output", str(folder / "one.jsonl")], env)
        ray = run(
            [*common, "--output", str(folder / "ray.jsonl"), "--engine", "ray", "--actors", str(args.actors)], env
        )
        one, other = answers_in(folder / "one.jsonl"), answers_in(folder / "ray.jsonl")
        same = [a["id"] for a in one] == [a["id"] for a in other] and all(
            abs(a["escalation"]["probability"] - b["escalation"]["probability"]) <= 1e-6
            for a, b in zip(one, other, strict=True)
        )
    cores = os.cpu_count() or 1
    rate_one, rate_ray = args.tickets / single, args.tickets / ray
    per_core = rate_ray / cores
    row = {
        "tickets": args.tickets,
        "single_per_s": round(rate_one, 1),
        "ray_per_s": round(rate_ray, 1),
        "ratio": round(rate_ray / rate_one, 3),
        "same_answers": same,
        "cores": cores,
        "actors": args.actors,
        "hours_10m": {n: round(10_000_000 / (per_core * n) / 3600, 2) for n in (8, 32, 128)},
    }
    table = "| tickets | one process /s | Ray local /s | ratio | same answers | 10M on 8 / 32 / 128 cores (h) |\n"
    table += "|---|---|---|---|---|---|\n"
    hours = row["hours_10m"]
    table += (
        f"| {args.tickets} | {row['single_per_s']} | {row['ray_per_s']} | {row['ratio']} | {same} | "
        f"{hours[8]} / {hours[32]} / {hours[128]} |\n"
    )
    notes = (
        f"Generated sample tickets (seed 99) as one Parquet file; a model trained on 3,000 sample tickets (ONNX "
        f"encoder). Wall time of the whole `escalation predict` command each way, start-up included; Ray local with "
        f"{args.actors} actors on {cores} cores. The 10M estimate scales the Ray rate per core linearly (no network or "
        f"storage limits assumed)."
    )
    print(table + "\n" + notes)
    save(f"scale_{name}", "Batch scoring at scale", table, notes, {"rows": [row]})


if __name__ == "__main__":
    assert ROOT.is_dir()
    main()
