"""Atlassian Document Format as the text an agent reads: blocks and hard breaks are lines, list items `- ` or
numbered lines (nested lists too), mentions, emoji, dates and links as shown, plain text as it is."""

from __future__ import annotations

from typing import Any

from features.helpdesk.text import adf_to_text


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def block(kind: str, *content: dict[str, Any], **attrs: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"type": kind, "content": list(content)}
    return node | ({"attrs": attrs} if attrs else {})


def item(*words: str, nested: dict[str, Any] | None = None) -> dict[str, Any]:
    return block("listItem", block("paragraph", *map(text, words)), *([nested] if nested else []))


def test_an_adf_document_reads_as_lines() -> None:
    doc = block(
        "doc",
        block("heading", text("Export   broken"), level=2),
        block(
            "paragraph",
            text("Hi "),
            {"type": "mention", "attrs": {"id": "712020:abc", "text": "@Lea Lead"}},
            text(", "),
            {"type": "emoji", "attrs": {"shortName": ":warning:", "text": "⚠️"}},
            {"type": "hardBreak"},
            text("since "),
            {"type": "date", "attrs": {"timestamp": "1772355600000"}},
            text(" see "),
            {"type": "inlineCard", "attrs": {"url": "https://status.example.com/1"}},
        ),
        block(
            "bulletList",
            item("CSV", " export"),
            item("API", nested=block("orderedList", item("first"), item("second"), order=3)),
        ),
        block("codeBlock", text("error 500\n  at export()")),
        block("paragraph"),
        block("blockquote", block("paragraph", text("quoted"))),
        block(
            "table",
            block(
                "tableRow",
                block("tableHeader", block("paragraph", text("a"))),
                block("tableCell", block("paragraph", text("b"))),
            ),
        ),
        version=1,
    )
    assert adf_to_text(doc).split("\n") == [
        "Export broken",
        "Hi @Lea Lead, ⚠️",
        "since 2026-03-01 see https://status.example.com/1",
        "- CSV export",
        "- API",
        "3. first",
        "4. second",
        "error 500",
        "at export()",
        "quoted",
        "a b",
    ]


def test_plain_text_and_nothing() -> None:
    assert adf_to_text("already text\nkept") == "already text\nkept"
    assert adf_to_text(None) == "" and adf_to_text(block("doc")) == ""
    assert adf_to_text({"type": "emoji", "attrs": {"shortName": ":smile:"}}) == ":smile:"  # no unicode form given
