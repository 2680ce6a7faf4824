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
    # A link (?user=...) chooses the customer, and so does typing: the box follows a new link
    # even when the session already has it, and what is typed goes to the address.
    linked = st.query_params.get("user", "")
    if st.session_state.get("linked_user") != linked:
        st.session_state["linked_user"] = st.session_state["user_id"] = linked
    user = st.text_input("Customer id", key="user_id").strip()
    if user != linked:
        st.query_params["user"] = st.session_state["linked_user"] = user
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
    """The latest record's: advice is about the band now, never an older one."""
    if "recommendations" not in rows.columns:
        return
    st.subheader("What would bring the band down")
    latest = rows.iloc[-1]
    if latest.get("risk_band") not in ("MEDIUM", "HIGH"):
        st.info("Nothing to bring down: the band is not MEDIUM or HIGH now.")
        return
    found = parsed(latest["recommendations"])
    if found is None:
        st.info("Not recorded: the bridge asks for them when its `recommendations` setting is set.")
    elif not found:
        st.info("No allowed change reaches a lower band (docs/models-and-evaluation.md).")
    for i, item in enumerate(found or [], 1):
        st.markdown(f"**{i}.** {_recommendation_text(item)}")


def _recommendation_text(item: Any) -> str:
    """One recommendation (finrisk.models.recommendations.Recommendation.to_dict) in words:
    the habits to change, what moves, and the probability and band after."""
    if not isinstance(item, dict):
        return str(item)
    actions = ", ".join(
        f"{a.get('lever', '?').replace('_', ' ')} by {float(a.get('reduce_by', 0)):.0%}"
        for a in item.get("actions") or []
        if isinstance(a, dict)
    )
    moves = "; ".join(
        f"{c.get('feature')} {float(c.get('from', 0)):.3g} → {float(c.get('to', 0)):.3g}"
        for c in item.get("changes") or []
        if isinstance(c, dict)
    )
    after = item.get("probability")
    band = item.get("band")
    result = f"probability {after:.3f}" if isinstance(after, int | float) else "probability ?"
    return f"{actions or 'change'} → {result} ({band or '?'}). Moves: {moves}"


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
    """The latest recorded value of a JSON column (records of a LOW band carry none)."""
    if column not in rows.columns:
        return None
    for value in rows[column].iloc[::-1]:
        found = parsed(value)
        if found is not None:
            return found
    return None
