"""What one app holds while it runs, typed: nothing here is shared with another app in the same process."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from features.settings import Settings
from features.text.privacy import Masker
from serving.auth import KeyRing
from serving.feedback_store import FeedbackStore, StoreUnavailable
from serving.model_store import LoadedModel
from serving.observe import Metrics

if TYPE_CHECKING:
    from serving.batcher import MicroBatcher
    from serving.hooks.connectors import Connector
    from serving.hooks.worker import HookWorker
    from serving.recorder import SuggestionRecorder
    from serving.watcher import ModelWatcher

log = logging.getLogger(__name__)
NO_STORE = "feedback store unavailable; retry later"


class StoreDown(Exception):
    """The feedback store cannot be reached now; ask again after `retry_after` seconds."""

    def __init__(self, retry_after: int):
        super().__init__(NO_STORE)
        self.retry_after = retry_after


@dataclass
class StoreHandle:
    """The suggestions and feedback store, opened on first use, so a database that comes back is picked up.

    After a failed open, callers get `StoreDown` for `retry_after` seconds instead of each paying a connection
    timeout. The recorder's thread and request threads may both open it first: the lock is this app's own.
    """

    url: str
    retry_after: int
    _store: FeedbackStore | None = None
    _retry_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def get(self) -> FeedbackStore:
        with self._lock:
            if self._store is None:
                if time.monotonic() < self._retry_at:
                    raise StoreDown(self.retry_after)
                try:
                    self._store = FeedbackStore(self.url)
                except StoreUnavailable as err:
                    self._retry_at = time.monotonic() + self.retry_after
                    log.error("%s", err)
                    raise StoreDown(self.retry_after) from None
            return self._store


@dataclass
class AppState:
    """The app's settings, the model served (None until one loads) and the services around it."""

    settings: Settings
    masker: Masker
    metrics: Metrics
    keyring: KeyRing | None
    store: StoreHandle
    model: LoadedModel | None = None
    load_error: str | None = None
    watcher: ModelWatcher | None = None
    batcher: MicroBatcher | None = None
    recorder: SuggestionRecorder | None = None
    blas_limit: Any = None  # threadpoolctl's limiter, restored at shutdown
    hooks: dict[str, Connector] | None = None  # the helpdesk connectors configured
    hook_worker: HookWorker | None = None

    def mark_served(self) -> None:
        """Show the version served in /metrics (each worker marks its own)."""
        model = self.model
        self.metrics.served(*((model.name, model.version, model.alias) if model else (None, None, None)))

    def known_targets(self) -> set[str] | None:
        """Every target feedback may name for the model served (None without a model: nothing is flagged)."""
        if self.model is None:
            return None
        router = self.model.router
        return set(router.targets) | set(router.first_line) | set(router.pooled) | {r.target for r in router.rules}
