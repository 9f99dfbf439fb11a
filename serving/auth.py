"""API keys with roles: a keys file holding only SHA-256 hashes, and the FastAPI dependency that checks them.

Roles are ranked: `agent` (suggestions, feedback) < `analyst` (also model info and metrics) < `admin` (also reload).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import tempfile
import threading
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from serving.locks import held

log = logging.getLogger(__name__)

Role = Literal["agent", "analyst", "admin"]
ROLES: tuple[Role, ...] = ("agent", "analyst", "admin")
KEY_PREFIX = "esk_"


class KeysFileError(RuntimeError):
    """The keys file cannot be read or written."""


@dataclass(frozen=True)
class StoredKey:
    id: str
    role: Role
    sha256: str
    created: str
    name: str = ""


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def read_keys(path: str | Path) -> list[StoredKey]:
    """The stored keys; a missing file is no keys, a damaged one is an error that names it."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        keys = [StoredKey(**entry) for entry in data["keys"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise KeysFileError(f"keys file {path} cannot be read: {err}") from err
    for key in keys:
        if key.role not in ROLES:
            raise KeysFileError(f"keys file {path}: key {key.id} has unknown role {key.role!r}")
    return keys


def write_keys(path: str | Path, keys: list[StoredKey]) -> None:
    """Replace the keys file atomically (a crash leaves the old file whole), readable by its owner only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"keys": [asdict(k) for k in keys]}, out, indent=2)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _locked(path: str | Path) -> AbstractContextManager[None]:
    """One read-modify-write of the keys file at a time, across processes (an add never loses a revoke)."""
    return held(Path(f"{path}.lock"))


def add_key(path: str | Path, role: Role, name: str = "") -> tuple[str, StoredKey]:
    """Create a key for `role`: returns the key itself (shown once, never stored) and what was stored."""
    if role not in ROLES:
        raise KeysFileError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    hashed = digest(key)
    stored = StoredKey(hashed[:12], role, hashed, datetime.now(UTC).isoformat(timespec="seconds"), name)
    with _locked(path):
        write_keys(path, [*read_keys(path), stored])
    return key, stored


def revoke_key(path: str | Path, key_id: str) -> StoredKey:
    """Remove the key with this id; the others stay."""
    with _locked(path):
        keys = read_keys(path)
        found = [k for k in keys if k.id == key_id]
        if not found:
            raise KeysFileError(f"no key with id {key_id!r} in {path}")
        write_keys(path, [k for k in keys if k.id != key_id])
    return found[0]


class KeyRing:
    """The keys file as the server sees it: re-read when it changes, so added or revoked keys apply at once."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._keys: list[StoredKey] = []

    def keys(self) -> list[StoredKey]:
        try:
            stat = self.path.stat()
            stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp != self._stamp:
                try:
                    self._keys = read_keys(self.path)
                except KeysFileError as err:  # keep serving the keys read last; say why in the log
                    log.error("%s; keeping the %d keys read before", err, len(self._keys))
                self._stamp = stamp
            return self._keys

    def match(self, presented: str) -> StoredKey | None:
        """The stored key whose hash equals the presented key's, compared in constant time against every key."""
        hashed = digest(presented)
        found = None
        for key in self.keys():
            if hmac.compare_digest(hashed, key.sha256):
                found = key
        return found


bearer = HTTPBearer(auto_error=False, description="An API key from `escalation keys add --role ROLE`.")


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def require(role: Role):  # noqa: ANN201 - a FastAPI dependency factory
    """A dependency that lets through keys of `role` or a higher one (or everyone when auth is disabled)."""
    needed = ROLES.index(role)

    async def check(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> StoredKey | None:
        ring: KeyRing | None = request.app.state.runtime.keyring
        if ring is None:  # ESCALATION_AUTH_DISABLED=1
            return None
        if not ring.keys():
            raise unauthorized("no API keys are configured: add one with `escalation keys add --role ROLE`")
        if credentials is None:
            raise unauthorized("missing API key: send the header 'Authorization: Bearer KEY'")
        key = ring.match(credentials.credentials)
        if key is None:
            raise unauthorized("invalid API key")
        if ROLES.index(key.role) < needed:
            raise HTTPException(403, f"this key has role {key.role!r}; this route needs {role!r}")
        return key

    return check
