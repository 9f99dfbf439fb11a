"""Encoders that ship in packages: a model split across packages is joined once, checked, and loads offline."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from features.encoders.bundled import READY, BundledModelError, _sha256, assemble, mpnet_parts
from features.encoders.transformer import embed_texts, resolve_model


def _split_model(tmp_path: Path, parts: int = 3) -> list[Path]:
    """The bundled MiniLM folder zipped under one top folder (as the mpnet parts hold it) and cut into pieces."""
    source = Path(resolve_model("sentence-transformers/all-MiniLM-L6-v2")[0])
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as out:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                out.write(path, f"all-MiniLM-L6-v2/{path.relative_to(source)}")
        out.writestr("all-MiniLM-L6-v2/desktop.ini", "[.ShellClassInfo]")
    data = archive.read_bytes()
    size = len(data) // parts + 1
    pieces = []
    for i in range(parts):
        piece = tmp_path / f"model.zip.00{i + 1}"
        piece.write_bytes(data[i * size : (i + 1) * size])
        pieces.append(piece)
    return pieces


def test_split_model_is_joined_once_and_loads(tmp_path: Path) -> None:
    pieces = _split_model(tmp_path)
    weights = Path(resolve_model("all-MiniLM-L6-v2")[0]) / "model.safetensors"
    target = assemble(pieces, tmp_path / "cache" / "minilm", {"model.safetensors": _sha256(weights)})
    assert (target / READY).is_file() and not (target / "desktop.ini").exists()
    assert [p.name for p in target.parent.iterdir()] == ["minilm"]  # no work folder left behind
    texts = ["I was charged twice", "VPN certificate expired"]
    same = embed_texts(texts, str(target), 128) @ embed_texts(texts, "all-MiniLM-L6-v2", 128).T
    assert np.allclose(np.diag(same), 1.0, atol=1e-5)
    for piece in pieces:
        piece.unlink()
    assert assemble(pieces, target) == target  # assembled once: the parts are not read again


def test_wrong_checksum_or_missing_part_is_refused(tmp_path: Path) -> None:
    pieces = _split_model(tmp_path)
    with pytest.raises(BundledModelError, match="model.safetensors of the assembled model"):
        assemble(pieces, tmp_path / "bad", {"model.safetensors": "0" * 64})
    assert not (tmp_path / "bad").exists()
    with pytest.raises(BundledModelError, match="model parts missing"):
        assemble([*pieces, tmp_path / "model.zip.009"], tmp_path / "bad")
    with pytest.raises(BundledModelError, match="not a whole zip file"):
        assemble(pieces[1:], tmp_path / "bad")


def test_mpnet_parts_are_found_when_installed() -> None:
    parts = mpnet_parts()
    if parts is None:
        pytest.skip("the all-mpnet-base-v2 part packages are not installed (make install-encoders)")
    assert len(parts) == 5 and all(p.is_file() for p in parts)
