"""Every test the documentation and the code's comments point to exists.

docs/ARCHITECTURE.md names the test that holds each guarantee, and a version pin names the
twin test that keeps a fast path honest: a moved or renamed test would leave a reader (or
whoever widens the pin) looking for nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: `tests/x/test_y.py`, optionally followed by `::name` (parametrisation aside).
REFERENCE = re.compile(r"(tests/[\w/]+\.py)(?:::\s*(\w+))?")
PLACES = ["README.md", "docs", "pyproject.toml", "conexapi", "workers", "connectors", "bench"]


def _texts() -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    for place in PLACES:
        path = ROOT / place
        files = [path] if path.is_file() else sorted(path.rglob("*"))
        for file in files:
            if file.suffix in {".md", ".py", ".toml"} and file.is_file():
                found.append((file, file.read_text("utf-8")))
    return found


def test_every_test_named_in_docs_and_comments_exists() -> None:
    missing: list[str] = []
    seen = 0
    for file, text in _texts():
        # A name continued on the next line after `::` (a wrapped comment) is read too.
        for match in REFERENCE.finditer(text.replace("::\n", "::")):
            seen += 1
            target = ROOT / match.group(1)
            where = f"{file.relative_to(ROOT)}: {match.group(0)}"
            if not target.is_file():
                missing.append(where)
                continue
            name = match.group(2)
            if name and not re.search(rf"\bdef {re.escape(name)}\b", target.read_text("utf-8")):
                missing.append(where)
    assert seen > 20, "the scan found almost no references: it is looking in the wrong place"
    assert not missing, missing
