"""Watching the service run: Prometheus metrics, a request id on every request and its log lines, JSON logs."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from features.model.results import Suggestion
from features.model.timing import Stages

log = logging.getLogger("escalation.access")
errors = logging.getLogger("serving.errors")
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_GOOD_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
BUCKETS = (0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0)


MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"  # set (before any worker starts) by `escalation serve --workers N`


def multiprocess() -> bool:
    """Whether this process is one of several workers behind one port: prometheus_client then keeps every value in
    files in that folder, and /metrics adds up all workers' files."""
    return bool(os.environ.get(MULTIPROCESS_ENV))


class Metrics:
    """The service's Prometheus metrics, in a registry of its own (one per app). Behind `--workers N` each worker
    counts into shared files and /metrics reports the sum (gauges: the sum or the highest of the live workers)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._served: set[tuple[str, str, str]] = set()
        r = self.registry
        self.requests = Counter(
            "escalation_http_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "escalation_http_request_duration_seconds",
            "Time to answer, by route, method and status.",
            ["route", "method", "status"],
            buckets=BUCKETS,
            registry=r,
        )
        self.model = Gauge(
            "escalation_model_info",
            "The model version served (1 for the one loaded).",
            ["name", "version", "alias"],
            registry=r,
            multiprocess_mode="livemax",  # 1 for each version some live worker serves
        )
        self.in_flight = Gauge(
            "escalation_http_requests_in_flight",
            "Requests being answered now.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.stages = Histogram(
            "escalation_stage_duration_seconds",
            "Time per stage of a suggestion request (features/model/timing.py); a batched stage counts the whole "
            "shared call each request waited for.",
            ["route", "stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.decisions = Counter("escalation_decisions", "Escalation decisions given.", ["decision"], registry=r)
        self.routing = Counter("escalation_routing", "Routing decisions given.", ["decision"], registry=r)
        # knowing when the model no longer fits (docs/alerts.yml): what it sees, predicts, and what really happened
        self.familiarity = Counter(
            "escalation_answers_by_familiarity",
            "Answers by whether the ticket was unlike the training tickets (unfamiliar true/false).",
            ["unfamiliar"],
            registry=r,
        )
        self.predicted = Counter(
            "escalation_predicted_probability",
            "Sum of P(escalation) over answers: divided by answers, the predicted escalation rate.",
            registry=r,
        )
        self.outcomes = Counter(
            "escalation_outcomes",
            "Outcomes recorded (agents' feedback and helpdesk outcomes): escalated or not, the target, and whether "
            "the suggestion was accepted.",
            ["escalated", "target", "accepted"],
            registry=r,
        )
        self.feedback_failures = Counter(
            "escalation_feedback_write_failures", "Feedback that could not be stored (answered 503).", registry=r
        )
        self.record_failures = Counter(
            "escalation_suggestion_record_failures", "Suggestions whose record could not be written.", registry=r
        )

    def served(self, name: str | None, version: str | None, alias: str | None) -> None:
        """Mark the version served as 1 and any earlier one 0 (set, not removed: a worker's file keeps its labels)."""
        now = (str(name), str(version), str(alias))
        for old in self._served - {now}:
            self.model.labels(*old).set(0)
        self._served = {now} if version is not None else set()
        if version is not None:
            self.model.labels(*now).set(1)

    def exposition(self) -> tuple[bytes, str]:
        """The text /metrics answers: this app's registry, or every worker's values behind `--workers N`."""
        if not multiprocess():
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client import multiprocess as shared

        everyone = CollectorRegistry()
        shared.MultiProcessCollector(everyone)
        return generate_latest(everyone), CONTENT_TYPE_LATEST

    def timed(self, stages: Stages, route: str) -> None:
        """Each stage's seconds of one answered request (a batched stage: the shared call it waited for)."""
        for name, seconds in stages.seconds.items():
            self.stages.labels(route, name).observe(seconds)

    def answered(self, results: list[Suggestion]) -> None:
        for r in results:
            self.decisions.labels(r.escalation.decision).inc()
            self.routing.labels(r.routing.decision).inc()
            self.predicted.inc(r.escalation.probability)
            if r.familiarity is not None:
                self.familiarity.labels(str(r.familiarity.unfamiliar).lower()).inc()

    def outcome(self, escalated: bool, target: str | None, accepted: bool, known: set[str] | None) -> None:
        """One recorded outcome; a target the model does not know is counted as `unknown` (bounded labels)."""
        name = "" if target is None else target if known is None or target in known else "unknown"
        self.outcomes.labels(str(escalated).lower(), name, str(accepted).lower()).inc()


class RequestContext:
    """ASGI middleware: a request id (the caller's `X-Request-ID` when well-formed, else a new one) for the log
    lines of the request and its response header; one access log line and the request metrics per request."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _GOOD_ID.fullmatch(given) else uuid.uuid4().hex
        token = request_id.set(rid)
        started = time.perf_counter()
        status, responded = 500, False
        self.metrics.in_flight.inc()

        async def send_with_id(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Answered here, inside the request's context: the 500 carries its request id, and so does the log line.
            errors.exception("unhandled error on %s %s", scope["method"], scope.get("path", ""))
            if responded:
                raise
            status = 500
            body = b'{"detail":"internal error; see the service log"}'
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send_with_id({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        finally:
            self.metrics.in_flight.dec()
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"  # the template: no ids in labels
            method = scope["method"]
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route, method, str(status)).observe(seconds)
            log.info(
                "%s %s %d %.1f ms",
                method,
                route,
                status,
                seconds * 1000,
                extra={"route": route, "method": method, "status": status, "duration_ms": round(seconds * 1000, 2)},
            )
            request_id.reset(token)


_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request id, and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id.get(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def use_json_logs(level: int = logging.INFO) -> None:
    """Route every logger (uvicorn's too) through one JSON handler on stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def configure_logging(log_format: str, level: str) -> None:
    """JSON lines or plain text at `level`, as the settings ask, in this process (each worker sets its own)."""
    if log_format == "json":
        use_json_logs(logging.getLevelName(level))
    else:
        logging.getLogger().setLevel(level)


def shared_metrics_folder() -> str:
    """The folder workers count into (the environment's, else a new one), emptied: counts start at zero with the
    service, as a single process's do."""
    import tempfile
    from pathlib import Path

    folder = os.environ.get(MULTIPROCESS_ENV) or tempfile.mkdtemp(prefix="escalation-metrics-")
    Path(folder).mkdir(parents=True, exist_ok=True)
    for stale in Path(folder).glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROCESS_ENV] = folder  # inherited by the workers, read by prometheus_client as they import it
    return folder
