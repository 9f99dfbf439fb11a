"""Runtime settings, read from the environment (and an optional .env file) when asked for, never at import."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_FEEDBACK_URL = "sqlite:///feedback.db"


class Settings(BaseSettings):
    """Where the registry lives, which model to serve and the service's limits."""

    model_config = SettingsConfigDict(env_prefix="ESCALATION_", env_file=".env", extra="ignore", populate_by_name=True)

    tracking_uri: str = Field(
        DEFAULT_TRACKING_URI,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "ESCALATION_TRACKING_URI"),
        description="MLflow tracking and registry store: a sqlite/database URL or a tracking server.",
    )
    model_name: str = Field("escalation-router", description="Registered model name.")
    model_alias: str = Field("champion", description="Registry alias that serving follows.")
    experiment: str = Field("escalation-router", description="MLflow experiment for training runs.")
    host: str = Field("127.0.0.1", description="Interface `escalation serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `escalation serve` listens on.")
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Processes `escalation serve` runs behind its one port, each loading the model once "
        "(metrics add up across them; the feedback store is shared).",
    )
    max_batch_size: int = Field(100, ge=1, le=10_000, description="Most tickets in one batch request.")
    max_text_chars: int = Field(
        20_000, ge=100, description="Characters of subject+body+messages read; longer tickets are cut, with a note."
    )
    max_body_bytes: int = Field(
        4_000_000,
        ge=10_000,
        description="Largest request body; larger ones get 413 (read and dropped, never kept whole).",
    )
    top_k: int = Field(3, ge=1, le=20, description="Targets returned per suggestion.")
    n_similar: int = Field(3, ge=0, le=20, description="Similar past tickets returned per suggestion.")
    server_timing: bool = Field(
        True,
        description="Send each suggestion's time per stage in a Server-Timing header (a browser's developer tools "
        "show it); /metrics has the same per stage either way.",
    )
    embedding_cache: str = Field(
        ".cache/embeddings.sqlite",
        description="Embeddings cached by content hash and model, so retraining embeds only new tickets; '' disables.",
    )
    ann_threshold: int = Field(
        50_000,
        ge=1,
        description="Indexed tickets from which similar-ticket search is approximate (faiss inverted lists).",
    )
    poll_seconds: float = Field(
        30.0, ge=0, description="How often the server checks whether the alias moved; 0 checks only on reload."
    )
    batch_max_tickets: int = Field(
        64, ge=1, le=10_000, description="Most tickets of concurrent requests scored in one shared call; 1 disables."
    )
    batch_wait_ms: float = Field(
        0.0, ge=0, le=100, description="How long a shared call waits for more requests; 0 takes only those queued."
    )
    batch_timeout_seconds: float = Field(
        30.0, gt=0, le=600, description="Longest a suggestion waits for its answer; then 503 with Retry-After."
    )
    blas_threads: int = Field(
        1, ge=1, le=64, description="BLAS threads in the server; more only compete with the encoder's threads."
    )
    feedback_url: str = Field(
        DEFAULT_FEEDBACK_URL,
        description="SQLAlchemy URL of the suggestions and feedback store (PostgreSQL for a team).",
    )
    retry_after_seconds: int = Field(
        5,
        ge=1,
        le=3600,
        description="When the feedback store is down: the Retry-After clients are given, and the pause before the "
        "server tries the store again.",
    )

    keys_file: str = Field(
        "keys.json", description="API keys (hashes and roles only); add keys with `escalation keys add --role ROLE`."
    )
    auth_disabled: bool = Field(
        False, description="Development only: serve without API keys (logged loudly at start-up)."
    )
    cors_origins: list[str] = Field(
        default_factory=list, description='Browser origins allowed to call the API, as JSON: ["https://desk.example"].'
    )

    # Helpdesk connectors (docs/helpdesks.md): each is off unless its URL is set.
    zendesk_url: str = Field("", description="Zendesk account URL (https://ACCOUNT.zendesk.com); '' is off.")
    zendesk_email: str = Field("", description="Zendesk agent e-mail the API token belongs to.")
    zendesk_token: str = Field("", description="Zendesk API token (basic auth EMAIL/token:TOKEN).")
    zendesk_webhook_secret: str = Field("", description="Zendesk webhook signing secret.")
    zammad_url: str = Field("", description="Zammad URL (https://zammad.example); '' is off.")
    zammad_token: str = Field("", description="Zammad access token (Authorization: Token token=...).")
    zammad_webhook_secret: str = Field("", description="Zammad webhook HMAC-SHA1 signature token.")
    jira_url: str = Field("", description="Jira Service Management URL (https://SITE.atlassian.net); '' is off.")
    jira_email: str = Field("", description="Jira account e-mail the API token belongs to.")
    jira_token: str = Field("", description="Jira API token (basic auth EMAIL:TOKEN).")
    jira_webhook_secret: str = Field("", description="Jira webhook secret (X-Hub-Signature sha256).")
    hook_groups: dict[str, str] = Field(
        default_factory=dict,
        description='Helpdesk groups to the config targets, as JSON: {"zendesk:360001": "billing", '
        '"zammad:Billing": "billing", "jira:Payments": "billing"}; a group mapped to a first-line team means resolved '
        "without escalation. Outcomes in unmapped groups are not recorded.",
    )
    hook_tag_prefix: str = Field(
        "escalation-", description="Prefix of the tags written back: PREFIX suggested, PREFIX target-TARGET."
    )
    console_url: str = Field(
        "", description="This service's public URL, for the console link in helpdesk notes; '' leaves it out."
    )
    hook_retry_seconds: float = Field(
        5.0, gt=0, le=3600, description="First pause before a failed write-back is retried (doubling, at most 1 h)."
    )
    hook_max_attempts: int = Field(12, ge=1, le=100, description="Write-back attempts before an event is failed.")
    hook_batch: int = Field(
        32,
        ge=1,
        le=1000,
        description="Due helpdesk events claimed together; their new tickets share one scoring call (1: one by one).",
    )
    import_retry_seconds: float = Field(
        2.0, gt=0, le=600, description="`escalation import`: first pause after a 5xx or a lost connection (doubling)."
    )
    import_max_attempts: int = Field(
        6, ge=1, le=50, description="`escalation import`: tries of one request before the run stops (resumable)."
    )
    zendesk_export_per_minute: float = Field(
        10.0, gt=0, le=6000, description="Requests a minute to Zendesk's incremental export (its documented limit)."
    )

    mask_names: list[str] = Field(
        default_factory=list, description='Names masked in everything shown, as JSON: ["Anna Schmidt", "Jörg"].'
    )
    mask_names_file: str = Field("", description="A file of names to mask, one per line, added to mask_names.")

    model_cache_dir: str = Field(
        ".cache/served-model",
        description="A copy of the last version served, for start-ups while the registry is unreachable; '' disables.",
    )
    registry_retry_seconds: float = Field(
        30.0,
        gt=0,
        description="How often a server started from the local cache retries the registry (without polling).",
    )
    log_format: Literal["json", "text"] = Field(
        "json", description="Server logs: one JSON object per line (with the request id), or plain text."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Server log level; DEBUG also logs ticket text, so switch it on only on purpose."
    )

    @field_validator("tracking_uri")
    @classmethod
    def _no_file_store(cls, value: str) -> str:
        if value.startswith("file:") or "://" not in value:
            raise ValueError(
                f"{value!r} is a plain file store, which is not supported: "
                "use a database URL such as sqlite:///mlflow.db or an http(s) tracking server"
            )
        return value


def markdown_table() -> str:
    """The settings as a Markdown table, from their own names, defaults and descriptions (docs/settings.md is this
    text; a test fails when the two differ: regenerate with `make docs`)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        variables = [str(a) for a in alias.choices] if isinstance(alias, AliasChoices) else []
        variables = variables or [f"ESCALATION_{name.upper()}"]
        default = info.default_factory() if info.default_factory is not None else info.default  # type: ignore[call-arg]
        shown = json.dumps(default) if isinstance(default, list | bool) else str(default)
        shown = f"`{shown}`" if shown else "(none)"
        rows.append(f"| {', '.join(f'`{v}`' for v in variables)} | {shown} | {info.description or ''} |")
    return "\n".join(rows) + "\n"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; tests build their own Settings instead)."""
    return Settings()
