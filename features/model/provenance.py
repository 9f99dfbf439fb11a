"""Which tickets a model trained on and held out, kept as 64-bit hashes in the model: a later run scores the
champion only on tickets it never trained on, and keeps holding out what it held out."""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import blake2b

import numpy as np
import pandas as pd

from features.text.clean import CLEANING_VERSION

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def hashes(values: list[str], prefix: str) -> np.ndarray:
    """uint64 hash of each value (blake2b, 8 bytes), the same on every machine and Python process."""
    return np.fromiter(
        (int.from_bytes(blake2b((prefix + v).encode(), digest_size=8).digest(), "little") for v in values),
        dtype=np.uint64,
        count=len(values),
    )


@dataclass(frozen=True)
class TicketKeys:
    """Per ticket: the hash of its id (0 where the export names no id column or the id is blank) and of its
    cleaned text."""

    ids: np.ndarray  # uint64
    texts: np.ndarray  # uint64

    @classmethod
    def of(cls, tickets: pd.DataFrame, by_id: bool) -> TicketKeys:
        texts = hashes(tickets["text"].to_numpy(dtype=str).tolist(), "text:")
        if not by_id:
            return cls(np.zeros(len(tickets), dtype=np.uint64), texts)
        raw = [str(v).strip() for v in tickets["id"].to_numpy(dtype=object)]
        ids = np.where([bool(v) for v in raw], hashes(raw, "id:"), np.uint64(0)).astype(np.uint64)
        return cls(ids, texts)

    @property
    def split(self) -> np.ndarray:
        """What decides a ticket's side: its id, or its text where it has none."""
        return np.where(self.ids != 0, self.ids, self.texts)

    @property
    def by_id(self) -> bool:
        return bool((self.ids != 0).any())

    def take(self, rows: np.ndarray) -> TicketKeys:
        return TicketKeys(self.ids[rows], self.texts[rows])


def uniform(keys: np.ndarray, seed: int) -> np.ndarray:
    """A number in [0, 1) per key, a fixed function of the key and the seed (splitmix64 of their mix)."""
    with np.errstate(over="ignore"):
        z = (keys.astype(np.uint64) ^ (np.uint64(seed & 0xFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15))) & _MASK
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


@dataclass(frozen=True)
class Provenance:
    """The tickets a model trained on and held out, as sorted unique hashes, with how its holdout was drawn and
    which cleaning made the texts it hashed."""

    how: str  # "by ticket id", "by ticket text" or "newest"
    seed: int
    fraction: float
    trained_ids: np.ndarray  # hashes of the training tickets' ids (empty without ids)
    trained_texts: np.ndarray  # hashes of their cleaned texts
    held_out: np.ndarray  # split keys of the holdout tickets (TicketKeys.split)
    cleaning: str = CLEANING_VERSION

    @classmethod
    def of(cls, keys: TicketKeys, train: np.ndarray, holdout: np.ndarray, how: str, seed: int, fraction: float):  # type: ignore[no-untyped-def]
        trained = keys.take(train)
        return cls(
            how,
            seed,
            fraction,
            np.unique(trained.ids[trained.ids != 0]),
            np.unique(trained.texts),
            np.unique(keys.take(holdout).split),
        )

    @property
    def comparable(self) -> bool:
        """Whether today's cleaned texts hash as the ones recorded (the same cleaning made both)."""
        return self.cleaning == CLEANING_VERSION

    def trained_on(self, keys: TicketKeys) -> np.ndarray:
        """Per ticket: True where this model trained on it or on a word-for-word copy of it (the same id, or the
        same cleaned text): its neighbour vote would see such a ticket at similarity 1.0. An id renumbered by the
        export is still caught by its text."""
        by_id = (keys.ids != 0) & np.isin(keys.ids, self.trained_ids)
        return by_id | np.isin(keys.texts, self.trained_texts)

    def pinned(self, keys: TicketKeys, how: str, seed: int, fraction: float) -> np.ndarray:
        """Per ticket: True where this model held it out and a split drawn the same way must hold it out again."""
        same = (self.how, self.seed, self.fraction) == (how, seed, fraction) and self.comparable
        if not same or how == "newest":
            return np.zeros(len(keys.ids), dtype=bool)
        return np.isin(keys.split, self.held_out)
