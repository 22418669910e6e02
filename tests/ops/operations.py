"""The /api/v1 operations as the ops tests walk them: which are about the caller itself,
which are admin-only, and a valid-looking body for each."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

#: Operations about the caller itself, not about any merchant's objects.
SELF = {"/api/v1/auth/token", "/api/v1/auth/logout", "/api/v1/auth/me"}
#: Admin-only: an operator is refused before anything is looked up.
ADMIN_ONLY = re.compile(r"^/api/v1/(users|api-keys)(/|$)")


def admin_only(method: str, path: str) -> bool:
    writes_merchants = method != "get" and re.match(r"^/api/v1/merchants(/\{merchant_id\})?$", path)
    return bool(ADMIN_ONLY.match(path) or writes_merchants)


CSV = "kind,source_value,target_value\nsku,SKU-9,P-9\n"


def request_body(method: str, path: str) -> dict[str, Any]:
    if path == "/api/v1/connections/{connector}":
        return {"json": {"username": "someone@siigo.co", "access_key": "0123456789"}}
    if path.endswith("/mappings/import"):
        return {"content": CSV}
    bodies: dict[tuple[str, str], Any] = {
        ("put", "/api/v1/pipelines/{pipeline_id}/mappings"): [
            {"kind": "sku", "source_value": "SKU-9", "target_value": "P-9"}
        ],
        ("patch", "/api/v1/pipelines/{pipeline_id}"): {"name": "renamed"},
        ("patch", "/api/v1/merchants/{merchant_id}"): {"name": "renamed"},
        ("post", "/api/v1/pipelines/{pipeline_id}/reports"): {"day": date.today().isoformat()},
    }
    if (method, path) in bodies:
        return {"json": bodies[(method, path)]}
    if method in ("post", "put", "patch"):
        return {"json": {}}
    return {}
