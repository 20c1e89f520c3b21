"""Errors core raises; each carries a message fit to show a user as is."""

from __future__ import annotations

from pydantic import ValidationError


class TrellisError(Exception):
    """Base of every error core raises on purpose."""


class InvalidInput(TrellisError):
    """The input is wrong; nothing was written."""


class NotFound(TrellisError):
    """No such thing in the actor's shop."""


class PermissionDenied(TrellisError):
    """The actor's role may not do this."""


class StaleEdit(TrellisError):
    """Someone changed the row since it was loaded; nothing was overwritten. `current` may hold
    the row's current state, for the page to offer instead."""

    def __init__(self, message: str, *, current: object = None) -> None:
        super().__init__(message)
        self.current = current


class LoginFailed(TrellisError):
    """Wrong username or password (deliberately one generic message)."""


class AccountLocked(TrellisError):
    """Too many failed logins in a row."""


class DatabaseUnavailable(TrellisError):
    """The database named by DATABASE_URL cannot be reached."""


class SchemaOutdated(TrellisError):
    """The database is behind this version's migrations."""


class FileRefused(InvalidInput):
    """A file is refused as a whole (structure, encoding, limits); nothing was written."""


def validation_message(exc: ValidationError) -> str:
    """Pydantic's errors as one plain sentence: 'field: problem; other: problem'."""
    parts = []
    for error in exc.errors():
        where = ".".join(map(str, error["loc"])) or "value"
        parts.append(f"{where} {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)
