"""The code version a run was made with, for its record: `git describe`, or "unknown" without git."""

from __future__ import annotations

import subprocess
from pathlib import Path

UNKNOWN = "unknown"


def code_version() -> str:
    """Short commit of the checkout this package runs from, "-dirty" when it has uncommitted changes; "unknown"
    when git is missing, slow or the package is not in a checkout (an installed wheel)."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else UNKNOWN
