"""Schemathesis against the service's own OpenAPI schema, on the real app and model: no 5xx, answers match it.

Valid (positive) and invalid (negative) requests for every operation, with an admin key.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from serving.app import create_app
from tests.conftest import Trained, bearer

EXAMPLES = 25  # per operation and mode: about 600 requests in all


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors_and_answers_match_the_schema(trained: Trained, mode: GenerationMode) -> None:
    # An app of its own: Schemathesis starts its lifespan (the model loads) and keeps it for the session.
    app = create_app(trained.settings.model_copy(update={"poll_seconds": 0}))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = bearer(trained.settings)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {"POST /v1/suggestions", "POST /v1/feedback", "GET /v1/model"}
    fuzzed = set()
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=True,
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers)

        try:
            check()
        except Unsatisfiable:  # nothing to get wrong in a route without parameters or body (GET /healthz)
            if mode is GenerationMode.POSITIVE:
                raise
            continue
        fuzzed.add(operation.label)
    assert {"POST /v1/suggestions", "POST /v1/suggestions/batch", "POST /v1/feedback"} <= fuzzed
