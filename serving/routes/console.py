"""The agent's console (`/console`) and the lead's view (`/console/model`): pages served by the app with their
assets from the package, which call the same API with the same key and masking as any other client."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from features.model.router import OTHER
from serving.deps import AGENT, ERRORS, AppSettings, Model
from serving.schemas import TargetInfo, TicketForm

ASSETS = "/console/assets"
PAGES = files("serving") / "console"
KEY_FIELD = """<p class="field"><label for="api-key">API key</label>
<input id="api-key" name="api-key" type="password" autocomplete="off" spellcheck="false">
<span class="hint">Kept for this browser tab only: never in a cookie or the address.</span></p>"""
# The pages run only their own scripts and styles, and talk only to this server.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'self'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(responses=ERRORS)


def page(name: str, keys_on: bool) -> HTMLResponse:
    html = (PAGES / name).read_text(encoding="utf-8")
    return HTMLResponse(html.replace("<!--API_KEY_FIELD-->", KEY_FIELD if keys_on else ""), headers=HEADERS)


@router.get("/console", include_in_schema=False)
def agent_console(settings: AppSettings) -> HTMLResponse:
    return page("agent.html", not settings.auth_disabled)


@router.get("/console/model", include_in_schema=False)
def model_console(settings: AppSettings) -> HTMLResponse:
    return page("model.html", not settings.auth_disabled)


@router.get("/v1/ticket-form", response_model=TicketForm, tags=["model"], dependencies=[AGENT])
def ticket_form(model: Model) -> TicketForm:
    """What a form for this model asks and offers: its metadata fields and the targets an agent can choose."""
    served = model.router
    return TicketForm(
        version=model.version,
        metadata=list(served.metadata),
        targets=[TargetInfo(target=t, kind=served.kinds[t]) for t in served.targets if t != OTHER],  # type: ignore[arg-type]
    )


def serve_console(app: FastAPI) -> None:
    app.mount(ASSETS, StaticFiles(directory=str(PAGES)), name="console-assets")
    app.include_router(router)
