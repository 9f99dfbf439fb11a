"""The documentation says what the code does: the settings table is the settings' own, and the README stays short."""

from __future__ import annotations

from pathlib import Path

from features.settings import Settings, markdown_table

ROOT = Path(__file__).resolve().parents[2]


def test_settings_page_is_generated_from_the_settings() -> None:
    page = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    assert markdown_table() in page, "docs/settings.md differs from the settings: run `make docs`"
    for name in Settings.model_fields:  # and every setting has a description to show
        assert Settings.model_fields[name].description, f"setting {name} has no description"


def test_readme_is_short_and_links_pages_that_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    for page in ("api", "security", "training", "benchmarks", "operations", "settings"):
        assert f"(docs/{page}.md)" in readme and (ROOT / "docs" / f"{page}.md").exists()
