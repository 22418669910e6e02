"""Who is asking: the merchant (and user) a request acts for.

PLACEHOLDER until the ops API has users and API keys (issue #6): the merchant comes from
the ``X-Merchant-Id`` header and the user from ``X-User-Id``, trusted as sent. Every
endpoint of this package depends on :data:`MerchantScope` only, so replacing
:func:`merchant_scope` with the real authentication is a change in this file alone.
It reads no database row, so an endpoint can call upstream before opening a transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header

from conexapi.kit.errors import Unauthorized

_USER_ID = re.compile(r"^[A-Za-z0-9._@:-]{1,64}$")


@dataclass(frozen=True)
class Scope:
    merchant_id: int
    user_id: str | None = None


def merchant_scope(
    x_merchant_id: Annotated[str | None, Header()] = None,
    x_user_id: Annotated[str | None, Header()] = None,
) -> Scope:
    if not x_merchant_id or not x_merchant_id.isdigit() or len(x_merchant_id) > 18:
        raise Unauthorized("Send the merchant id in the X-Merchant-Id header.")
    if x_user_id is not None and not _USER_ID.match(x_user_id):
        raise Unauthorized("X-User-Id is not a valid user id.")
    return Scope(int(x_merchant_id), x_user_id)


MerchantScope = Annotated[Scope, Depends(merchant_scope)]
