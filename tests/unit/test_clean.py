import pytest

from features.text.clean import clean_text, join_parts, snippet


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("line one_x000D_\nline two", "line one\nline two"),
        ("Windows\r\nline", "Windows\nline"),
        ("Ich mÃ¶chte eine RÃ¼ckerstattung", "Ich möchte eine Rückerstattung"),
        ("received from: a.b@example.com\n\nmy vpn is down", "my vpn is down"),
        ("printer jams again\n\nOn Mon, 3 Mar 2026, Support wrote:\n> old reply", "printer jams again"),
        (
            "the export fails with error E42 every night\n\nBest regards,\nJohn\nACME",
            "the export fails with error E42 every night",
        ),
        ("tabs\t\tand   spaces", "tabs and spaces"),
        ("bell\x07char", "bell char"),
        ("", ""),
        (None, ""),
    ],
)
def test_clean_text(raw: str | None, expected: str) -> None:
    assert clean_text(raw) == expected


def test_early_thanks_does_not_cut_the_message() -> None:
    text = "Thanks,\nthe dashboard shows error 500 since this morning on every project we open"
    assert "error 500" in clean_text(text)


def test_join_parts_skips_empty_and_non_text() -> None:
    assert join_parts(["Subject", "", None, float("nan"), "Body"]) == "Subject\nBody"


def test_snippet_cuts_at_a_word() -> None:
    out = snippet("word " * 100, limit=22)
    assert out.endswith(" …") and len(out) <= 24 and "wor …" not in out
