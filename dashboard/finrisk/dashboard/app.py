"""The dashboard's Streamlit script (`finrisk dashboard` runs it): four pages over the real
stores (finrisk/dashboard/stores.py), each saying "nothing yet" for an empty store and naming a
store it cannot reach, never a traceback."""

from __future__ import annotations

import streamlit as st

from finrisk.dashboard.navigation import pages

# No page icon: an icon by name is fetched from a font CDN, which a bank's network may block.
st.set_page_config(page_title="finrisk", layout="wide")
st.navigation(list(pages().values())).run()
