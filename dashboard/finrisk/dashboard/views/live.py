"""Live: what the stream has scored, the anomalies as they arrive, and the bridge's and
predictor's own gauges while they run. Read again every `refresh_seconds`."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

from finrisk.dashboard import stores
from finrisk.dashboard.views.common import link_to_customer, settings, usable, warehouse

NOTHING_SCORED = (
    "no scored transaction in the warehouse (the bridge writes them to the scored topic; "
    "`finrisk labels load` puts them in scored_transactions)"
)


def render() -> None:
    st.title("Live")
    every = timedelta(seconds=settings().dashboard.refresh_seconds)
    st.fragment(run_every=every)(_live)()


def _live() -> None:
    wh = warehouse()
    st.caption(f"BigQuery {wh.project}.{wh.dataset} at {wh.address}; anomalies in {wh.anomalies}")
    totals = usable(wh.stream_totals(), NOTHING_SCORED)
    if totals is not None and int(totals["scored"].iloc[0]) > 0:
        row = totals.iloc[0]
        scored, flagged = int(row["scored"]), int(row["anomalies"])
        cols = st.columns(4)
        cols[0].metric("Transactions scored", f"{scored:,}")
        cols[1].metric("Flagged as anomalous", f"{flagged:,}")
        cols[2].metric("Anomaly rate", f"{flagged / scored:.2%}")
        cols[3].metric("Customers", f"{int(row['customers']):,}")
        span = (
            pd.Timestamp(row["last_scored"]) - pd.Timestamp(row["first_scored"])
        ).total_seconds()
        st.caption(
            f"Scored from {row['first_scored']} to {row['last_scored']}"
            + (f": {scored / span:,.0f} transactions/s on average" if span > 0 else "")
        )
        per_second = wh.per_second()
        if isinstance(per_second, pd.DataFrame) and not per_second.empty:
            st.subheader("Throughput")
            st.bar_chart(per_second.set_index("second")[["scored", "anomalies"]])
    elif totals is not None:
        st.info(f"Nothing yet: {NOTHING_SCORED}")

    _bridge()
    _anomalies(wh)


def _bridge() -> None:
    st.subheader("Bridge and predictor")
    config = settings()
    cols = st.columns(2)
    with cols[0]:
        bridge = stores.scrape(stores.BRIDGE, stores.bridge_metrics_url(config))
        if isinstance(bridge, stores.Unavailable):
            st.warning(
                f"{bridge.message()}. The figures above come from the warehouse.",
                icon=":material/cloud_off:",
            )
        else:
            lag = _total(bridge, "finrisk_bridge_consumer_lag")
            st.metric("Consumer lag (messages)", f"{lag:,.0f}")
            st.metric(
                "Throughput (messages/s)", f"{_total(bridge, 'finrisk_bridge_throughput'):,.0f}"
            )
            st.metric("Mean batch time (ms)", _mean_ms(bridge, "finrisk_bridge_batch_seconds"))
    with cols[1]:
        url = f"{stores.predictor_url(config)}/metrics"
        predictor = stores.scrape(stores.PREDICTOR, url)
        if isinstance(predictor, stores.Unavailable):
            st.warning(predictor.message(), icon=":material/cloud_off:")
        else:
            st.metric(
                "Rows scored by the predictor",
                f"{_total(predictor, 'finrisk_predictor_rows_total'):,.0f}",
            )
            st.metric(
                "Mean request time (ms)", _mean_ms(predictor, "finrisk_predictor_request_seconds")
            )


def _anomalies(wh: stores.Warehouse) -> None:
    st.subheader("Latest anomalies")
    totals = wh.anomaly_totals()
    latest = usable(
        wh.latest_anomalies(),
        "no anomaly logged (the bridge's BigQuery sink writes each flagged transaction)",
    )
    if latest is None:
        return
    if isinstance(totals, pd.DataFrame) and not totals.empty:
        row = totals.iloc[0]
        cols = st.columns(3)
        cols[0].metric("Anomalies logged", f"{int(row['logged']):,}")
        cols[1].metric("Latency p50 (ms)", _ms(row["latency_p50_ms"]))
        cols[2].metric("Latency p99 (ms)", _ms(row["latency_p99_ms"]))
    st.dataframe(latest, hide_index=True, use_container_width=True)
    st.markdown("Customers behind them:")
    links = st.columns(5)
    for i, user in enumerate(list(dict.fromkeys(latest["user_id"]))[:10]):
        with links[i % 5]:
            link_to_customer(user)


def _total(samples: pd.DataFrame, name: str) -> float:
    return float(samples.loc[samples["name"] == name, "value"].sum())


def _mean_ms(samples: pd.DataFrame, histogram: str) -> str:
    count = _total(samples, f"{histogram}_count")
    return "n/a" if count == 0 else f"{1000 * _total(samples, f'{histogram}_sum') / count:,.1f}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{float(value):,.1f}"
