"""Quality benchmark: baselines and the product's pipeline on the same folds (see `escalation benchmark --help`).

python bench/quality.py                       # the sample data, and ../shared/data/it_tickets when present
python bench/quality.py --data FILE --config FILE --name NAME [--set model.class_weight=balanced]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from escalation.cli import app  # noqa: E402

if __name__ == "__main__":
    if len(sys.argv) == 1:
        runs = [
            ["--data", str(ROOT / "data/tickets.csv"), "--config", str(ROOT / "data/config.yaml"), "--name", "sample"]
        ]
        shared = ROOT.parent / "shared/data/it_tickets/tickets.csv"
        if shared.exists():
            runs.append(
                ["--data", str(shared), "--config", str(ROOT / "bench/configs/shared_it.yaml"), "--name", "shared_it"]
            )
        for args in runs:
            try:
                app(["benchmark", *args], standalone_mode=False)
            except SystemExit as stop:
                if stop.code:
                    raise
    else:
        app(["benchmark", *sys.argv[1:]])
