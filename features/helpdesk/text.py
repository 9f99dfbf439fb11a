"""Helpdesk bodies as the text an agent reads: HTML (Zendesk, Zammad) with the standard library's parser, Atlassian
Document Format (Jira) by walking its tree."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

WHITE_SPACE = re.compile(r"\s+")  # a no-break space too


class _Text(HTMLParser):
    """The text of an HTML fragment as a browser shows it: blocks and `<br>` are lines, list items are `- ` or
    numbered lines, the source's own white space is one space, scripts, styles and comments are nothing."""

    BLOCKS = frozenset({"p", "div", "tr", "ul", "ol", "table", "blockquote", "pre", "section", "article", "hr"})
    BLOCKS |= frozenset({"h1", "h2", "h3", "h4", "h5", "h6", "header", "footer", "li"})
    HIDDEN = frozenset({"script", "style", "head", "template", "noscript"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)  # every named and numeric reference, decoded by html.unescape
        self.parts: list[str] = []
        self.hidden = 0
        self.lists: list[int | None] = []  # per open list: items so far when numbered (<ol>), None for bullets

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.HIDDEN:
            self.hidden += 1
        elif tag in ("ul", "ol"):
            self.lists.append(0 if tag == "ol" else None)
        if tag == "br" or tag in self.BLOCKS:
            self.parts.append("\n")
        if tag == "li":
            count = self.lists[-1] if self.lists else None
            if count is None:
                self.parts.append("- ")
            else:
                self.lists[-1] = count + 1
                self.parts.append(f"{count + 1}. ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in ("ul", "ol") and self.lists:
            self.lists.pop()
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:  # the source's line breaks are white space; the lines are the tags'
            self.parts.append(WHITE_SPACE.sub(" ", data))

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self.parts).split("\n"))
        return "\n".join(line for line in lines if line)


def html_to_text(value: str) -> str:
    """Zammad articles may be HTML: the text an agent reads, one line per block, line break and list item."""
    parser = _Text()
    parser.feed(value)
    parser.close()
    return parser.text()


def adf_to_text(value: Any) -> str:
    """Jira's description is plain text (webhooks, API v2) or an Atlassian Document Format tree (API v3)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        own = value.get("text", "") if value.get("type") == "text" else ""
        inner = "".join(adf_to_text(c) for c in value.get("content", []) or [])
        return own + inner + ("\n" if value.get("type") in ("paragraph", "heading", "listItem") else "")
    return ""
