"""Every task name lives in ``conexapi/kit/tasks.py``: the workers register exactly those,
and no other module spells one out."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from conexapi.kit import tasks as names
from workers.celery_app import app

ROOT = Path(__file__).resolve().parents[2]
DECLARED = {value for key, value in vars(names).items() if key.isupper()}


def test_the_workers_register_exactly_the_declared_names() -> None:
    import workers.tasks  # noqa: F401  (registers the tasks on the app)

    registered = {name for name in app.tasks if name.startswith("conexapi.")}
    assert DECLARED and registered == DECLARED


def test_no_other_module_spells_out_a_task_name() -> None:
    home = ROOT / "conexapi" / "kit" / "tasks.py"
    found = []
    for package in ("conexapi", "workers", "connectors"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == home:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Constant) and node.value in DECLARED:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value}")
    assert found == []


def test_the_names_import_without_celery() -> None:
    code = "import sys, conexapi.kit.tasks; assert 'celery' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
