"""The dashboard's pages: one definition, for the navigation and for the links between pages
(views.common.link_to_customer), which it registers."""

from __future__ import annotations

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from finrisk.dashboard.views import common, customers, live, models, monitoring


def pages() -> dict[str, StreamlitPage]:
    found = {
        "live": st.Page(live.render, title="Live", url_path="live", default=True),
        "customers": st.Page(customers.render, title="Customers", url_path="customers"),
        "models": st.Page(models.render, title="Models", url_path="models"),
        "monitoring": st.Page(monitoring.render, title="Monitoring", url_path="monitoring"),
    }
    common.PAGES.update(found)
    return found
