import pandas as pd

from features.config import parse_config
from training.retrain import merge_feedback

CONFIG = parse_config({"columns": {"text": "t", "target": "r"}, "teams": {"first_line": ["desk"]}})


def test_feedback_wins_where_it_disagrees() -> None:
    tickets = pd.DataFrame(
        {"id": ["a", "b", "c", "d"], "text": ["x"] * 4, "target": ["billing", "desk", "eng", "desk"]}
    )
    feedback = pd.DataFrame(
        {
            "ticket_id": ["a", "b", "c", "zz"],
            "escalated": [True, True, False, True],
            "target": ["billing", "legal", None, "eng"],
            "target_known": [True, False, True, True],
        }
    )
    merged, report = merge_feedback(tickets, feedback, CONFIG)
    assert merged["target"].tolist() == ["billing", "legal", "desk", "desk"]
    assert (report.matched, report.agreed, report.changed, report.not_in_export, report.unknown_targets) == (
        3,
        1,
        2,
        1,
        1,
    )
    assert {"ticket_id": "b", "export": "desk", "feedback": "legal"} in report.changes
    assert tickets["target"].tolist() == ["billing", "desk", "eng", "desk"]  # the export itself is untouched


def test_no_feedback_changes_nothing() -> None:
    tickets = pd.DataFrame({"id": ["a"], "text": ["x"], "target": ["desk"]})
    empty = pd.DataFrame(columns=["ticket_id", "escalated", "target", "target_known"])
    merged, report = merge_feedback(tickets, empty, CONFIG)
    assert merged is tickets and report.feedback_rows == 0
