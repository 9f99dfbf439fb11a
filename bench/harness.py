"""What the serving and training benchmarks share: the data they read, a trained model, a real server."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from features.config import RouterConfig, load_config  # noqa: E402
from features.data import read_export, to_tickets  # noqa: E402
from training.benchmark import with_overrides  # noqa: E402

SHARED_IT = ROOT.parent / "shared/data/it_tickets/tickets.csv"
RESULTS = ROOT / "bench/results"
ESCALATION = str(Path(sys.executable).with_name("escalation"))


def default_data() -> tuple[Path, Path, str]:
    """The real IT tickets when ../shared/data is there, else the project's sample: (data, config, name)."""
    if SHARED_IT.exists():
        return SHARED_IT, ROOT / "bench/configs/shared_it.yaml", "shared_it"
    sample = ROOT / "data/tickets.csv"
    if not sample.exists():
        subprocess.run([ESCALATION, "sample-data", "--output", str(ROOT / "data")], check=True)
    return sample, ROOT / "data/config.yaml", "sample"


def parse_args(doc: str, add: Callable[[argparse.ArgumentParser], None]) -> tuple[argparse.Namespace, str]:
    """--data, --config, --set and --name (default: the data's name) plus what `add` puts in; (args, name)."""
    data, config, default_name = default_data()
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=data)
    parser.add_argument("--config", type=Path, default=config)
    parser.add_argument("--set", action="append", default=[], help="Config override, e.g. model.encoder=static.")
    parser.add_argument("--name", default=None, help="Results name (default: the data's name).")
    add(parser)
    args = parser.parse_args()
    return args, args.name or (default_name if args.data == data else args.data.stem)


class Poster:
    """POSTs JSON bodies to one path of the server over a keep-alive connection per calling thread."""

    def __init__(self, url: str, path: str, key: str, timeout: float = 300):
        self.host, port = url.removeprefix("http://").split(":")
        self.port, self.path, self.timeout = int(port), path, timeout
        self.headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        self._local = threading.local()

    def __call__(self, body: bytes) -> int:
        """The response's status (its body is read and dropped)."""
        return self.send(body)[0]

    def send(self, body: bytes, path: str | None = None) -> tuple[int, bytes]:
        """POST `body` to `path` (default: this poster's path); the response's status and body."""
        if not hasattr(self._local, "conn"):
            self._local.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        self._local.conn.request("POST", path or self.path, body, self.headers)
        response = self._local.conn.getresponse()
        self._local.timing = response.getheader("Server-Timing")
        return response.status, response.read()

    @property
    def timing(self) -> str | None:
        """The Server-Timing header of this thread's last response."""
        return getattr(self._local, "timing", None)


def parse_sets(pairs: list[str]) -> dict[str, str]:
    """`--set model.encoder=static` pairs as a dict of dotted config keys."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set {pair!r}: expected key=value")
        out[key] = value
    return out


def write_config(config_path: Path, overrides: dict[str, str], folder: Path) -> tuple[Path, RouterConfig]:
    """The config with overrides applied, written as YAML in `folder`."""
    config = with_overrides(load_config(config_path), overrides)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
    return path, config


def tickets_of(data: Path, config: RouterConfig, n: int, seed: int = 0) -> pd.DataFrame:
    """`n` tickets drawn from the export (with replacement when it has fewer), in the router's canonical form."""
    tickets = to_tickets(read_export(data), config, with_target=False)
    tickets = tickets[tickets["text"].str.strip() != ""].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(tickets), size=n, replace=n > len(tickets))
    return tickets.iloc[rows].reset_index(drop=True)


def payload(ticket: pd.Series, metadata: list[str], i: int) -> dict[str, Any]:
    """One ticket as the API takes it, with an id so the suggestion is recorded as in production."""
    return {
        "id": f"bench-{i}",
        "body": str(ticket["text"]),
        "metadata": {m: str(ticket[m]) for m in metadata if m in ticket.index and str(ticket[m])},
    }


def environment(folder: Path, cache: Path | None = None) -> dict[str, str]:
    """Settings that point the CLI and the server at a throwaway store in `folder`, with an analyst key in
    ESCALATION_BENCH_KEY (the server checks keys as in production)."""
    from serving.auth import add_key

    key, _ = add_key(folder / "keys.json", "analyst", "benchmark")
    env = dict(os.environ)
    env.update(
        ESCALATION_KEYS_FILE=str(folder / "keys.json"),
        ESCALATION_BENCH_KEY=key,
        MLFLOW_TRACKING_URI=f"sqlite:///{folder / 'mlflow.db'}",
        ESCALATION_FEEDBACK_URL=f"sqlite:///{folder / 'feedback.db'}",
        ESCALATION_EMBEDDING_CACHE=str(cache or ROOT / ".cache/embeddings.sqlite"),
        ESCALATION_POLL_SECONDS="0",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


def trained_store(args: Any, folder: Path) -> tuple[Path, RouterConfig, dict[str, str]]:
    """The config with `--set` overrides written to `folder`, a model trained on `--data` into a store there,
    and the environment that points the CLI and the server at it."""
    config_file, config = write_config(args.config, parse_sets(args.set), folder)
    env = environment(folder)
    print(f"training on {args.data} ({config.model.encoder} encoder) ...", flush=True)
    seconds = train_model(args.data, config_file, env)
    print(f"trained in {seconds:.0f} s", flush=True)
    return config_file, config, env


def train_model(data: Path, config: Path, env: dict[str, str]) -> float:
    """`escalation train` into the throwaway store; returns its wall time."""
    started = time.perf_counter()
    subprocess.run(
        [ESCALATION, "train", "--data", str(data), "--config", str(config), "--no-progress"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    key: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> Any:
        """GET `path` with the benchmark's key; the JSON answer."""
        request = urllib.request.Request(f"{self.url}{path}", headers={"Authorization": f"Bearer {self.key}"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            return json.load(answer)

    def rss_mb(self) -> tuple[float, float]:
        """(current, peak) resident memory of the server process in MB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text().splitlines()
        value = {line.split(":")[0]: int(line.split()[1]) for line in status if line.startswith(("VmRSS", "VmHWM"))}
        return value["VmRSS"] / 1024, value["VmHWM"] / 1024


@contextmanager
def serve(env: dict[str, str], log: Path, timeout: float = 300) -> Any:
    """`escalation serve` on a free loopback port, ready (model loaded) before this yields; stopped after."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [ESCALATION, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=out, stderr=out
        )
    server = Server(process, port, env["ESCALATION_BENCH_KEY"])
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise SystemExit(f"server exited with {process.returncode}; see {log}")
            try:
                with urllib.request.urlopen(f"{server.url}/readyz", timeout=2) as r:
                    if json.load(r).get("status") == "ready":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"server not ready after {timeout} s; see {log}")
            time.sleep(0.5)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {f"p{q}": round(float(np.percentile(a, q)), 2) for q in (50, 95, 99)}


def save(name: str, title: str, table: str, notes: str, data: dict[str, Any]) -> Path:
    """bench/results/NAME.md (table, notes, machine) and NAME.json."""
    from training.benchmark import machine

    m = machine()
    RESULTS.mkdir(parents=True, exist_ok=True)
    md = RESULTS / f"{name}.md"
    md.write_text(
        f"# {title}\n\n{table}\n\n{notes}\n\nMachine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, "
        f"Python {m['python']}; {m['date']}, code {m['code_version']}.\n",
        encoding="utf-8",
    )
    (RESULTS / f"{name}.json").write_text(json.dumps({**data, "machine": m}, indent=2), encoding="utf-8")
    return md
