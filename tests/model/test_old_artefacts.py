"""Models registered before a change of the code's layout still load and score.

`tests/fixtures/registered-fd12f5e` is a registered model's folder as MLflow keeps it, written by the code at
commit fd12f5e (before `features/` was regrouped): its models-from-code entry file, its `MLmodel` and a small router
(240 sample tickets, PyTorch encoder, no ONNX graph) pickled under the old module paths. The loader's aliases must
keep both ways in loading: this test is what proves them."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow.pyfunc
import pandas as pd
import pytest

from features.model.present import present
from features.model.router import EscalationRouter
from features.text.privacy import Masker
from training.register import ThresholdsRefused
from training.tradeoff import rethresholded

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "registered-fd12f5e"
TICKET = "I was charged twice for my plan, please refund one payment. Reach me at jo.doe@example.com"


def frame_for(metadata: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame({"id": ["old-1"], "text": [TICKET]})
    for name in metadata:
        frame[name] = ""
    return frame


def test_a_router_pickled_before_the_regroup_loads_and_scores() -> None:
    router = EscalationRouter.load(FIXTURE / "artifacts" / "router")
    assert isinstance(router, EscalationRouter) and "billing" in router.targets
    answer = present(router.predict(frame_for(router.metadata), top_k=3, n_similar=2)[0], Masker())
    assert answer["id"] == "old-1" and answer["suggestions"][0]["target"] == "billing"
    assert 0.0 <= answer["escalation"]["probability"] <= 1.0 and answer["explanation"]["similar_tickets"]
    # thresholds from before leads could set a precision: training's, set by nobody; no curves to choose others on
    chosen = router.target_thresholds
    expected = chosen.target_precision if chosen is not None else None
    assert (answer["routing"]["precision"], answer["routing"]["precision_set_by"]) == (expected, None)
    assert router.tradeoff == {} and router.routing_answers == {}
    with pytest.raises(ThresholdsRefused, match="keeps no out-of-fold answers"):
        rethresholded(router, 0.8, None, "Dana")


def test_a_model_registered_before_the_regroup_loads_through_mlflow() -> None:
    model = mlflow.pyfunc.load_model(str(FIXTURE))
    out = model.predict(frame_for(["channel", "customer_tier"]))
    assert list(out["id"]) == ["old-1"] and out["top_target"].iloc[0] == "billing"
    shown = json.loads(out["result_json"].iloc[0])
    assert "jo.doe@example.com" not in json.dumps(shown) and shown["suggestions"][0]["target"] == "billing"
