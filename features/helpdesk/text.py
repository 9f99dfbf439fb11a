"""Helpdesk bodies as the text an agent reads: HTML (Zendesk, Zammad) with the standard library's parser, Atlassian
Document Format (Jira) by walking its tree."""

from __future__ import annotations

import re
from datetime import UTC, datetime
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
    """Jira's description and comments are plain text (webhooks, API v2) or an Atlassian Document Format tree (API
    v3): the text an agent reads, one line per block (paragraph, heading, quote, code, table row) and hard break,
    list items as `- ` or numbered lines, mentions, emoji, status lozenges and dates as shown, links by their URL."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        return ""
    walk = _Adf()
    walk.node(value)
    lines = (" ".join(line.split()) for line in "".join(walk.parts).split("\n"))
    return "\n".join(line for line in lines if line)


class _Adf:
    """Walks an ADF tree into text parts, its lines parted by line breaks."""

    BLOCKS = frozenset({"paragraph", "heading", "blockquote", "codeBlock", "rule", "panel", "tableRow", "expand"})
    BLOCKS |= frozenset({"nestedExpand", "mediaSingle", "mediaGroup", "decisionItem", "taskItem", "blockCard"})

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.lists: list[int | None] = []  # per open list: items so far when numbered, None for bullets
        self.marked = False  # a list item's marker was just written: its first block goes on the marker's line
        self.cells = 0  # table cells open: their blocks stay on the row's line

    def node(self, node: dict[str, Any]) -> None:
        kind, attrs = node.get("type"), node.get("attrs") or {}
        if kind == "text":
            self.write(str(node.get("text") or ""))
        elif kind == "hardBreak":
            self.write("\n")
        elif kind in ("mention", "emoji", "status"):  # `@Name`, the emoji itself (or `:name:`), the lozenge's words
            self.write(str(attrs.get("text") or attrs.get("shortName") or ""))
        elif kind in ("inlineCard", "blockCard", "embedCard"):
            self.write(str(attrs.get("url") or ""))
        elif kind == "date" and str(attrs.get("timestamp") or "").isdigit():  # milliseconds since the epoch, UTC
            self.write(datetime.fromtimestamp(int(attrs["timestamp"]) / 1000, UTC).strftime("%Y-%m-%d"))
        if kind in ("bulletList", "orderedList"):
            self.lists.append(int(attrs.get("order") or 1) - 1 if kind == "orderedList" else None)
        elif kind == "listItem":
            count = self.lists[-1] if self.lists else None
            if count is not None:
                self.lists[-1] = count + 1
            self.write("\n- " if count is None else f"\n{count + 1}. ")
            self.marked = True
        block = kind in self.BLOCKS and not (self.cells and kind != "tableRow")  # a table row is one line
        if block:
            if not self.marked:
                self.write("\n")
            self.marked = False
        if block and kind in ("expand", "nestedExpand") and attrs.get("title"):
            self.write(f"{attrs['title']}\n")
        cell = kind in ("tableCell", "tableHeader")
        if cell:
            self.write(" ")
            self.cells += 1
        for child in node.get("content") or []:
            if isinstance(child, dict):
                self.node(child)
        if cell:
            self.cells -= 1
        if block:
            self.write("\n")
        if kind in ("bulletList", "orderedList") and self.lists:
            self.lists.pop()

    def write(self, text: str) -> None:
        if text:
            self.marked = False
            self.parts.append(text)
