"""Where an answer's time goes: seconds per named stage, for /metrics and the Server-Timing header.

Code that does a stage's work wraps it in `stage(name)`; the seconds go to the `Stages` the current context is
timing (`timing(...)`), and nowhere when none is (training, batch scoring), at the cost of one lookup. A batched
stage (the encoder's call for every ticket that shared it) reports the whole call's time: what each request in the
batch waited for.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager

# in the order a request meets them
STAGES = (
    "queue",  # waiting for the micro-batcher's worker
    "tokenise",
    "encode",  # the transformer (with its tokenisation where the runtime does both, as PyTorch's does)
    "lexical",  # TF-IDF words and characters, metadata, the combined feature row
    "neighbours",  # the similar-ticket search, re-ranking, the neighbours' vote
    "heads",  # escalation and target heads, calibration
    "explanation",  # key terms, similar tickets shown, rules
    "handoff",
    "present",  # the answer as the API shapes it, masked
    "serialise",  # the JSON body
)


class Stages:
    """Seconds per stage, added up over the calls a request made or waited for."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def merge(self, other: Stages) -> None:
        for name, seconds in other.seconds.items():
            self.add(name, seconds)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def header(self) -> str:
        """The Server-Timing header's value: `stage;dur=ms` in the order of STAGES, others after."""
        order = [s for s in STAGES if s in self.seconds] + [s for s in self.seconds if s not in STAGES]
        return ", ".join(f"{name};dur={1000 * self.seconds[name]:.2f}" for name in order)


def parse_header(header: str | None) -> dict[str, float]:
    """A Server-Timing header as `Stages.header` writes it, back to {stage: ms} (what a client reads of it)."""
    found = {}
    for part in (header or "").split(","):
        name, _, dur = part.strip().partition(";dur=")
        if name and dur:
            found[name] = float(dur)
    return found


_current: contextvars.ContextVar[Stages | None] = contextvars.ContextVar("escalation_stages", default=None)


@contextmanager
def timing(stages: Stages | None) -> Iterator[Stages | None]:
    """Time the stages run in this context (this thread) into `stages` until the block ends."""
    token = _current.set(stages)
    try:
        yield stages
    finally:
        _current.reset(token)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Count the block's time as `name` in the stages being timed, if any."""
    stages = _current.get()
    if stages is None:
        yield
        return
    with stages(name):
        yield
