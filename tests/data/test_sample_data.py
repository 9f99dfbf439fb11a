from pathlib import Path

from features.config import load_config
from training.sample_data import FIRST_LINE, MANAGER, generate, write_sample


def test_same_seed_same_export() -> None:
    assert generate(200, seed=1).equals(generate(200, seed=1))
    assert not generate(200, seed=1).equals(generate(200, seed=2))


def test_sample_has_a_desk_specialists_and_manager_cues() -> None:
    frame = generate(3000)
    counts = frame["resolved_by"].value_counts()
    specialists = set(counts.index) - {FIRST_LINE, MANAGER}
    assert 4 <= len(specialists) <= 6
    assert 0.35 < counts[FIRST_LINE] / len(frame) < 0.6
    manager = frame.loc[frame["resolved_by"] == MANAGER, "body"].str.lower()
    for cue in ("legal action", "third time", "dispute the charge", "unacceptable", "speak to your manager"):
        assert manager.str.contains(cue).any(), cue
    assert frame["body"].str.contains("_x000D_").any()
    assert frame["ticket_id"].is_unique and frame["created_at"].is_monotonic_increasing


def test_written_config_matches_the_export(tmp_path: Path) -> None:
    data, config = write_sample(tmp_path, rows=150)
    cfg = load_config(config)
    header = data.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert set(cfg.columns.text + cfg.columns.metadata + [cfg.columns.target]) <= set(header)
    assert cfg.teams.first_line == [FIRST_LINE] and cfg.teams.hierarchical == [MANAGER]


def test_project_sample_data_is_the_generator_output() -> None:
    shipped = Path(__file__).parents[2] / "data"
    assert (shipped / "tickets.csv").read_text(encoding="utf-8") == generate(3000).to_csv(index=False)
    load_config(shipped / "config.yaml")
