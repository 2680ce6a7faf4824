"""What every page shares: the settings and stores of this process, and how an empty or an
unreachable store is shown."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from finrisk.dashboard.stores import Read, Unavailable, Warehouse
from finrisk.settings import Settings

# The app's pages by name (finrisk.dashboard.navigation registers them), for links between them.
PAGES: dict[str, Any] = {}


@st.cache_resource
def settings() -> Settings:
    return Settings()


@st.cache_resource
def warehouse() -> Warehouse:
    return Warehouse(settings())


def usable(read: Read, empty: str) -> pd.DataFrame | None:
    """The rows, or None after showing why there are none: a banner naming an unreachable
    store, or `empty` (what will fill it) for a store with nothing yet."""
    if isinstance(read, Unavailable):
        st.error(read.message(), icon=":material/cloud_off:")
        return None
    if read.empty:
        st.info(f"Nothing yet: {empty}", icon=":material/hourglass_empty:")
        return None
    return read


def parsed(value: Any) -> Any:
    """A JSON column's value (reasons, recommendations, PSI per feature), or None."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def link_to_customer(user_id: str) -> None:
    """A link to the customer's page that stays inside the app (no reload, nothing fetched)."""
    st.page_link(PAGES["customers"], label=user_id, query_params={"user": user_id})
