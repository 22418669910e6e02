from __future__ import annotations

import pytest

from conexapi.kit.crypto import DecryptionError, KeyConfigError, KeyRing, generate_key


def test_round_trip_and_ciphertext_hides_plaintext() -> None:
    ring = KeyRing([generate_key()])
    sealed = ring.encrypt_json({"access_token": "APP_USR-secret-123"})
    assert "APP_USR" not in sealed
    assert ring.decrypt_json(sealed) == {"access_token": "APP_USR-secret-123"}


def test_a_different_key_cannot_read() -> None:
    sealed = KeyRing([generate_key()]).encrypt_str("s3cret")
    with pytest.raises(DecryptionError):
        KeyRing([generate_key()]).decrypt_str(sealed)


def test_old_keys_read_newest_writes_and_rotate_moves_to_newest() -> None:
    old, new = generate_key(), generate_key()
    sealed_old = KeyRing([old]).encrypt_str("value")
    ring = KeyRing.parse(f"{new}, {old}")
    assert ring.decrypt_str(sealed_old) == "value"
    assert not ring.is_current(sealed_old)
    assert ring.is_current(ring.encrypt_str("x"))
    rotated = ring.rotate(sealed_old)
    assert ring.is_current(rotated)
    assert KeyRing([new]).decrypt_str(rotated) == "value"
    with pytest.raises(DecryptionError):
        KeyRing([old]).decrypt_str(rotated)


def test_bad_key_configuration_does_not_echo_the_key() -> None:
    with pytest.raises(KeyConfigError) as info:
        KeyRing.parse("not-a-fernet-key-but-a-secret-value")
    assert "secret-value" not in str(info.value)
    with pytest.raises(KeyConfigError):
        KeyRing.parse(" , ")
