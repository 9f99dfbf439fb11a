"""Batch scoring at scale: one process against Ray started on this machine, on the same generated backlog.

python bench/scale.py                    # 200,000 generated tickets (about 20 minutes each way on 2 cores)
python bench/scale.py --tickets 10000    # a quicker look

Trains a model on the sample generator's tickets into a throwaway store, writes a backlog of `--tickets` generated
tickets as Parquet, scores it with `escalation predict` (one process) and with `escalation predict --engine ray`
(Ray local, `--actors`), and reports tickets per second for each, their ratio, the peak memory of each command and
of the largest actor (polled from /proc while it runs), and from the measured
rate per core how long 10M tickets would take on 8, 32 and 128 cores. Results go to bench/results/scale_NAME.{md,json}.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from harness import ESCALATION, ROOT, environment, save

from serving.predict import answers_in
from training.sample_data import generate, write_sample


def peak_mb(pid: int) -> float:
    """The peak resident memory of a live process so far (VmHWM), in MB; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Peaks:
    """Polls the peak memory of the command (the driver) and of every Ray actor scoring for it, while it runs."""

    def __init__(self, driver: int):
        self.driver, self.peaks, self.stop = driver, {}, threading.Event()  # type: ignore[var-annotated]
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        while not self.stop.wait(0.5):
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    title = (proc / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
                except OSError:
                    continue
                if int(proc.name) == self.driver or (title.startswith("ray::") and "MapWorker" in title):
                    key = "driver" if int(proc.name) == self.driver else proc.name
                    self.peaks[key] = max(self.peaks.get(key, 0.0), peak_mb(int(proc.name)))

    def close(self) -> tuple[float, float]:
        """(driver peak MB, largest actor peak MB)."""
        self.stop.set()
        self.thread.join()
        actors = [v for k, v in self.peaks.items() if k != "driver"]
        return self.peaks.get("driver", 0.0), max(actors, default=0.0)


def run(args: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Wall seconds of the command, its peak memory and its largest actor's (MB)."""
    started = time.perf_counter()
    process = subprocess.Popen([ESCALATION, *args], env=env, stdout=subprocess.DEVNULL)
    peaks = Peaks(process.pid)
    if process.wait() != 0:
        raise SystemExit(f"escalation {args[0]} failed")
    seconds = time.perf_counter() - started
    return (seconds, *peaks.close())


def compare(one: list[dict], other: list[dict]) -> dict[str, object]:
    """How two runs' answers agree: ids and every decision exactly; probabilities (written rounded to 4 decimals,
    so a float difference far below 1e-6 can still move the last digit) by their largest difference; the similar
    tickets shown (near ties can swap) by the answers whose lists differ."""

    def decisions(a: dict) -> tuple:
        return (
            a["id"],
            a["escalation"]["decision"],
            a["routing"]["decision"],
            a["routing"]["target"],
            tuple(s["target"] for s in a["suggestions"]),
        )

    def probabilities(a: dict) -> list[float]:
        return [a["escalation"]["probability"], *(s["probability"] for s in a["suggestions"])]

    pairs = list(zip(one, other, strict=False))
    same_decisions = len(one) == len(other) and all(decisions(a) == decisions(b) for a, b in pairs)
    gaps = [abs(x - y) for a, b in pairs for x, y in zip(probabilities(a), probabilities(b), strict=False)]
    moved = sum(g > 1e-6 for g in gaps)
    similar = sum(
        [t["id"] for t in a["explanation"]["similar_tickets"]] != [t["id"] for t in b["explanation"]["similar_tickets"]]
        for a, b in pairs
    )
    return {
        "same_answers": same_decisions and not moved and not similar,
        "same_ids_and_decisions": same_decisions,
        "probabilities_compared": len(gaps),
        "probabilities_differing": moved,
        "largest_probability_difference": max(gaps, default=0.0),
        "similar_lists_differing": similar,
    }


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
        single, single_mb, _ = run([*common, "--output", str(folder / "one.jsonl")], env)
        ray, driver_mb, actor_mb = run(
            [*common, "--output", str(folder / "ray.jsonl"), "--engine", "ray", "--actors", str(args.actors)], env
        )
        agreement = compare(answers_in(folder / "one.jsonl"), answers_in(folder / "ray.jsonl"))
    cores = os.cpu_count() or 1
    rate_one, rate_ray = args.tickets / single, args.tickets / ray
    per_core = rate_ray / cores
    row = {
        "tickets": args.tickets,
        "single_per_s": round(rate_one, 1),
        "ray_per_s": round(rate_ray, 1),
        "ratio": round(rate_ray / rate_one, 3),
        **agreement,
        "cores": cores,
        "actors": args.actors,
        "single_peak_mb": round(single_mb),
        "ray_driver_peak_mb": round(driver_mb),
        "actor_peak_mb": round(actor_mb),
        "hours_10m": {n: round(10_000_000 / (per_core * n) / 3600, 2) for n in (8, 32, 128)},
    }
    table = (
        "| tickets | one process /s | Ray local /s | ratio | same answers | peak MB: one process / Ray driver / "
        "each actor | 10M on 8 / 32 / 128 cores (h) |\n"
    )
    table += "|---|---|---|---|---|---|---|\n"
    hours = row["hours_10m"]
    table += (
        f"| {args.tickets} | {row['single_per_s']} | {row['ray_per_s']} | {row['ratio']} | {row['same_answers']} | "
        f"{row['single_peak_mb']} / {row['ray_driver_peak_mb']} / {row['actor_peak_mb']} | "
        f"{hours[8]} / {hours[32]} / {hours[128]} |\n"
    )
    notes = (
        f"Generated sample tickets (seed 99) as one Parquet file; a model trained on 3,000 sample tickets (ONNX "
        f"encoder). Wall time of the whole `escalation predict` command each way, start-up included; Ray local with "
        f"{args.actors} actors on {cores} cores. The 10M estimate scales the Ray rate per core linearly (no network or "
        f"storage limits assumed). Agreement: ids and decisions "
        f"{'identical' if row['same_ids_and_decisions'] else 'NOT identical'}; "
        f"{row['probabilities_differing']:,} of {row['probabilities_compared']:,} written probabilities differ "
        f"(largest difference {row['largest_probability_difference']:.4f}; they are written to 4 decimals); the "
        f"similar tickets shown differ in {row['similar_lists_differing']:,} answers."
    )
    print(table + "\n" + notes)
    save(f"scale_{name}", "Batch scoring at scale", table, notes, {"rows": [row]})


if __name__ == "__main__":
    assert ROOT.is_dir()
    main()
