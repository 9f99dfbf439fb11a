"""The agent's console and the lead's view in a real browser: Debian's Chromium driven by Playwright, against the
real app on a loopback port with a real trained model and feedback store. The labels and roles used here are the
pages' contract. Screenshots go to `test-artifacts/`; axe-core (from the npm registry, `make browser`) checks
accessibility."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from features.settings import Settings
from serving.app import create_app
from serving.auth import add_key
from serving.feedback_store import FeedbackStore
from tests.conftest import Trained, running, store_settings
from training.register import load_router

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium")
AXE = ROOT / ".cache/node/node_modules/axe-core/axe.min.js"
ARTEFACTS = ROOT / "test-artifacts"
BILLING = "I was charged twice for my plan this month. Please refund one of the two payments."

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or not AXE.is_file(), reason="Debian's chromium or axe-core is missing: `make browser` adds them"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # Playwright's own browser download does not work on these machines: Debian's Chromium, by its path
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def console(trained: Trained) -> Iterator[str]:
    """The app serving the trained champion, with API keys on."""
    with running(create_app(trained.settings), ready="/readyz") as url:
        yield url


def key(settings: Settings, role: str) -> str:
    return add_key(settings.keys_file, role, f"browser {role}")[0]  # type: ignore[arg-type]


def feedback_row(settings: Settings, ticket_id: str) -> dict[str, object]:
    frame = FeedbackStore(settings.feedback_url).feedback_frame()
    rows = frame[frame["ticket_id"] == ticket_id].to_dict(orient="records")
    assert len(rows) == 1, rows
    return rows[0]


def fill_ticket(page: Page, api_key: str | None, ticket_id: str, body: str = BILLING) -> None:
    if api_key is not None:
        page.get_by_label("API key").fill(api_key)
        page.get_by_label("API key").press("Tab")  # the key counts once the field is left: the form loads
        expect(page.get_by_label("channel")).to_be_visible()
    page.get_by_label("Ticket id").fill(ticket_id)
    page.get_by_label("Subject").fill("Charged twice")
    page.get_by_label("Body").fill(body)
    page.get_by_label("Message 1 author").fill("customer")
    page.get_by_label("Message 1 text").fill("My bank shows both payments of 49 EUR on 3 March.")


def suggest(page: Page) -> None:
    page.get_by_role("button", name="Suggest").click()
    expect(page.locator("#answer")).to_be_visible()


def test_suggest_explain_copy_and_escalate_to_the_top_target(page: Page, console: str, trained: Trained) -> None:
    page.goto(console + "/console")
    fill_ticket(page, key(trained.settings, "agent"), "B-1")
    page.get_by_label("channel").fill("email")
    suggest(page)
    verdicts = re.compile("^(Escalate|Try first-line fix first|Unsure: ask triage)$")
    expect(page.locator("#verdict")).to_have_text(verdicts)
    top = page.locator("#targets li .target").first.inner_text()
    assert top == "billing"
    expect(page.locator("#targets li")).to_have_count(3)
    expect(page.locator("#targets")).to_contain_text(re.compile("specialist team|manager"))
    expect(page.locator("#similar li").first).to_contain_text("resolved by")
    expect(page.locator("#similar .resolution").first).to_contain_text("How: ")
    expect(page.locator("#ticket-text mark").first).to_be_visible()  # key terms highlighted in the ticket
    note = page.locator("#handoff").inner_text()
    assert "charged twice" in note.lower()
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("#copy-status")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == note
    ARTEFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTEFACTS / "console-agent.png", full_page=True)

    page.get_by_role("button", name="Escalate to billing").click()
    expect(page.locator("#feedback-status")).to_have_text("Feedback recorded for B-1: escalated to billing.")
    row = feedback_row(trained.settings, "B-1")
    assert row["escalated"] and row["target"] == "billing" and row["accepted_suggestion"]
    assert row["model_version"] == trained.result.version  # joined to the suggestion the page showed


def test_a_ticket_without_messages_gets_a_handoff_note_too(page: Page, console: str, trained: Trained) -> None:
    page.goto(console + "/console")
    page.get_by_label("API key").fill(key(trained.settings, "agent"))
    page.get_by_label("API key").press("Tab")
    expect(page.get_by_label("channel")).to_be_visible()
    page.get_by_label("Subject").fill("Charged twice")
    page.get_by_label("Body").fill("I was charged twice for the Team plan, $49.00 each time (invoice INV-55555).")
    suggest(page)
    expect(page.locator("#handoff")).to_have_text(
        re.compile(r"^Problem: Charged twice\..*\nDetails: reference INV-55555")
    )


def test_override_with_another_target_and_a_note(page: Page, console: str, trained: Trained) -> None:
    page.goto(console + "/console")
    fill_ticket(page, key(trained.settings, "agent"), "O-1", BILLING + " Otherwise my lawyer will take legal action.")
    suggest(page)
    expect(page.locator("#rules")).to_contain_text("legal-threat: puts support-manager")  # the admins' rule, and why
    expect(page.locator("#rules")).to_contain_text("lawyer")
    shown = page.locator("#targets li .target").all_inner_texts()
    options = page.locator("#override-target option").evaluate_all("os => os.map(o => o.value)")
    other = next(t for t in options if t not in shown)
    page.get_by_label("Other target").select_option(other)
    page.get_by_label("Note").fill("customer asked for a manager")
    page.get_by_role("button", name="Escalate to the other target").click()
    expect(page.locator("#feedback-status")).to_have_text(f"Feedback recorded for O-1: escalated to {other}.")
    row = feedback_row(trained.settings, "O-1")
    assert row["target"] == other and not row["accepted_suggestion"] and row["note"] == "customer asked for a manager"


def test_a_helpdesk_notes_link_fills_in_the_ticket_id(page: Page, console: str) -> None:
    page.goto(console + "/console?ticket=Z-7")
    expect(page.get_by_label("Ticket id")).to_have_value("Z-7")


def test_a_wrong_key_is_said_plainly_and_nothing_typed_is_lost(page: Page, console: str) -> None:
    page.goto(console + "/console")
    page.get_by_label("API key").fill("not-a-key")
    page.get_by_label("Ticket id").fill("W-1")
    page.get_by_label("Body").fill(BILLING)
    page.get_by_role("button", name="Suggest").click()
    expect(page.get_by_role("alert")).to_contain_text("The API key was not accepted")
    expect(page.get_by_label("Body")).to_have_value(BILLING)
    expect(page.get_by_label("Ticket id")).to_have_value("W-1")
    assert page.evaluate("document.cookie") == "" and "not-a-key" not in page.url


def test_no_model_loaded_is_said_plainly(page: Page, tmp_path: Path) -> None:
    settings = store_settings(tmp_path).model_copy(update={"auth_disabled": True})  # an empty registry
    with running(create_app(settings)) as url:
        page.goto(url + "/console")
        expect(page.get_by_label("API key")).to_have_count(0)  # keys off: no key field
        page.get_by_label("Body").fill(BILLING)
        page.get_by_role("button", name="Suggest").click()
        expect(page.get_by_role("alert")).to_contain_text("No model is loaded yet")
        expect(page.get_by_label("Body")).to_have_value(BILLING)


def test_a_refused_field_is_named_and_a_lost_connection_said(page: Page, trained: Trained) -> None:
    settings = trained.settings.model_copy(update={"auth_disabled": True})
    with running(create_app(settings), ready="/readyz") as url:
        page.goto(url + "/console")
        page.get_by_label("Ticket id").fill("E-1")
        page.get_by_role("button", name="Suggest").click()  # no subject, body or message: nothing to read
        expect(page.get_by_role("alert")).to_contain_text(
            "Please check the request: Value error, the ticket has no text"
        )
        page.get_by_label("Body").fill(BILLING)
    page.get_by_role("button", name="Suggest").click()  # the server is gone now
    expect(page.get_by_role("alert")).to_contain_text("The connection to the service was lost")
    expect(page.get_by_label("Body")).to_have_value(BILLING)
    expect(page.get_by_label("Ticket id")).to_have_value("E-1")


def test_feedback_while_the_store_is_down_says_when_to_retry(page: Page, trained: Trained) -> None:
    down = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1"
    settings = trained.settings.model_copy(update={"auth_disabled": True, "feedback_url": down})
    with running(create_app(settings), ready="/readyz") as url:
        page.goto(url + "/console")
        fill_ticket(page, None, "D-1")
        suggest(page)
        page.get_by_role("button", name="Resolve first").click()
        expect(page.locator("#feedback-status")).to_contain_text(
            re.compile(r"The feedback store is down, so this was not recorded\. Try again in \d+ seconds\.")
        )
        expect(page.get_by_label("Body")).to_have_value(BILLING)


def test_the_whole_flow_works_with_the_keyboard(page: Page, console: str, trained: Trained) -> None:
    page.goto(console + "/console")
    agent = key(trained.settings, "agent")

    def tab_to(element_id: str) -> None:
        for _ in range(40):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
                return
        raise AssertionError(f"#{element_id} is not reachable with Tab")

    for element_id, text in (("api-key", agent), ("ticket-id", "K-1"), ("body", BILLING)):
        tab_to(element_id)
        page.keyboard.type(text)
    tab_to("suggest")
    page.keyboard.press("Enter")
    expect(page.locator("#answer")).to_be_visible()
    for _ in range(60):  # on to the first `Escalate to` button
        page.keyboard.press("Tab")
        if (page.evaluate("document.activeElement.textContent") or "").startswith("Escalate to "):
            break
    target = page.evaluate("document.activeElement.textContent").removeprefix("Escalate to ")
    page.keyboard.press("Enter")
    expect(page.locator("#feedback-status")).to_have_text(f"Feedback recorded for K-1: escalated to {target}.")
    assert feedback_row(trained.settings, "K-1")["target"] == target


def axe_violations(page: Page) -> list[dict[str, object]]:
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def test_both_pages_have_no_serious_accessibility_violations(browser: Browser, console: str, trained: Trained) -> None:
    context = browser.new_context(bypass_csp=True)  # the pages' policy rightly refuses the injected checker
    page = context.new_page()
    page.goto(console + "/console")
    fill_ticket(page, key(trained.settings, "agent"), "A-1")
    suggest(page)
    assert axe_violations(page) == []
    page.goto(console + "/console/model")
    page.get_by_label("API key").fill(key(trained.settings, "analyst"))
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#served")).to_be_visible()
    assert axe_violations(page) == []
    context.close()


def test_the_leads_view_shows_the_version_its_numbers_and_what_agents_did(
    page: Page, console: str, trained: Trained
) -> None:
    agent = key(trained.settings, "agent")
    page.goto(console + "/console")  # one suggestion and its feedback, so the summary has a row
    fill_ticket(page, agent, "L-1")
    suggest(page)
    page.get_by_role("button", name="Escalate to billing").click()
    expect(page.locator("#feedback-status")).to_contain_text("Feedback recorded for L-1")

    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(console + "/console/model")
    page.get_by_label("API key").fill(key(trained.settings, "analyst"))
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#version")).to_contain_text(f"version {trained.result.version} (alias champion)")
    # escalation per week, drawn by the page itself: overall (escalated and first-contact resolution), per target
    rates = load_router(trained.settings, trained.result.version).rates
    expect(page.locator("#rates-chart polyline")).to_have_count(2)
    expect(page.locator("#rates-chart svg")).to_have_attribute("aria-label", re.compile(r"^Weekly share of tickets"))
    page.get_by_label("Breakdown").select_option(label="Per target")
    targets = {r["value"] for r in rates if r["scope"] == "target"}
    expect(page.locator("#rates-chart polyline")).to_have_count(len(targets))
    assert set(page.locator("#rates-chart polyline").evaluate_all("ls => ls.map(l => l.dataset.series)")) == targets
    page.get_by_label("Breakdown").select_option(label="Per channel")
    expect(page.locator("#rates-legend")).to_contain_text("email")
    billing = page.locator("#per-target tr", has=page.locator("th", has_text=re.compile("^billing$")))
    cells = billing.locator("td").all_inner_texts()
    assert cells[0] == "specialist team" and re.fullmatch(r"\d+%", cells[1]) and int(cells[3]) > 0, cells
    expect(page.locator("#metrics")).to_contain_text("target top-1")
    version_row = page.locator("#versions tbody tr").filter(has=page.locator("th", has_text=trained.result.version))
    summary = version_row.locator("td").all_inner_texts()
    assert int(summary[0]) >= 1 and int(summary[1]) >= 1, summary
    themes = page.locator("#themes tbody tr")
    served = load_router(trained.settings, trained.result.version).themes
    expect(themes).to_have_count(len(served))
    first = themes.first.locator("th, td").all_inner_texts()
    assert first[0] == served[0]["name"] and first[1] == str(served[0]["tickets"]), first
    expect(page.locator("#run-link")).to_be_hidden()  # a sqlite store has no MLflow UI to link
    # the trade-off per target: a row each, and for the chosen target its two curves, the precision kept, the dots
    tradeoff = load_router(trained.settings, trained.result.version).tradeoff
    expect(page.locator("#tradeoff tbody tr")).to_have_count(len(tradeoff))
    routed = next(t for t, e in tradeoff.items() if e["threshold"] < 1)  # a target with a threshold of its own
    row = page.locator("#tradeoff tr", has=page.locator("th", has_text=re.compile(f"^{routed}$"))).locator("td")
    expected = [f"{round(tradeoff[routed]['precision'] * 100)}%", "training", f"{tradeoff[routed]['threshold']:.2f}"]
    assert row.all_inner_texts()[:3] == expected, row.all_inner_texts()
    page.get_by_label("Target", exact=True).select_option(routed)
    curves = page.locator("#tradeoff-chart polyline").evaluate_all("ls => ls.map(l => l.dataset.series)")
    assert curves == ["out of fold (chosen on)", "holdout (checked on)"], curves
    expect(page.locator("#tradeoff-chart circle")).to_have_count(2)
    expect(page.locator("#tradeoff-chart [data-series='precision kept']")).to_have_count(1)
    expect(page.locator("#tradeoff-chart svg")).to_have_attribute("aria-label", re.compile(f"^{routed}: precision"))
    # what agents did, per week (predicted and observed escalation) and per target the tickets went to
    expect(page.locator("#live-chart polyline")).to_have_count(3)  # and the share of unfamiliar tickets
    lines = page.locator("#live-chart polyline").evaluate_all("ls => ls.map(l => l.dataset.series)")
    assert lines == ["predicted escalation", "observed escalation", "unfamiliar tickets"], lines
    assert page.locator("#live-chart circle").count() >= 3  # a week's dots: one week alone still shows
    assert "NaN" not in (page.locator("#live-chart svg").get_attribute("aria-label") or "")
    billing_row = page.locator("#per-target-acceptance tr", has=page.locator("th", has_text=re.compile("^billing$")))
    accepted = billing_row.locator("td").all_inner_texts()
    assert int(accepted[0]) >= 1 and re.fullmatch(r"\d+%", accepted[1]), accepted
    page.screenshot(path=ARTEFACTS / "console-model.png", full_page=True)
    assert requested and all(url.startswith(console) for url in requested), requested  # nothing from elsewhere
