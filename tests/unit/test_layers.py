"""The design card's boundaries, read from every import statement (lazy ones inside functions too)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imports(package: str) -> list[tuple[str, str]]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            found += [(path.relative_to(ROOT).as_posix(), name) for name in names]
    return found


def crossing(package: str, forbidden: set[str]) -> list[tuple[str, str]]:
    return [(where, name) for where, name in imports(package) if name.split(".")[0] in forbidden]


def test_serving_never_imports_training() -> None:
    assert crossing("serving", {"training"}) == []


def test_features_import_neither_side() -> None:
    """With no exception: the presenter, which the pyfunc shows answers through too, knows no HTTP and lives in
    features/model beside the typed answers it presents."""
    assert crossing("features", {"training", "serving", "escalation"}) == []


def test_only_the_app_imports_route_modules() -> None:
    """Routes are the HTTP edge: what they and others share (scoring a ticket) lives beside them, in a service."""
    found = [
        (where, name)
        for package in ("features", "training", "serving", "escalation", "bench")
        for where, name in imports(package)
        if name.startswith("serving.routes") and where != "serving/app.py"
    ]
    assert found == []


def test_the_check_sees_imports_inside_functions() -> None:
    assert ("features/model/pyfunc.py", "features.settings") in imports("features")  # in environment_masker only
    assert any(name.startswith("training.") for where, name in imports("escalation") if where == "escalation/cli.py")
