"""Wall time, phase times and peak memory of `escalation train`, cold (empty embedding cache) and warm (cache filled).

python bench/train.py                                    # generated 1k, 4k, 16k, 64k; plus the IT tickets if present
python bench/train.py --sizes 1000,4000 --set model.encoder=static --name static

Each size is a generated sample export (`escalation sample-data --rows N`, distinct tickets, so the cache cannot
dedupe them). Every run trains into its own throwaway store, as a user's first run and their weekly retrain would.
The growth column divides each step's time by the previous one's over the growth in tickets: near 1 is linear,
well above 1 grows faster than linearly and is flagged. Each run's embedding, fitting and index-building seconds are
read from its MLflow run; the machine's memory in use (total less available, whatever holds it) is sampled beside
the command's own peak. Results go to bench/results/train_NAME.{md,json}.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from harness import ESCALATION, SHARED_IT, environment, parse_sets, save, write_config
from mlflow import MlflowClient
from mlflow.entities import Run

from training.benchmark import markdown_table
from training.sample_data import write_sample

ROOT = Path(__file__).resolve().parents[1]
GB = 2**30
PHASES = ("embed_seconds", "fit_seconds", "graph_seconds")  # what `escalation train` logs to its MLflow run


@dataclass
class Timed:
    """One `escalation train`: wall seconds, peak RSS of the command and its children (MB), the machine's memory in
    use before it and at most while it ran (GB, total less available: other processes included), what it printed."""

    seconds: float
    peak_mb: float
    machine_before_gb: float
    machine_peak_gb: float
    out: str

    def run(self, env: dict[str, str]) -> Run:
        """The MLflow run the command printed the id of, from the store in `env`."""
        found = re.search(r"^run (\w+)$", self.out, re.M)
        if found is None:
            raise SystemExit(f"no run id in the output of escalation train:\n{self.out[-2000:]}")
        return MlflowClient(env["MLFLOW_TRACKING_URI"]).get_run(found.group(1))


def in_use() -> float:
    memory = psutil.virtual_memory()
    return (memory.total - memory.available) / GB


def timed_train(data: Path, config: Path, env: dict[str, str]) -> Timed:
    """Time one `escalation train` and sample its memory and the machine's every 0.2 s."""
    before = in_use()
    started = time.perf_counter()
    process = subprocess.Popen(
        [ESCALATION, "train", "--data", str(data), "--config", str(config), "--no-progress"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    peak, machine_peak = 0.0, before
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak, machine_peak
        parent = psutil.Process(process.pid)
        while not stop.is_set():
            try:
                rss = sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)])
                peak = max(peak, rss / 2**20)
            except psutil.Error:
                pass
            machine_peak = max(machine_peak, in_use())
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, err = process.communicate()
    stop.set()
    watcher.join()
    if process.returncode:
        raise SystemExit(f"escalation train failed on {data}:\n{err.decode()[-2000:]}")
    return Timed(time.perf_counter() - started, peak, before, machine_peak, out.decode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,4000,16000,64000")
    parser.add_argument("--set", action="append", default=[], help="Config override, e.g. model.encoder=static.")
    parser.add_argument("--name", default="growth")
    parser.add_argument("--no-shared", action="store_true", help="Skip the IT tickets even when present.")
    parser.add_argument(
        "--phases",
        default="cold,warm",
        help="'cold,warm', or 'cold' alone (a static encoder "
        "without tuning uses no cache, so its warm run repeats the cold one).",
    )
    args = parser.parse_args()
    overrides = parse_sets(args.set)

    rows = []
    with tempfile.TemporaryDirectory(prefix="train-bench-") as tmp:
        folder = Path(tmp)
        runs: list[tuple[str, int | None, Path, Path]] = []
        for size in (int(s) for s in args.sizes.split(",")):
            data, config = write_sample(folder / f"sample-{size}", rows=size, seed=size)
            runs.append((f"generated {size:,}", size, data, config))
        if SHARED_IT.exists() and not args.no_shared:
            runs.append(("IT tickets 6,807", None, SHARED_IT, ROOT / "bench/configs/shared_it.yaml"))
        for label, size, data, base_config in runs:
            work = folder / label.replace(" ", "-").replace(",", "")
            work.mkdir(parents=True, exist_ok=True)
            config, parsed = write_config(base_config, overrides, work)
            cache = work / "cache" / "embeddings.sqlite"
            row: dict[str, object] = {"data": label, "tickets": size or 6807}
            for phase in args.phases.split(","):
                store = work / phase
                store.mkdir()
                env = environment(store, cache)
                timed = timed_train(data, config, env)
                row[f"{phase}_s"], row[f"{phase}_peak_mb"] = timed.seconds, timed.peak_mb
                row[f"{phase}_machine_before_gb"] = timed.machine_before_gb
                row[f"{phase}_machine_peak_gb"] = timed.machine_peak_gb
                metrics = timed.run(env).data.metrics
                row.update({f"{phase}_{m}": metrics[m] for m in PHASES if m in metrics})
                holdout = next((line for line in timed.out.splitlines() if line.startswith("holdout:")), "")
                row[f"{phase}_holdout"] = holdout  # what the user read: the quality the model was registered with
                print(
                    f"{label} {phase}: {timed.seconds:.1f} s (fitting {metrics.get('fit_seconds', 0):.0f}), peak "
                    f"{timed.peak_mb:.0f} MB, machine {timed.machine_peak_gb:.1f} GB in use at most; {holdout}",
                    flush=True,
                )
            rows.append(row)

    generated = [r for r in rows if str(r["data"]).startswith("generated")]
    for prev, row in zip(generated, generated[1:], strict=False):
        growth = row["tickets"] / prev["tickets"]  # type: ignore[operator]
        for phase in args.phases.split(","):
            ratio = (row[f"{phase}_s"] / prev[f"{phase}_s"]) / growth  # type: ignore[operator]
            row[f"{phase}_growth"] = ratio
            row[f"{phase}_flag"] = "faster than linear" if ratio > 1.3 else ""
    table = markdown_table(
        rows,
        [
            ("data", "data", "{}"),
            ("cold_s", "cold s", "{:.1f}"),
            ("cold_fit_seconds", "cold fitting s", "{:.0f}"),
            ("cold_peak_mb", "cold peak MB", "{:.0f}"),
            ("cold_machine_peak_gb", "cold machine GB in use", "{:.1f}"),
            ("cold_growth", "cold growth vs linear", "{:.2f}"),
            ("warm_s", "warm s", "{:.1f}"),
            ("warm_fit_seconds", "warm fitting s", "{:.0f}"),
            ("warm_peak_mb", "warm peak MB", "{:.0f}"),
            ("warm_machine_peak_gb", "warm machine GB in use", "{:.1f}"),
            ("warm_growth", "warm growth vs linear", "{:.2f}"),
            ("cold_flag", "cold", "{}"),
            ("warm_flag", "warm", "{}"),
        ],
    )
    notes = (
        f"`escalation train` end to end (process start, embedding, fitting, holdout evaluation, MLflow logging and "
        f"registration into a fresh sqlite store). Config overrides `{overrides}`, encoder "
        f"`{parsed.model.encoder}`. Fitting s: the heads' fit as the run logged it (`fit_seconds`; the JSON has "
        "`embed_seconds` and `graph_seconds` too). Peak MB: resident memory of the command and its fitting "
        "processes added up. Machine GB in use: total less available memory at most during the run, other "
        "processes included (the JSON has it before the run too). Growth: (time ratio) / (ticket ratio) against "
        "the previous size; above 1.3 is flagged as faster than linear."
    )
    md = save(f"train_{args.name}", f"Training time: {args.name}", table, notes, {"rows": rows, "overrides": overrides})
    print(table)
    print(notes)
    print(f"written: {md}")


if __name__ == "__main__":
    main()
