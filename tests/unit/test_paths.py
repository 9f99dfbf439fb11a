"""The path rule's directory: several people may stand for one hierarchical target, in the config and the model."""

from __future__ import annotations

from features.config import HelpdeskSource
from features.helpdesk.paths import Directory, History, Step, label
from training.importer import _by_name


def test_two_managers_share_one_name_in_the_config_and_the_model() -> None:
    people = {"900": "manager", "901": "manager", "902": "team-lead"}
    written = _by_name(people)
    assert written == {"manager": ["900", "901"], "team-lead": ["902"]}
    source = HelpdeskSource.model_validate({"kind": "zendesk", "people": written})
    directory = Directory.of_model(["Support"], {"Billing": "functional", "manager": "hierarchical"}, source.people)
    assert directory.people == people and directory.hierarchical == ("manager",)
    for boss in ("900", "901"):
        history = History(
            "t",
            "solved",
            steps=[Step("2026-01-01T00:00:00Z", "Support"), Step("2026-01-02T00:00:00Z", "Billing", boss)],
        )
        assert label(history, directory).target == "manager"


def test_a_config_written_with_one_id_per_name_still_reads() -> None:
    assert HelpdeskSource.model_validate({"kind": "jira", "people": {"team-lead": 42}}).people == {"team-lead": ["42"]}
