"""How the tests import each other, checked: a test module never imports another test module
(nor a conftest); helpers shared across folders live in ``tests/support``; a folder's own
helpers serve that folder and the folders below it; the ids and factories the tests use are
theirs, not ``conexapi/demo.py``'s (only the demo's own tests import the demo).

Why: a test module imported by another runs its module-level code twice under two names,
moves and renames break in the folder nobody looked at, and a test that seeds through the
demo changes meaning whenever the demo's script does.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SHARED = "tests.support"
DEMO = "conexapi.demo"


def _module_of(path: Path) -> str:
    return ".".join(("tests", *path.relative_to(TESTS).with_suffix("").parts))


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every module the file imports; ``from a import b`` yields ``a.b``
    too when ``b`` is a module."""
    package = _module_of(path).rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, base
            for alias in node.names:
                if _is_module(f"{base}.{alias.name}"):
                    yield node.lineno, f"{base}.{alias.name}"


def _is_module(name: str) -> bool:
    path = TESTS.parent.joinpath(*name.split("."))
    return path.is_dir() or path.with_suffix(".py").is_file()


def _problem(importer: str, imported: str, file_name: str) -> str | None:
    if imported == DEMO or imported.startswith(DEMO + "."):
        if file_name != "test_demo.py":
            return "imports the demo; take ids and factories from tests.support"
        return None
    if not imported.startswith("tests."):
        return None
    last = imported.rsplit(".", 1)[-1]
    if last.startswith("test_"):
        return "imports a test module; move what it shares into a helper"
    if last == "conftest":
        return "imports a conftest; move what it shares into a helper (fixtures need no import)"
    if imported == SHARED or imported.startswith(SHARED + "."):
        return None
    helper_package = imported.rsplit(".", 1)[0]
    importer_package = importer.rsplit(".", 1)[0]
    if importer_package == helper_package or importer_package.startswith(helper_package + "."):
        return None
    if TESTS.parent.joinpath(*imported.split(".")).is_dir():
        return None  # a package: ``from tests.x import helper`` is judged by its second form
    return f"uses another folder's helper; shared helpers belong in {SHARED}"


def layout_problems(root: Path = TESTS) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        importer = _module_of(path)
        for line, imported in _imports(path):
            problem = _problem(importer, imported, path.name)
            if problem:
                found.append(f"{path.relative_to(root.parent)}:{line}: {imported}: {problem}")
    return sorted(set(found))


def test_no_test_module_imports_another_test_module_or_the_demo() -> None:
    problems = layout_problems()
    assert not problems, "\n".join(problems)


def test_the_check_sees_each_kind_of_bad_import() -> None:
    """The check itself: each forbidden import is found (a check that finds nothing proves
    nothing), and the allowed ones are not."""
    assert _problem("tests.a.test_x", "tests.a.test_y", "test_x.py")
    assert _problem("tests.a.test_x", "tests.a.conftest", "test_x.py")
    assert _problem("tests.a.test_x", "tests.b.helpers", "test_x.py")
    assert _problem("tests.a.test_x", "conexapi.demo", "test_x.py")
    assert _problem("tests.a.test_x", "conexapi.demo.SELLER_ID", "test_x.py")
    assert _problem("tests.a.test_x", "tests.support.ids", "test_x.py") is None
    assert _problem("tests.a.b.test_x", "tests.a.helpers", "test_x.py") is None
    assert _problem("tests.a.test_x", "tests.a.helpers", "test_x.py") is None
    assert _problem("tests.e2e.test_demo", "conexapi.demo", "test_demo.py") is None
    assert _problem("tests.a.test_x", "conexapi.sync.runner", "test_x.py") is None
