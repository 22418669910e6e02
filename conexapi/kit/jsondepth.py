"""How deeply a JSON document from outside may nest, checked before anything parses it.

Python's JSON parsers recurse once per level of nesting. A document a few thousand
levels deep raises ``RecursionError`` (not ``ValueError``) in whichever parser meets it
first, so it escapes every ``except ValueError`` and ends as a 500; one a little
shallower passes the first parser and fails later in another that runs on a deeper
stack (the JSON column's, the response's). Refusing at the door what nests deeper than
:data:`MAX_DEPTH` keeps every later parser far from that limit.

The check counts brackets outside strings without parsing, so it is safe on any input,
and is a C-speed count for the usual document (few brackets in all).
"""

from __future__ import annotations

import re

#: Levels of arrays and objects a document may nest. Notifications and API bodies use
#: two or three; MariaDB's JSON columns refuse 32 and more (``JSON_VALID``), so anything
#: allowed here is also kept as JSON there.
MAX_DEPTH = 20

# A JSON string as one token (so brackets inside it are not counted), or one bracket.
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_OPEN = frozenset(b"[{")


def nested_deeper_than(data: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON text ``data`` (UTF-8) nests arrays and objects beyond ``limit``.

    Exact for valid JSON. For invalid JSON it may say more or less than a parser would
    see after the first error, but a parser stops at that error: the levels it enters
    are never more than counted here.
    """
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    depth = 0
    for token in _TOKENS.finditer(data):
        first = token.group()[0]
        if first in _OPEN:
            depth += 1
            if depth > limit:
                return True
        elif first != ord('"'):
            depth -= 1
    return False
