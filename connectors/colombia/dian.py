"""The DIAN's check digit ("dígito de verificación", DV) of a NIT.

The algorithm is the DIAN's (Orden Administrativa 4 de 1989, as published with the RUT
forms): the digits of the NIT, read right to left, are multiplied by the prime weights
3, 7, 13, 17, 19, 23, 29, 37, 41, 43, 47, 53, 59, 67, 71; the sum is taken modulo 11, and a
remainder r of 0 or 1 is the DV itself, any other gives 11 - r.
"""

from __future__ import annotations

_WEIGHTS = (3, 7, 13, 17, 19, 23, 29, 37, 41, 43, 47, 53, 59, 67, 71)


def nit_check_digit(nit: str) -> int:
    """The DV of ``nit`` (digits only, without the DV; 1 to 15 digits).

    Raises ValueError for anything else, so a malformed identification is refused where it
    is read instead of reaching an electronic invoice with a made-up digit.
    """
    if not nit.isascii() or not nit.isdigit() or not 1 <= len(nit) <= len(_WEIGHTS):
        raise ValueError(f"a NIT is 1 to {len(_WEIGHTS)} digits without its check digit: {nit!r}")
    total = sum(int(d) * w for d, w in zip(reversed(nit), _WEIGHTS, strict=False))
    r = total % 11
    return r if r < 2 else 11 - r
