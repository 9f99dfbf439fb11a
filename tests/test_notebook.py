"""The analyst notebook runs top to bottom against a real store and champion."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import Trained

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "explore.ipynb"


def test_notebook_executes(trained: Trained, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCALATION_DATA", str(trained.data))
    monkeypatch.setenv("ESCALATION_CONFIG", str(trained.config))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained.settings.tracking_uri)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "900 tickets from" in text and "escalated holdout tickets got another top-1 target" in text
    assert "of them were confident (routed)" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert any("Model card: escalation-router" in o.get("data", {}).get("text/markdown", "") for o in outputs)
