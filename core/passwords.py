"""Password hashing with argon2 (argon2-cffi); plain passwords are never stored or logged."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from core.errors import InvalidInput

_HASHER = PasswordHasher()
# Verified against when the username is unknown, so both paths cost the same time.
_DUMMY_HASH = _HASHER.hash("trellis-timing-equalizer")


def hash_password(password: str, *, min_length: int) -> str:
    """Hash a new password after checking it is long enough."""
    if len(password) < min_length:
        raise InvalidInput(f"Passwords need at least {min_length} characters.")
    if password.strip() != password:
        raise InvalidInput("Passwords cannot start or end with spaces.")
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; always spends one argon2 verification."""
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False
