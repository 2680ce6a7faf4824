"""The dashboard in a real headless Chromium (Debian's, driven by Playwright; nothing is
downloaded): open it, move between pages as a person does, read what a page shows, and keep
every console error and screenshot."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

# Screenshots land here (git-ignored); docs/images holds the copies the README shows.
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".finrisk" / "screenshots"
TIMEOUT_MS = 60_000


@dataclass
class Browser:
    page: Page
    errors: list[str] = field(default_factory=list)

    def open(self, url: str) -> None:
        """The app's first page, as a person opens it: its address, nothing deeper."""
        self.page.goto(url)
        self.title("Live")

    def go(self, name: str) -> None:
        """Click a page in the sidebar and wait for its title."""
        self.page.get_by_test_id("stSidebarNavLink").filter(has_text=name).click()
        self.title(name)

    def title(self, text: str) -> None:
        self.page.locator("h1").filter(has_text=text).first.wait_for(timeout=TIMEOUT_MS)

    def wait_for_text(self, text: str) -> None:
        self.page.get_by_text(text, exact=False).first.wait_for(timeout=TIMEOUT_MS)

    def metrics(self) -> list[tuple[str, str]]:
        """Every st.metric on the page, in order: (label, the value shown)."""
        return [
            (
                metric.get_by_test_id("stMetricLabel").inner_text().strip(),
                metric.get_by_test_id("stMetricValue").inner_text().strip(),
            )
            for metric in self.page.get_by_test_id("stMetric").all()
        ]

    def expect_metric(self, label: str, *values: str) -> None:
        """The metrics labelled `label` show `values`, waiting for them (a page draws its
        elements one by one, and the live page draws itself again every few seconds)."""
        label_element = self.page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
        shown = (
            self.page.get_by_test_id("stMetric")
            .filter(has=label_element)
            .get_by_test_id("stMetricValue")
        )
        expect(shown).to_have_text(list(values), timeout=TIMEOUT_MS)

    def alerts(self) -> list[str]:
        return [a.strip() for a in self.page.get_by_test_id("stAlert").all_inner_texts()]

    def shot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def chromium() -> str:
    found = shutil.which("chromium")
    assert found, "Debian's chromium is needed for the dashboard's tests: `make browser`"
    return found


@contextmanager
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            # Tall: Streamlit scrolls inside its own container, so a screenshot shows the viewport.
            page = launched.new_page(viewport={"width": 1400, "height": 2200})
            page.set_default_timeout(TIMEOUT_MS)
            session = Browser(page)
            page.on(
                "console",
                lambda m: session.errors.append(m.text) if m.type == "error" else None,
            )
            page.on("pageerror", lambda exc: session.errors.append(str(exc)))
            yield session
        finally:
            launched.close()
