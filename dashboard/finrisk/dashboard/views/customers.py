"""Customers: find one, then its band and probability over time, why, the recent transactions
with their flags, and what would bring the band down."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from finrisk.dashboard.views.common import link_to_customer, parsed, usable, warehouse

RECENT = 50


def render() -> None:
    st.title("Customers")
    wh = warehouse()
    chosen = st.text_input("Customer id", value=st.query_params.get("user", ""), key="user_id")
    user = chosen.strip()
    if user != st.query_params.get("user", ""):
        st.query_params["user"] = user
    if not user:
        _riskiest(wh)
        return
    rows = usable(
        wh.customer(user),
        f"no scored transaction of customer {user!r} in the warehouse",
    )
    if rows is None:
        return
    _summary(user, rows)
    _history(rows)
    _reasons(rows)
    _recommendations(rows)
    _recent(rows, wh.customer_anomalies(user))


def _riskiest(wh: Any) -> None:
    st.subheader("Riskiest customers now")
    riskiest = usable(wh.riskiest_customers(), "no scored transaction in the warehouse")
    if riskiest is None:
        return
    st.dataframe(riskiest, hide_index=True, use_container_width=True)
    cols = st.columns(5)
    for i, user in enumerate(riskiest["user_id"][:15]):
        with cols[i % 5]:
            link_to_customer(user)


def _summary(user: str, rows: pd.DataFrame) -> None:
    latest = rows.iloc[-1]
    flagged = int(rows["is_anomaly"].sum())
    st.subheader(f"Customer {user}")
    cols = st.columns(4)
    cols[0].metric("Transactions", f"{len(rows):,}")
    cols[1].metric("Flagged", f"{flagged:,}")
    band = latest.get("risk_band")
    cols[2].metric("Risk band now", band if isinstance(band, str) else "n/a")
    probability = latest.get("risk_probability")
    cols[3].metric(
        "Risk probability now",
        "n/a" if probability is None or pd.isna(probability) else f"{float(probability):.3f}",
    )
    st.caption(f"Last scored transaction: {latest['event_time']} ({latest['transaction_id']})")


def _history(rows: pd.DataFrame) -> None:
    history = rows[["event_time", "risk_probability"]].dropna()
    if history.empty:
        return
    st.subheader("Risk probability over time")
    st.line_chart(history.set_index("event_time"))
    bands = rows["risk_band"].dropna()
    changes = bands[bands != bands.shift()]
    if len(changes) > 1:
        moves = [f"{rows.at[i, 'event_time']}: {band}" for i, band in changes.items()]
        st.caption("Band changes: " + "; ".join(moves[-8:]))


def _reasons(rows: pd.DataFrame) -> None:
    found = _latest_json(rows, "reasons")
    if not found:
        return
    st.subheader("Why (the risk model's top reasons)")
    st.dataframe(pd.DataFrame(found), hide_index=True)


def _recommendations(rows: pd.DataFrame) -> None:
    if "recommendations" not in rows.columns:
        return
    st.subheader("What would bring the band down")
    found = _latest_json(rows, "recommendations")
    if not found:
        st.info("None: the customer is LOW, or no allowed change reaches a lower band.")
        return
    for i, item in enumerate(found, 1):
        st.markdown(f"**{i}.** {_recommendation_text(item)}")


def _recommendation_text(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    changes = item.get("changes") or {}
    parts = []
    for feature, change in changes.items():
        if isinstance(change, dict) and "from" in change and "to" in change:
            parts.append(f"{feature} {change['from']:.3g} → {change['to']:.3g}")
        else:
            parts.append(f"{feature}: {change}")
    after = item.get("probability")
    band = item.get("band")
    tail = f" → probability {after:.3f}" if isinstance(after, int | float) else ""
    return ", ".join(parts) + tail + (f" ({band})" if band else "")


def _recent(rows: pd.DataFrame, anomalies: Any) -> None:
    st.subheader(f"Recent transactions (last {min(RECENT, len(rows))})")
    recent = rows.tail(RECENT).iloc[::-1]
    columns = [
        c
        for c in (
            "event_time",
            "transaction_id",
            "anomaly_score",
            "is_anomaly",
            "risk_band",
            "risk_probability",
            "detector_version",
        )
        if c in recent.columns
    ]
    shown = recent[columns]
    if isinstance(anomalies, pd.DataFrame) and not anomalies.empty:
        shown = shown.merge(
            anomalies[["transaction_id", "amount", "direction", "category", "merchant"]],
            on="transaction_id",
            how="left",
        )
    st.dataframe(shown, hide_index=True, use_container_width=True)


def _latest_json(rows: pd.DataFrame, column: str) -> Any:
    if column not in rows.columns:
        return None
    for value in rows[column].iloc[::-1]:
        found = parsed(value)
        if found:
            return found
    return None
