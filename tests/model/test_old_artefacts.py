"""Models registered before a change of the code's layout still load and score.

`tests/fixtures/router-c9c6965` is a small router pickled by the code at commit c9c6965 (240 sample tickets,
PyTorch encoder, no ONNX graph). When modules move, the loader's aliases must keep it loading: this test is what
proves them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.privacy import Masker
from features.router import EscalationRouter
from serving.present import present

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "router-c9c6965"


def test_a_router_pickled_before_the_regroup_loads_and_scores() -> None:
    router = EscalationRouter.load(FIXTURE)
    assert isinstance(router, EscalationRouter) and "billing" in router.targets
    frame = pd.DataFrame({"id": ["old-1"], "text": ["I was charged twice for my plan, please refund one payment"]})
    for name in router.metadata:
        frame[name] = ""
    answer = present(router.predict(frame, top_k=3, n_similar=2)[0], Masker())
    assert answer["id"] == "old-1" and answer["suggestions"][0]["target"] == "billing"
    assert 0.0 <= answer["escalation"]["probability"] <= 1.0 and answer["explanation"]["similar_tickets"]
