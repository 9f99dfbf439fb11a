"""`escalation predict --engine ray` on Ray started on this machine: the same ids, decisions and probabilities as
one process, from a Parquet backlog, a folder of parts and CSV; clear one-line errors for a cluster that does not
answer and a part that cannot be read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from escalation.cli import app
from features.config import RouterConfig, load_config
from features.data import DataError, read_export
from serving.predict import answers_in, find_backlog, scoring_rows
from serving.predict_ray import read_backlog
from tests.conftest import Trained

pytest.importorskip("ray", reason="the ray extra is not installed (make install takes it)")
ESCALATION = str(Path(sys.executable).with_name("escalation"))
ROWS = 150


@pytest.fixture(scope="module")
def ray_here() -> Iterator[None]:
    """Ray on this machine for the module, shut down after (each test process starts its own)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def run(trained: Trained, *args: str) -> str:
    env = {"MLFLOW_TRACKING_URI": trained.settings.tracking_uri}
    result = CliRunner().invoke(app, ["predict", "--config", str(trained.config), "--no-progress", *args], env=env)
    assert result.exit_code == 0, result.output
    return result.output


def backlog(trained: Trained) -> pd.DataFrame:
    return pd.read_csv(trained.data, dtype=str).head(ROWS)


SHOWN = 1e-4 + 1e-9  # one unit of the last decimal an answer shows


