"""The alerting rules shipped in docs/alerts/ pass their promtool tests (series that fire each alert and series that
do not), and those tests fail when a rule is loosened."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ALERTS = Path(__file__).parents[2] / "docs" / "alerts"
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(
    PROMTOOL is None and not os.environ.get("ESCALATION_REQUIRE_PROMTOOL"),
    reason="promtool not installed (make test installs Debian's prometheus package)",
)


def promtool(*args: str, cwd: Path = ALERTS) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None, "promtool is required here (ESCALATION_REQUIRE_PROMTOOL): run make promtool"
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_rules_are_valid_and_pass_their_tests() -> None:
    checked = promtool("check", "rules", "escalation.rules.yml")
    assert checked.returncode == 0 and "SUCCESS: 3 rules found" in checked.stdout, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "escalation.rules.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.mark.parametrize(
    ("rule", "loosened"),
    [
        ("> 0.15\n", "> 0.5\n"),
        ("- 0.15\n", "- 0.6\n"),
        (
            "> 0.15\n          and sum(increase(escalation_outcomes_total[7d]))",
            "> 0.9\n          and sum(increase(escalation_outcomes_total[7d]))",
        ),
    ],
)
def test_a_loosened_rule_fails_its_tests(tmp_path: Path, rule: str, loosened: str) -> None:
    for name in ("escalation.rules.yml", "escalation.rules.test.yml"):
        shutil.copy(ALERTS / name, tmp_path / name)
    rules = (tmp_path / "escalation.rules.yml").read_text()
    assert rule in rules
    (tmp_path / "escalation.rules.yml").write_text(rules.replace(rule, loosened, 1))
    tested = promtool("test", "rules", "escalation.rules.test.yml", cwd=tmp_path)
    assert tested.returncode != 0, tested.stdout
