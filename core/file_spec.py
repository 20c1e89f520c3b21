"""How to read one file: the part of an import profile that parsing needs.

An import profile (core.profiles) stores a ReadSpec for a source platform; core.dataset reads
files with one. Plain data, shared by both without either importing the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["examples", "conversations"]
FileFormat = Literal["csv", "jsonl", "rasa"]

# Trellis fields a file can supply, per kind; the first ones listed are required.
EXAMPLE_FIELDS = ("text", "intent", "response", "confidence", "timestamp")
EXAMPLE_REQUIRED = ("text", "intent")
CONVERSATION_FIELDS = (
    "conversation_id",
    "customer_id",
    "role",
    "text",
    "timestamp",
    "escalated",
    "resolved",
)
CONVERSATION_REQUIRED = ("conversation_id", "role", "text")

# Clean-up steps a profile may apply to message text, in this order.
CLEANUP_STEPS = (
    "strip_html",  # drop tags and unescape entities (e-mail and help-desk exports)
    "strip_quoted_reply",  # drop "On … wrote:" and lines starting with ">"
    "strip_signature",  # drop everything after a line that is exactly "-- " or "--"
    "collapse_whitespace",  # runs of spaces and newlines become one space
)


@dataclass(frozen=True)
class ReadSpec:
    """How to read files of one source: format, field mapping and text clean-up."""

    kind: Kind = "examples"
    file_format: FileFormat = "csv"
    # Trellis field -> the file's column (CSV) or key (JSONL; dots reach nested keys: "msg.body").
    # Fields not mapped are read from a column/key of the same name.
    mapping: Mapping[str, str] = field(default_factory=dict)
    delimiter: str | None = None  # CSV; None detects one of , ; TAB |
    encoding: str | None = None  # None: UTF-8 (a BOM is fine), else cp1252 when not UTF-8
    date_format: str | None = None  # strptime format of timestamps; None: ISO 8601
    cleanup: tuple[str, ...] = ()

    def source_key(self, trellis_field: str) -> str:
        return self.mapping.get(trellis_field, trellis_field)
