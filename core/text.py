"""Text normalization and the hashes that group and de-duplicate messages."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import datetime

_SPACE = re.compile(r"\s+")
_NUMBER = re.compile(r"\d+(?:[.,:/-]\d+)*")
_PUNCTUATION = re.compile(r"[^\w\s']|(?<!\w)'|'(?!\w)")


def normalize_text(text: str) -> str:
    """Unicode-normalized, lower-cased, single-spaced, trimmed: what counts as 'the same text'."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip().lower()


def near_identical(normal: str) -> str:
    """The form of an already normalized text that near-identical messages share: punctuation
    and numbers do not matter ("Where is order #1234?" ~ "where is order 5678")."""
    masked = _PUNCTUATION.sub(" ", _NUMBER.sub("0", normal))
    return _SPACE.sub(" ", masked).strip() or normal


def text_hash(text: str) -> str:
    """Groups repeats of one message: near-identical texts share it (see near_identical)."""
    return hashlib.sha256(near_identical(normalize_text(text)).encode()).hexdigest()


def content_hash(text: str, label: str | None) -> str:
    """De-duplicates labelled data: normalized text plus its label."""
    key = normalize_text(text) + "\x1f" + (label or "").strip().lower()
    return hashlib.sha256(key.encode()).hexdigest()


def message_key(external_id: str, role: str, text: str, when: datetime | None) -> str:
    """Message.dedupe_key: the same message of the same conversation at the same time."""
    stamp = when.isoformat() if when else ""
    key = "\x1f".join((external_id, role, normalize_text(text), stamp))
    return hashlib.sha256(key.encode()).hexdigest()
