"""Monitoring: drift per window and model version against the training reference, the latest
window's PSI per feature, and realized recall and alert precision once labels come back."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from finrisk.dashboard.stores import Unavailable
from finrisk.dashboard.views.common import parsed, usable, warehouse

# PSI at or above this is a major shift (finrisk.monitoring.drift.MAJOR).
MAJOR = 0.25


def render() -> None:
    st.title("Monitoring")
    wh = warehouse()
    windows = wh.windows()
    frame = usable(
        windows,
        "no monitoring window (the bridge publishes one per window and model version; "
        "`finrisk labels load` puts them in model_monitoring)",
    )
    if frame is not None:
        _drift(frame)
    if isinstance(windows, Unavailable):
        return  # the same store: asking again would only wait again
    _realized(wh)


def _drift(windows: pd.DataFrame) -> None:
    windows = windows.assign(
        series=windows["model"] + " v" + windows["model_version"] + " (" + windows["role"] + ")"
    )
    st.subheader("Worst feature PSI per window")
    st.caption(f"PSI ≥ {MAJOR} is a major shift; the retraining policy wants it sustained")
    # Points, not lines: a short run has one window per version.
    st.scatter_chart(windows, x="window_end", y="max_feature_psi", color="series")
    latest = windows.sort_values("window_end").groupby("series").tail(1)
    for _, row in latest.iterrows():
        psi = parsed(row["feature_psi"]) or {}
        st.markdown(
            f"**{row['series']}**, window ending {row['window_end']}: "
            f"{int(row['transactions']):,} transactions, drift {row['drift_level']}, "
            f"alert rate {row['alert_rate']:.4f} (reference {row['reference_alert_rate']:.4f})"
        )
        if psi:
            ranked = pd.Series(psi, name="PSI").sort_values(ascending=False).head(12)
            st.bar_chart(ranked)


def _realized(wh: object) -> None:
    st.subheader("Realized quality (confirmed labels)")
    days = usable(
        wh.realized(),  # type: ignore[attr-defined]
        "no labelled transaction (outcomes arrive on the labels topic; `finrisk labels load` "
        "joins them to the scored records)",
    )
    if days is None:
        return
    champion = days[days["role"] == "champion"]
    if not champion.empty:
        chart = champion.pivot_table(index="day", values=["recall", "alert_precision"])
        st.line_chart(chart)
    st.dataframe(days, hide_index=True, use_container_width=True)
