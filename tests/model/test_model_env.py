"""The registered model carries what it needs: a fresh virtual environment built from its own requirements only
loads it with MLflow and scores a ticket, without PyTorch; and the import names this project uses are its own."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import mlflow
import pytest

from tests.conftest import Trained, point_mlflow_at

ROOT = Path(__file__).resolve().parents[2]
IMPORT_NAMES = ("features", "training", "serving", "escalation")


def test_the_import_names_belong_to_this_distribution_only() -> None:
    owners = packages_distributions()
    for name in IMPORT_NAMES:
        assert set(owners.get(name, [])) == {"escalation-router"}, f"{name!r} is installed by {owners.get(name)}"


def test_a_fresh_environment_from_the_model_requirements_loads_and_scores(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"models:/escalation-router/{trained.result.version}"
    store = trained.settings.tracking_uri
    point_mlflow_at(trained.settings, monkeypatch)  # `models:/` resolves through the registry URI
    model = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / "model"), tracking_uri=store))
    requirements = (model / "requirements.txt").read_text().split()
    assert any(r.startswith("escalation-router==0.") for r in requirements), requirements  # pinned to this code
    assert not any("torch" in r or "sentence-transformers" in r for r in requirements), requirements

    source = tmp_path / "source"  # this project as users get it: a wheel of its packages, built off the checkout
    source.mkdir()
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / part, source / part)
    for package in IMPORT_NAMES:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", wheels, source],
        check=True,
        timeout=600,
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=300)
    python = venv / "bin" / "python"
    install = [python, "-m", "pip", "install", "--quiet", "--find-links", wheels, "-r", model / "requirements.txt"]
    subprocess.run(install, check=True, timeout=1800, capture_output=True)
    probe = (
        "import importlib.util, json, sys, pandas as pd, mlflow.pyfunc\n"
        f"m = mlflow.pyfunc.load_model({str(model)!r})\n"
        "out = m.predict(pd.DataFrame({'text': ['I was charged twice, please refund one payment']}))\n"
        "print(json.dumps({'target': out.loc[0, 'top_target'], 'decision': out.loc[0, 'decision'],\n"
        "  'torch': importlib.util.find_spec('torch') is not None, 'where': m.__class__.__module__}))\n"
    )
    out = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["target"] == "billing" and found["decision"] in ("escalate", "uncertain", "resolve_first")
    assert found["torch"] is False  # serving the registered model needs no PyTorch
