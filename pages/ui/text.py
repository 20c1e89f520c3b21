"""Showing text users wrote: as literal text, never as markdown or HTML."""

from __future__ import annotations

import re

# Every ASCII punctuation character may be backslash-escaped in markdown (CommonMark), which
# also defuses Streamlit's own :directives[...] and $math$.
_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&])")


def plain(text: str) -> str:
    """`text` escaped so st.markdown shows it literally (line breaks kept)."""
    return _SPECIAL.sub(r"\\\1", text).replace("\n", "  \n")


def label(intent: str | None) -> str:
    """An intent as people read it: order_status -> order status."""
    return "—" if not intent else intent.replace("_", " ")
