"""Zammad articles in HTML become the text an agent reads: every entity decoded, line breaks, paragraphs and list
items kept as lines, scripts and styles dropped, the source's own line wrapping collapsed."""

from __future__ import annotations

import pytest

from features.helpdesk.text import html_to_text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        (
            "Caf&eacute; &amp; more: &euro;49&nbsp;each, &#8364;5 &#x2013; &quot;ok&quot; &lt;b&gt;",
            'Café & more: €49 each, €5 – "ok" <b>',
        ),
        ("AT&T 3 &lt 4", "AT&T 3 < 4"),  # what browsers read too: a bare & and an entity without its ;
    ],
)
def test_every_entity_is_decoded(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_breaks_paragraphs_and_lists_are_lines() -> None:
    html = (
        "<p>Hello,</p><p>the export fails.<br>Error 500<br/>since Monday</p>"
        "<ul><li>tried a restart</li><li>tried &lt;reinstall&gt;</li></ul>"
        "<ol><li>open the report</li><li>press <b>Export</b></li></ol><div>Emily</div>"
    )
    assert html_to_text(html).split("\n") == [
        "Hello,",
        "the export fails.",
        "Error 500",
        "since Monday",
        "- tried a restart",
        "- tried <reinstall>",
        "1. open the report",
        "2. press Export",
        "Emily",
    ]


def test_scripts_styles_and_comments_are_dropped() -> None:
    html = "<style>p { color: red }</style><p>Hi<!-- tracking --></p><script>alert('x &amp; y')</script><p>there</p>"
    assert html_to_text(html) == "Hi\nthere"


def test_the_sources_own_wrapping_is_white_space() -> None:
    assert (
        html_to_text("<div>\n  Charged\n   twice\tfor\n  the plan\n</div>\n<div><br></div>")
        == "Charged twice for the plan"
    )
