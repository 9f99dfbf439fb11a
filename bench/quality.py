"""Quality benchmark: baselines and the product's pipeline on the same folds (see `escalation benchmark --help`).

python bench/quality.py                       # the sample data, and ../shared/data's IT and multilingual sets
                                              # when present (the latter also trained on English, scored on German)
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
        shared = ROOT.parent / "shared/data"
        if (shared / "it_tickets/tickets.csv").exists():
            it = [
                "--data",
                str(shared / "it_tickets/tickets.csv"),
                "--config",
                str(ROOT / "bench/configs/shared_it.yaml"),
            ]
            runs.append([*it, "--name", "shared_it"])
        if (shared / "synthetic_multilang/tickets_en_de.csv").exists():
            multi = [
                "--data",
                str(shared / "synthetic_multilang/tickets_en_de.csv"),
                "--config",
                str(ROOT / "bench/configs/shared_multilang.yaml"),
            ]
            runs.append([*multi, "--name", "shared_multilang"])
            runs.append([*multi, "--name", "shared_multilang_en_to_de", "--split-by", "language:en:de"])
        for args in runs:
            try:
                app(["benchmark", *args], standalone_mode=False)
            except SystemExit as stop:
                if stop.code:
                    raise
    else:
        app(["benchmark", *sys.argv[1:]])
