"""Logging to stderr at the configured level. Never log secrets or message texts at INFO."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str) -> None:
    """Send Trellis logs to stderr at `level` (idempotent)."""
    root = logging.getLogger("trellis")
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    if not any(getattr(h, "_trellis", False) for h in logging.getLogger().handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._trellis = True  # type: ignore[attr-defined]
        logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.WARNING)
    for name in ("core", "db", "trellis", "pages"):
        logging.getLogger(name).setLevel(numeric)
    root.setLevel(numeric)
