"""Follow the registry: when the serving alias moves, load the new version beside the old one and swap.

Requests hold a reference to the model they started with, so a swap never interrupts them; a version that fails
to load or to score a smoke ticket is never swapped in.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from features.settings import Settings
from serving.model_store import LoadedModel, ModelUnavailable, champion_version, load_version, remember_later

log = logging.getLogger(__name__)


@dataclass
class ReloadResult:
    status: str  # 'changed' | 'unchanged' | 'failed'
    version: str | None
    previous_version: str | None
    detail: str | None = None


class ModelWatcher:
    """Checks the alias on demand and every `settings.poll_seconds`, swapping `state.model` when it moved."""

    def __init__(
        self,
        state: Any,
        settings: Settings,
        resolve: Callable[[Settings], str] = champion_version,
        load: Callable[[Settings, str], LoadedModel] = load_version,
    ):
        self.state, self.settings, self.resolve, self.load = state, settings, resolve, load
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None
        self.last_check: datetime | None = None
        self.last_error: str | None = None

    def check(self) -> ReloadResult:
        """Resolve the alias; load and swap in a new version, or keep the current one and say why."""
        with self.lock:
            current: LoadedModel | None = self.state.model
            previous = current.version if current else None
            self.last_check = datetime.now(UTC)
            try:
                version = self.resolve(self.settings)
                if version == previous:
                    self.last_error = None
                    if current is not None and current.source != "registry":  # the cached copy is that version
                        self.state.model, self.state.load_error = replace(current, source="registry"), None
                        log.info("registry reachable again; version %s is current", version)
                    return ReloadResult("unchanged", version, previous)
                new = self.load(self.settings, version)
            except ModelUnavailable as err:
                self.last_error = str(err)
                log.error("keeping version %s: %s", previous, err)
                return ReloadResult("failed", previous, previous, str(err))
            self.state.model, self.state.load_error, self.last_error = new, None, None
            self.state.mark_served()
            log.info("now serving version %s (was %s)", version, previous)
            remember_later(self.settings, new, lambda: self.state.model)
            return ReloadResult("changed", version, previous)

    def _from_cache(self) -> bool:
        model: LoadedModel | None = self.state.model
        return model is not None and model.source != "registry"

    def start(self) -> None:
        """Poll every `poll_seconds`; without polling, retry every `registry_retry_seconds` while serving the
        local cache, until the registry answers."""
        if self.settings.poll_seconds <= 0 and not self._from_cache():
            return
        self.thread = threading.Thread(target=self._poll, name="model-watcher", daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        polling = self.settings.poll_seconds > 0
        interval = self.settings.poll_seconds if polling else self.settings.registry_retry_seconds
        while not self.stopped.wait(interval):
            try:
                self.check()
            except Exception:  # the poller must survive anything and try again next round
                log.exception("registry check failed")
            if not polling and not self._from_cache():
                return

    def stop(self) -> None:
        self.stopped.set()
        if self.thread:
            self.thread.join(timeout=5)
