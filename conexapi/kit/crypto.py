"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) under a ring of keys.

``CONEXAPI_ENCRYPTION_KEYS`` lists Fernet keys newest first. Everything is written under
the newest key and read under any of them, so a new key can be put in front, the data
re-encrypted with ``conexapi rotate-keys``, and the old key dropped afterwards. The
ciphertext carries no key id: reading tries the keys in order (Fernet's HMAC tells a
wrong key from a right one without ambiguity).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr


class DecryptionError(Exception):
    """No configured key opens the value (wrong key set or corrupted data)."""


class KeyConfigError(ValueError):
    """The configured key list is empty or holds something that is not a Fernet key."""


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


class KeyRing:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise KeyConfigError("no encryption key configured")
        try:
            self._fernets = [Fernet(k.encode("ascii")) for k in keys]
        except (ValueError, UnicodeEncodeError) as exc:
            # Never echo the key material itself.
            raise KeyConfigError(
                "an encryption key is not a valid Fernet key (32 url-safe base64 bytes)"
            ) from exc
        self._multi = MultiFernet(self._fernets)

    @classmethod
    def parse(cls, value: str | SecretStr) -> KeyRing:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        return _cached_ring(raw)

    @property
    def size(self) -> int:
        return len(self._fernets)

    def encrypt(self, plaintext: bytes) -> str:
        return self._multi.encrypt(plaintext).decode("ascii")

    def decrypt(self, token: str) -> bytes:
        try:
            return self._multi.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError) as exc:
            raise DecryptionError("no configured encryption key opens this value") from exc

    def encrypt_str(self, plaintext: str) -> str:
        return self.encrypt(plaintext.encode("utf-8"))

    def decrypt_str(self, token: str) -> str:
        return self.decrypt(token).decode("utf-8")

    def encrypt_json(self, value: dict[str, Any]) -> str:
        return self.encrypt(json.dumps(value, separators=(",", ":"), sort_keys=True).encode())

    def decrypt_json(self, token: str) -> dict[str, Any]:
        data = json.loads(self.decrypt(token))
        if not isinstance(data, dict):
            raise DecryptionError("encrypted value is not a JSON object")
        return data

    def is_current(self, token: str) -> bool:
        """True when ``token`` is already under the newest key."""
        try:
            self._fernets[0].decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            return False
        return True

    def rotate(self, token: str) -> str:
        """Re-encrypt under the newest key (the original timestamp is kept)."""
        try:
            return self._multi.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeEncodeError) as exc:
            raise DecryptionError("no configured encryption key opens this value") from exc


@lru_cache(maxsize=8)
def _cached_ring(raw: str) -> KeyRing:
    return KeyRing([k.strip() for k in raw.split(",") if k.strip()])


__all__ = ["DecryptionError", "KeyConfigError", "KeyRing", "generate_key"]
