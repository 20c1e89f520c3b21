"""Stop with a clear page when the database is unreachable or behind the code."""

from __future__ import annotations

import streamlit as st

from core.errors import DatabaseUnavailable, SchemaOutdated
from db.engine import get_engine, ping
from db.migrate import check_schema


def require_database() -> None:
    try:
        engine = get_engine()
        ping(engine)
        check_schema(engine)
    except DatabaseUnavailable as exc:
        st.error(
            f"{exc}\n\nCheck the DATABASE_URL setting and that the database is running.",
            icon=":material/cloud_off:",
        )
        st.stop()
    except SchemaOutdated as exc:
        st.error(str(exc), icon=":material/database:")
        st.stop()
