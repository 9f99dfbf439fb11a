"""The one presenter: a router answer in the public shape, with personal data and credentials masked. It knows no
HTTP, so it lives beside the typed answers it presents.

Every consumer goes through `present`: the API and its batch route, `escalation predict` and the MLflow pyfunc,
so what "everything shown is masked" covers does not depend on the entry point. Ids and team names are shown as
they are; every text a person wrote (similar tickets' snippets and resolutions, key terms, rules' reasons) is
masked.
"""

from __future__ import annotations

from typing import Any

from features.model.results import Suggestion
from features.text.privacy import Masker


def present(answer: Suggestion, mask: Masker) -> dict[str, Any]:
    """The public JSON shape of one answer (the API's `SuggestionOut` without handoff, model and notes)."""
    esc, routing = answer.escalation, answer.routing
    known = answer.familiarity
    return {
        "id": answer.id,
        "familiarity": None
        if known is None
        else {"unfamiliar": known.unfamiliar, "nearest_similarity": known.nearest_similarity, "usual": known.usual},
        "escalation": {
            "probability": esc.probability,
            "decision": esc.decision,
            "threshold": esc.threshold,
            "thresholds": {"escalate": esc.escalate_at, "resolve_first": esc.resolve_first_below},
            "rule": esc.rule,
        },
        "routing": {
            "decision": routing.decision,
            "target": routing.target,
            "probability": routing.probability,
            "threshold": routing.threshold,
            "threshold_scope": routing.scope,
            "precision": routing.precision,
            "precision_set_by": routing.precision_set_by,
        },
        "suggestions": [
            {"target": t.target, "kind": t.kind, "probability": t.probability, "rule": t.rule} for t in answer.targets
        ],
        "explanation": {
            "similar_tickets": [
                {
                    "id": n.id,
                    "similarity": n.similarity,
                    "target": n.target,
                    "kind": n.kind,
                    "snippet": mask(n.snippet),
                    "resolution": mask(n.resolution) if n.resolution else n.resolution,
                }
                for n in answer.similar
            ],
            "key_terms": [
                {"term": mask.term(k.term), "field": k.field, "weight": k.weight, "towards": k.towards}
                for k in answer.key_terms
            ],
            "rules": [
                {"name": r.name, "target": r.target, "kind": r.kind, "action": r.action, "reason": mask(r.reason)}
                for r in answer.rules
            ],
        },
    }
