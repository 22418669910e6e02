"""``conexapi init-env``: a ``.env`` for a production install, with fresh secrets."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

from conexapi.kit.crypto import generate_key


def production_env() -> str:
    """The file's text: new secrets every call, and what is still to be set, commented."""
    db_password = secrets.token_urlsafe(24)
    return f"""\
# ConexAPI production settings, written by `conexapi init-env` on {datetime.now(UTC):%Y-%m-%d}.
# Keep this file private and backed up: without CONEXAPI_ENCRYPTION_KEYS the marketplace
# and ERP credentials stored in the database cannot be read. Every setting: .env.example.
CONEXAPI_ENV=production
CONEXAPI_SECRET_KEY={secrets.token_urlsafe(48)}
CONEXAPI_ENCRYPTION_KEYS={generate_key()}

# Where the service finds its database and Redis, and where it is reached; set them
# (docker-compose.yml sets the first two itself).
# CONEXAPI_DATABASE_URL=mysql+aiomysql://conexapi:{db_password}@127.0.0.1:3306/conexapi
# CONEXAPI_REDIS_URL=redis://127.0.0.1:6379/0
# CONEXAPI_PUBLIC_URL=https://conexapi.example.co

# Passwords for the MariaDB of docker-compose.yml (ConexAPI itself ignores them).
MARIADB_PASSWORD={db_password}
MARIADB_ROOT_PASSWORD={secrets.token_urlsafe(24)}
"""


def write_new(path: Path, text: str, *, replace: bool) -> None:
    """Write ``text`` readable by the owner only; FileExistsError if ``path`` exists and
    not ``replace`` (checked by the create itself, so two runs cannot both write)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if replace else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        os.fchmod(file.fileno(), 0o600)  # a replaced file keeps its old mode otherwise
        file.write(text)