def close(a: object, b: object, where: str) -> None:
    """Equal, numbers as shown: answers carry 4 decimals, and the same ticket scored in another batch shape or with
    another thread count differs in float32's 7th digit, so two shown values may sit one unit apart, never more."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert abs(a - b) <= SHOWN, f"{where}: {a} != {b}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def same_answers(one: list[dict], other: list[dict]) -> None:  # type: ignore[type-arg]
    """Same ids in the same order, the same decisions, targets and similar tickets; probabilities equal as shown."""
    assert [a["id"] for a in one] == [a["id"] for a in other] and len(one) == ROWS
    for a, b in zip(one, other, strict=True):
        close(a, b, a["id"])


def test_ray_answers_a_parquet_backlog_as_one_process_does(ray_here: None, trained: Trained, tmp_path: Path) -> None:
    data = tmp_path / "backlog.parquet"
    backlog(trained).to_parquet(data, index=False)
    run(trained, "--data", str(data), "--output", str(tmp_path / "local.jsonl"))
    said = run(
        trained, "--data", str(data), "--output", str(tmp_path / "ray.jsonl"), "--engine", "ray", "--batch-size", "32"
    )
    assert f"scored {ROWS} tickets" in said and "on Ray" in said
    same_answers(answers_in(tmp_path / "local.jsonl"), answers_in(tmp_path / "ray.jsonl"))


def test_a_folder_of_parts_in_and_out_and_csv(ray_here: None, trained: Trained, tmp_path: Path) -> None:
    parts = tmp_path / "backlog"
    parts.mkdir()
    frame = backlog(trained)
    for i, start in enumerate(range(0, ROWS, 50)):
        frame.iloc[start : start + 50].to_parquet(parts / f"part-{i:03d}.parquet", index=False)
    run(trained, "--data", str(parts), "--output", str(tmp_path / "ray.parquet") + "/", "--engine", "ray")
    assert len(list((tmp_path / "ray.parquet").glob("part-*.parquet"))) >= 1
    csv = tmp_path / "backlog.csv"
    frame.to_csv(csv, index=False)
    run(trained, "--data", str(csv), "--output", str(tmp_path / "local.parquet"))
    run(trained, "--data", str(csv), "--output", str(tmp_path / "ray-csv.jsonl"), "--engine", "ray")
    local = answers_in(tmp_path / "local.parquet")
    same_answers(local, answers_in(tmp_path / "ray.parquet"))
    same_answers(local, answers_in(tmp_path / "ray-csv.jsonl"))


def test_a_part_that_cannot_be_read_is_one_line_like_one_process(
    ray_here: None, trained: Trained, tmp_path: Path
) -> None:
    parts = tmp_path / "backlog"
    parts.mkdir()
    backlog(trained).to_parquet(parts / "part-000.parquet", index=False)
    (parts / "part-001.parquet").write_bytes(b"PAR1 this is not parquet at all")
    env = {"MLFLOW_TRACKING_URI": trained.settings.tracking_uri}
    args = ["predict", "--data", str(parts), "--config", str(trained.config), "--output", str(tmp_path / "o.jsonl")]
    result = CliRunner().invoke(app, [*args, "--engine", "ray", "--no-progress"], env=env)
    said = [line for line in result.output.splitlines() if "error:" in line]  # (Ray Data's progress lines aside)
    assert result.exit_code == 1 and len(said) == 1 and said[0].startswith(f"error: {parts}/part-001.parquet: ")
    assert not list(tmp_path.glob("o.jsonl*"))
    single = CliRunner().invoke(
        app, ["predict", "--data", str(parts / "part-001.parquet"), *args[3:], "--no-progress"], env=env
    )
    errors = [line for line in single.output.splitlines() if "error:" in line]  # (MLflow's download bars aside)
    assert single.exit_code == 1 and errors == said, single.output  # the part's reader says it on both engines


ODD_IDS = ["007", "1e3", "00042", "0042"]  # Ray Data's own readers made 7.0, 1000.0, 42.0, 42.0 of them


def write_as(frame: pd.DataFrame, path: Path) -> Path:
    """`frame` (every value text) saved as CSV, JSON Lines or Parquet, by the suffix of `path`."""
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def odd_backlog(trained: Trained) -> pd.DataFrame:
    """The backlog with ids and a metadata column whose every value looks like a number (a column of mixed values
    Ray Data's readers keep as text)."""
    frame = backlog(trained)
    frame["ticket_id"] = [*ODD_IDS, *(f"{i:05d}" for i in range(len(ODD_IDS), len(frame)))]
    frame["customer_tier"] = ["3.50", *(["2"] * (len(frame) - 1))]
    return frame


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_ids_are_answered_as_written_by_both_engines(
    ray_here: None, trained: Trained, tmp_path: Path, suffix: str
) -> None:
    frame = odd_backlog(trained)
    data = write_as(frame, tmp_path / f"odd{suffix}")
    run(trained, "--data", str(data), "--output", str(tmp_path / "local.jsonl"))
    run(trained, "--data", str(data), "--output", str(tmp_path / "ray.jsonl"), "--engine", "ray")
    local, on_ray = answers_in(tmp_path / "local.jsonl"), answers_in(tmp_path / "ray.jsonl")
    assert [a["id"] for a in local] == frame["ticket_id"].tolist()
    assert [a["id"] for a in on_ray][: len(ODD_IDS)] == ODD_IDS
    same_answers(local, on_ray)


def rows_on_both(data: Path, config: RouterConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the rows one process scores from `data`, the rows Ray's reading tasks hand to the actors)."""
    one_process = scoring_rows(read_export(data), config, data)
    on_ray = read_backlog(find_backlog(data, config), config).to_pandas()
    return one_process, on_ray.astype(object).where(on_ray.notna(), None)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_every_column_is_read_the_same_by_both_engines(
    ray_here: None, trained: Trained, tmp_path: Path, suffix: str
) -> None:
    config = load_config(trained.config)
    one_process, on_ray = rows_on_both(write_as(odd_backlog(trained), tmp_path / f"odd{suffix}"), config)
    pd.testing.assert_frame_equal(on_ray, one_process)
    assert one_process["ticket_id"].head(len(ODD_IDS)).tolist() == ODD_IDS
    assert one_process["customer_tier"].head(2).tolist() == ["3.50", "2"]


def test_json_lines_and_parquet_keep_their_own_types_on_both_engines(
    ray_here: None, trained: Trained, tmp_path: Path
) -> None:
    """Numbers written as numbers, and a gap: an id 7 is "7" (not "7.0") on both engines, a gap is unknown."""
    config = load_config(trained.config)
    records = [  # a record may leave a field out, or give it as null
        {"ticket_id": 7, "subject": "Charged twice", "body": "refund please", "channel": "email", "customer_tier": 3},
        {"ticket_id": 42, "subject": "Login fails", "channel": "chat", "customer_tier": None},
        {"ticket_id": 1000, "subject": "Invoice", "body": "wrong VAT", "customer_tier": 2},
    ]
    jsonl = tmp_path / "typed.jsonl"
    jsonl.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    frame = pd.DataFrame(records).astype({"customer_tier": "Int64"})
    frame.to_parquet(tmp_path / "typed.parquet", index=False)
    for data in (jsonl, tmp_path / "typed.parquet"):
        one_process, on_ray = rows_on_both(data, config)
        pd.testing.assert_frame_equal(on_ray, one_process, obj=data.name)
        assert one_process["ticket_id"].tolist() == ["7", "42", "1000"], data.name
        assert one_process["customer_tier"].tolist() == ["3", None, "2"], data.name
        assert one_process["body"].tolist() == ["refund please", None, "wrong VAT"], data.name


def failure(trained: Trained, data: Path, output: Path, *engine: str) -> tuple[int, list[str]]:
    """(exit code, lines of output) of a `predict` that should fail."""
    env = {"MLFLOW_TRACKING_URI": trained.settings.tracking_uri}
    args = ["predict", "--data", str(data), "--config", str(trained.config), "--output", str(output)]
    result = CliRunner().invoke(app, [*args, "--no-progress", *engine], env=env)
    return result.exit_code, [line for line in result.output.splitlines() if line.strip()]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_a_missing_column_is_the_same_one_line_on_both_engines(trained: Trained, tmp_path: Path, suffix: str) -> None:
    """Checked on the driver from the file's head, before the model loads or Ray starts: no Ray retry advice."""
    data = write_as(backlog(trained).drop(columns=["ticket_id"]), tmp_path / f"no-ids{suffix}")
    said = {
        engine: failure(trained, data, tmp_path / f"{engine}.jsonl", "--engine", engine) for engine in ("local", "ray")
    }
    assert said["local"] == (1, [f"error: {data}: missing column(s) 'ticket_id'"]), said["local"]
    assert said["ray"] == said["local"], said["ray"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [data.name]


def leave_stale_parts(output: Path) -> None:
    """What a killed run leaves (kill -9 runs no clean-up): three parts of answers under `.partial`."""
    partial = output.with_name(output.name + ".partial")
    partial.mkdir()
    for part in (1, 2, 3):
        (partial / f"part-{part:05d}.jsonl").write_text(json.dumps({"id": f"stale-{part}"}) + "\n", encoding="utf-8")


def test_a_failed_run_leaves_nothing_and_the_next_starts_afresh(
    ray_here: None, trained: Trained, tmp_path: Path
) -> None:
    frame = backlog(trained)
    parts = tmp_path / "backlog"
    parts.mkdir()
    frame.to_csv(parts / "part-000.csv", index=False)
    broken = frame.head(40).to_csv(index=False).splitlines()
    broken[-1] += ",one field too many"  # found by the reading task, not by the header check on the driver
    (parts / "part-001.csv").write_text("\n".join(broken) + "\n", encoding="utf-8")
    output = tmp_path / "scored.jsonl"
    leave_stale_parts(output)
    code, said = failure(trained, parts, Path(f"{output}/"), "--engine", "ray", "--batch-size", "32")
    with pytest.raises(DataError) as one_process:
        read_export(parts / "part-001.csv")
    assert "wrong number of fields" in str(one_process.value)
    errors = [line for line in said if "error:" in line]  # (Ray Data's progress lines aside)
    assert code == 1 and errors == [f"error: {one_process.value}"], said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backlog"]

    leave_stale_parts(output)
    short = write_as(frame.head(20), tmp_path / "short.csv")
    run(trained, "--data", str(short), "--output", f"{output}/", "--engine", "ray")
    assert [a["id"] for a in answers_in(output)] == frame["ticket_id"].head(20).tolist()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backlog", "scored.jsonl", "short.csv"]


def test_a_cluster_that_does_not_answer_is_one_line(trained: Trained, tmp_path: Path) -> None:
    data = tmp_path / "backlog.parquet"
    backlog(trained).to_parquet(data, index=False)
    env = {**os.environ, "MLFLOW_TRACKING_URI": trained.settings.tracking_uri}
    args = ["predict", "--data", str(data), "--config", str(trained.config), "--output", str(tmp_path / "o.jsonl")]
    done = subprocess.run(
        [ESCALATION, *args, "--engine", "ray", "--address", "ray://127.0.0.1:1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == "error: Ray cluster at ray://127.0.0.1:1 did not answer: Connection refused"
