"""`finrisk dashboard`: the Streamlit app (finrisk/dashboard/app.py) on 127.0.0.1.

    finrisk dashboard [--port 8501] [--bigquery-dataset finrisk] [--anomalies-table anomalies]

Its settings (DashboardSettings: FINRISK_DASHBOARD__<FIELD>, `dashboard:` in the settings file,
or the flags) reach the app through the environment, since Streamlit runs the app's script
itself, in this process.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from finrisk.cli.settings_flags import add_flags, given, overlaid
from finrisk.settings import DashboardSettings, Settings

APP = Path(__file__).with_name("app.py")
# An MLflow server out of reach must make a banner within seconds, not after minutes of the
# client's retries.
MLFLOW_CLIENT_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    text = "the dashboard: live stream, customers, models and monitoring (Streamlit)"
    parser = subparsers.add_parser("dashboard", help=text, description=text)
    add_flags(
        parser,
        DashboardSettings,
        title="settings (each also FINRISK_DASHBOARD__<NAME> or dashboard: in the FINRISK_CONFIG "
        "file; '' stands for none)",
    )
    parser.set_defaults(handler=_dashboard)


def environment(settings: DashboardSettings) -> dict[str, str]:
    """What the app's process needs: every dashboard setting that is set, and MLflow's client
    bounds."""
    out = dict(MLFLOW_CLIENT_ENV)
    for name, value in settings.model_dump().items():
        if value is not None:
            out[f"FINRISK_DASHBOARD__{name.upper()}"] = str(value)
    return out


def streamlit_options(settings: DashboardSettings) -> dict[str, object]:
    return {
        "server.address": settings.host,
        "server.port": settings.port,
        "server.headless": True,
        "server.fileWatcherType": "none",
        "server.runOnSave": False,
        "browser.gatherUsageStats": False,
        "global.developmentMode": False,
        "client.toolbarMode": "viewer",
    }


def _dashboard(args: argparse.Namespace) -> int:
    from streamlit.web import bootstrap

    settings = overlaid(Settings().dashboard, given(args, DashboardSettings))
    for key, value in environment(settings).items():
        if key.startswith("MLFLOW_"):
            os.environ.setdefault(key, value)
        else:
            os.environ[key] = value
    print(f"finrisk dashboard on {settings.url}", flush=True)
    options = streamlit_options(settings)
    bootstrap.load_config_options(options)  # `streamlit run` does this before run()
    bootstrap.run(str(APP), False, [], options)
    return 0
