"""Models: champion and challenger of each model, the gate's decision and reason for each
version, the recorded test metrics across versions, and the monitor's decisions."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from finrisk.dashboard import stores
from finrisk.dashboard.views.common import settings, usable, warehouse
from finrisk.kinds import DETECTOR, RISK
from finrisk.registry import resolve_tracking_uri

# The metric each model's gate judges by default (finrisk.gate.GatePolicy).
PRIMARY = {DETECTOR: "pr_auc", RISK: "roc_auc"}


def render() -> None:
    st.title("Models")
    dash = settings().dashboard
    names = {DETECTOR: dash.detector_model, RISK: dash.risk_model}
    uri = resolve_tracking_uri(dash.mlflow_tracking_uri)
    st.caption(f"MLflow registry at {uri}")
    versions = usable(
        stores.model_versions(uri, names),
        "no registered version (the retraining pipeline registers them: make demo)",
    )
    if versions is not None:
        for kind, name in names.items():
            _model(kind, name, versions[versions["model"] == kind])
    _decisions()


def _model(kind: str, name: str, versions: pd.DataFrame) -> None:
    st.subheader(f"{kind}: {name}")
    if versions.empty:
        st.info(f"Nothing yet: {name} has no registered version")
        return
    cols = st.columns(3)
    for col, alias in zip(cols, ("champion", "challenger"), strict=False):
        holder = versions[versions["aliases"].str.contains(alias)]
        col.metric(alias.capitalize(), f"v{holder['version'].iloc[0]}" if len(holder) else "none")
    cols[2].metric("Versions", f"{len(versions)}")
    metric = PRIMARY[kind]
    if metric in versions.columns:
        trend = versions[["version", metric]].dropna().sort_values("version")
        if not trend.empty:
            st.caption(f"{metric} on each version's held-out test data")
            st.bar_chart(trend.set_index("version"))
    shown = [c for c in versions.columns if c not in ("model", "name", "gate_reason")]
    st.dataframe(versions[shown], hide_index=True, use_container_width=True)
    with st.expander(f"Gate decisions and reasons ({name})"):
        for _, row in versions.iterrows():
            st.markdown(f"**v{row['version']}** ({row['gate'] or 'no gate'}): {row['gate_reason']}")


def _decisions() -> None:
    st.subheader("Monitor decisions (retraining policy and live gate)")
    decisions = usable(warehouse().decisions(), "no decision (finrisk monitor records each one)")
    if decisions is None:
        return
    decisions = decisions.assign(
        reasons=[
            " / ".join(json.loads(r)) if isinstance(r, str) else r for r in decisions["reasons"]
        ]
    )
    st.dataframe(decisions, hide_index=True, use_container_width=True)
