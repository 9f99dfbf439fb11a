"""Ray, shared by batch scoring and training: joining a cluster (or starting Ray here), the share of cores each
actor asks for, and the one line that says what went wrong inside it."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any


class ClusterUnavailable(RuntimeError):
    """The Ray cluster named by --address did not answer (or Ray is not installed)."""


@dataclass(frozen=True)
class RayEngine:
    """Where and how wide work runs on Ray: `address` None starts Ray on this machine."""

    address: str | None = None
    actors: int = 2
    batch_size: int = 256


def connect(address: str | None) -> None:
    """Join the cluster at `address` (`auto`, `ray://HOST:PORT`), or start Ray on this machine."""
    try:
        import ray
    except ImportError:
        raise ClusterUnavailable("the Ray engine needs the ray extra: pip install 'escalation-router[ray]'") from None
    if ray.is_initialized():
        return
    reachable(address)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    except Exception as err:  # Ray raises ConnectionError, RuntimeError, ...: all mean no cluster to use
        first = str(err).strip().splitlines()[0] if str(err).strip() else err.__class__.__name__
        raise ClusterUnavailable(f"Ray cluster at {address or 'this machine'} did not answer: {first}") from None


def reachable(address: str | None, timeout: float = 5.0) -> None:
    """Fail fast when a `HOST:PORT` or `ray://HOST:PORT` address does not accept connections: Ray itself retries
    an unreachable head for minutes."""
    if not address or address == "auto":
        return
    hostport = address.removeprefix("ray://").split("/")[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterUnavailable(f"--address {address!r}: use 'auto', HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise ClusterUnavailable(f"Ray cluster at {address} did not answer: {err.strerror or err}") from None


def actor_cpus(actors: int) -> tuple[float, int]:
    """(CPUs each of `actors` asks Ray for, threads it computes with). Together they leave one core free for
    reading and writing: actors holding every core would starve Ray Data's read tasks (it waits for them forever)."""
    import ray

    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    per_actor = max(0.25, min(1.0, (cpus - 1.0) / actors))
    return per_actor, max(1, int(per_actor))


def share_cores(encoder: Any, threads: int) -> bool:
    """Limit an actor's encoder to its share of the cores (`threads`), not every core for each actor; False when
    the encoder has no such setting."""
    use_threads = getattr(encoder, "use_threads", None)
    if use_threads is None:
        return False
    use_threads(threads)
    return True


def innermost(err: BaseException) -> BaseException:
    """The exception a worker raised, under Ray's wrapping (a task error's `cause`, Ray Data's `__cause__`)."""
    cause = err
    while (inner := getattr(cause, "cause", None) or cause.__cause__) is not None and inner is not cause:
        cause = inner
    return cause


def reason(err: BaseException) -> str:
    """The first line of what went wrong inside Ray (the cause a worker raised, not Ray's wrapping)."""
    text = str(innermost(err))
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith(("Traceback", "  "))]
    return lines[-1][:500] if lines else err.__class__.__name__
