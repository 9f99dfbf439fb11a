"""The MLflow pyfunc face of the router, so any MLflow client can load and score it."""

from __future__ import annotations

import json
from typing import Any

import mlflow.pyfunc
import pandas as pd

from features.router import EscalationRouter

ARTEFACT_KEY = "router"


class ModelUnavailable(RuntimeError):
    """No servable model: no alias yet, registry unreachable, or the version failed to load or score."""


class RouterModel(mlflow.pyfunc.PythonModel):
    """Loads the router artefact; `predict` takes canonical tickets (id, text, metadata columns)."""

    router: EscalationRouter

    def load_context(self, context: Any) -> None:
        self.router = EscalationRouter.load(context.artifacts[ARTEFACT_KEY])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        params = params or {}
        frame = model_input.copy()
        if "id" not in frame.columns:
            frame["id"] = [f"row-{i + 1}" for i in range(len(frame))]
        for name in self.router.metadata:
            if name not in frame.columns:
                frame[name] = ""
        results = self.router.predict(
            frame, top_k=int(params.get("top_k", 3)), n_similar=int(params.get("n_similar", 3))
        )
        return pd.DataFrame(
            {
                "id": [r["id"] for r in results],
                "escalation_probability": [r["escalation"]["probability"] for r in results],
                "decision": [r["escalation"]["decision"] for r in results],
                "top_target": [r["suggestions"][0]["target"] if r["suggestions"] else "" for r in results],
                "routing": [r["routing"]["decision"] for r in results],
                "result_json": [json.dumps(r) for r in results],
            }
        )
