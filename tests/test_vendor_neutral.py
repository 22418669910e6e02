"""The core names no vendor and no country: a pair's rules live in its connectors.

Code under ``conexapi/`` and ``workers/`` is scanned token by token: names, string literals
and f-string parts. Comments and docstrings are prose and are left out: they may say which
service a general rule was first written for. The demo's wiring of the first pair is the
one place allowed to name it.

``KNOWN_OFFENDERS`` lists what still names a vendor, each with why it is still there. The
count per file must match exactly: a file that gains a name fails, and a file that loses
one fails until its entry is lowered or removed, so the list only shrinks.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("conexapi", "workers")

#: Vendor and country names (and their short forms) that must not appear in core code.
NAMES = re.compile(
    r"mercado[ _-]?libre|\bmeli\b|siigo|shopify|alegra|colombia|bogot|\bdian\b|\bdane\b"
    r"|\bMCO\b|\bMLM\b|\bMLA\b|\bMLB\b|\bMLC\b",
    re.IGNORECASE,
)

#: The demo wires the first pair (Mercado Libre → Siigo) by name: that is its job.
ALLOWED = {"conexapi/demo.py"}

#: path → (number of tokens naming a vendor, why it is still there).
KNOWN_OFFENDERS: dict[str, tuple[int, str]] = {}


def _docstring_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        first = node.body[0] if node.body else None
        if (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
            and first.end_lineno is not None
        ):
            lines.update(range(first.lineno, first.end_lineno + 1))
    return lines


_CODE_TOKENS = {
    tokenize.NAME,
    tokenize.STRING,
    getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING),
}


def vendor_tokens(source: str) -> list[tuple[int, str]]:
    """(line, token) for every code token that names a vendor or a country."""
    docstrings = _docstring_lines(ast.parse(source))
    found = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in _CODE_TOKENS:
            continue
        if tok.type == tokenize.STRING and tok.start[0] in docstrings:
            continue
        if NAMES.search(tok.string):
            found.append((tok.start[0], tok.string))
    return found


def scan() -> dict[str, list[tuple[int, str]]]:
    hits: dict[str, list[tuple[int, str]]] = {}
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            found = vendor_tokens(path.read_text(encoding="utf-8"))
            if found:
                hits[rel] = found
    return hits


def test_the_scanner_sees_names_in_code_but_not_in_prose() -> None:
    source = (
        '"""Siigo wrote this rule first."""\n'
        "# Mercado Libre sends these\n"
        'ZONE = "America/Bogota"\n'
        "def siigo_total() -> None:\n"
        '    """For Shopify too."""\n'
        '    print(f"Venta {x} en Colombia")\n'
        "SITE = 'MCO'\n"
    )
    assert [line for line, _ in vendor_tokens(source)] == [3, 4, 6, 7]


def test_no_vendor_or_country_is_named_in_core_code() -> None:
    hits = scan()
    # The demo names the pair it wires: if the scan does not see it, it sees nothing.
    assert all(hits.get(path) for path in ALLOWED), "the scan misses the demo's wiring"
    for path in ALLOWED:
        del hits[path]
    problems = []
    for path, found in sorted(hits.items()):
        known = KNOWN_OFFENDERS.get(path)
        if known is None:
            problems.append(f"{path} names a vendor in code: {found}")
        elif len(found) != known[0]:
            problems.append(
                f"{path}: {len(found)} vendor names in code, {known[0]} known "
                f"(lower the count when you remove one; never raise it): {found}"
            )
    for path in sorted(set(KNOWN_OFFENDERS) - set(hits)):
        problems.append(f"{path} no longer names a vendor: remove it from KNOWN_OFFENDERS")
    assert not problems, "\n".join(problems)
