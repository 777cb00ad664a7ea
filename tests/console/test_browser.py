"""The console page in headless Debian Chromium (Playwright), against the real stack.

Refresh the screenshot in the docs with::

    CONSOLE_SCREENSHOT=docs/img/console.png .venv/bin/python -m pytest tests/console/test_browser.py
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from eventlog.envelope import Envelope, Stream
from processors.runner import COMMANDS
from tests.console.conftest import A, Stack, running_stack
from tests.processors.traffic import T0

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Readings before this go in before the page opens; the rest while it watches.
SPLIT = T0 + timedelta(hours=12)

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium")


@pytest.fixture
def live(tmp_path: Path, traffic: list[Envelope]) -> Iterator[tuple[Stack, list[Envelope]]]:
    early = [e for e in traffic if e.occurred_at < SPLIT]
    late = [e for e in traffic if e.occurred_at >= SPLIT]
    with running_stack(tmp_path / "data", early) as stack:
        yield stack, late


@pytest.fixture
def errors() -> list[str]:
    """Console errors and uncaught exceptions of the page (must stay empty)."""
    return []


@pytest.fixture
def page(errors: list[str]) -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1600, "height": 1000}, locale="zh-CN")
        page = context.new_page()

        def on_console(message: Any) -> None:
            if message.type == "error":
                errors.append(f"console: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda e: errors.append(f"page: {e}"))
        yield page
        context.close()
        browser.close()


def raised_ids(stack: Stack) -> dict[str, float]:
    return {
        str(r.envelope.payload["alert_id"]): time.monotonic()
        for r in stack.log.iterate(Stream.EVENTS)
        if r.envelope.kind == "AlertRaised"
    }


def log_in(page: Any, stack: Stack, token: str) -> None:
    page.goto(stack.url + "/")
    page.fill("#token", stack.tokens[token])
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#main:not([hidden])")
    page.wait_for_selector("#live.on")


def test_live_alert_acknowledge_and_resolve(
    live: tuple[Stack, list[Envelope]], page: Any, errors: list[str], tmp_path: Path
) -> None:
    stack, late = live
    log_in(page, stack, "operator_a")
    assert page.locator("li.card").count() >= 1  # the alerts of the first twelve hours
    assert page.locator("#health-table tbody tr").count() >= 1
    assert page.locator("#grafana a").first.get_attribute("href") == (
        f"http://grafana.test:3000/d/estate-overview?var-estate={A}"
    )

    # Readings arrive; the detector runner raises alerts; the page shows them live.
    before = raised_ids(stack)
    stack.append(late)
    seen: dict[str, float] = {}
    deadline = time.monotonic() + 60
    while not seen and time.monotonic() < deadline:
        seen = {k: v for k, v in raised_ids(stack).items() if k not in before}
        time.sleep(0.02)
    assert seen, "the detector runner raised nothing from the new readings"
    alert_id, appeared_in_log = min(seen.items(), key=lambda kv: kv[1])
    card = f'li.card[data-alert-id="{alert_id}"]'
    page.wait_for_selector(card, timeout=2000, state="attached")
    delay = time.monotonic() - appeared_in_log
    assert delay < 2.0, f"the alert took {delay:.2f} s to appear"

    # Acknowledge with a comment, then resolve, on an open alert of the page.
    stack.settled()
    open_card = page.locator(
        "#sev-critical li.card, #sev-major li.card, #sev-warning li.card, #sev-info li.card"
    ).first
    target = open_card.get_attribute("data-alert-id")
    card = f'li.card[data-alert-id="{target}"]'
    page.fill(f"{card} input.comment", "看到了，派人去处理 / on it")
    page.click(f"{card} button.do-ack")
    page.wait_for_selector(f'{card}[data-acknowledged="yes"]', timeout=5000)
    assert "operator_a" in page.inner_text(f"{card} .ack")
    page.fill(f"{card} input.comment", "fixed on site")
    page.click(f"{card} button.do-resolve")
    page.wait_for_selector(f'#resolved {card}[data-status="resolved"]', timeout=5000)

    events = [
        r.envelope
        for r in stack.log.iterate(Stream.EVENTS)
        if r.envelope.payload.get("alert_id") == target
    ]
    by_kind = {e.kind: e.payload for e in events}
    assert by_kind["AlertAcknowledged"]["comment"] == "看到了，派人去处理 / on it"
    assert by_kind["AlertAcknowledged"]["actor"] == "operator_a"
    assert by_kind["AlertResolved"]["comment"] == "fixed on site"
    assert by_kind["AlertResolved"]["reason"] == "operator"
    commands = [r.envelope for r in stack.log.iterate(COMMANDS)]
    assert [c.kind for c in commands] == ["AcknowledgeAlert", "ResolveAlert"]
    assert {c.payload["alert_id"] for c in commands} == {target}

    # Chinese by default; the toggle switches every label.
    assert page.inner_text("h1") == "小区监控中心"
    page.click("#lang")
    assert page.inner_text("h1") == "Estate control room"
    assert page.inner_text("#sev-critical h3") == "Critical"

    shot = Path(os.environ.get("CONSOLE_SCREENSHOT") or tmp_path / "console.png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.click("#lang")  # back to Chinese for the picture
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert errors == []


def test_console_loads_without_errors_and_a_reader_cannot_act(
    stack: Stack, page: Any, errors: list[str]
) -> None:
    page.goto(stack.url + "/")
    page.wait_for_selector("#login:not([hidden])")
    log_in(page, stack, "office_a")
    page.wait_for_selector("li.card")
    assert page.locator("li.card button.do-resolve:visible").count() == 0
    assert page.locator("#readings-table tbody tr").count() >= 1
    sizes = {}
    for width, height in ((1366, 768), (3840, 2160), (800, 1000)):  # laptop, wall, narrow
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(100)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"horizontal scrolling at {width}px"
        sizes[width] = page.evaluate(
            "parseFloat(getComputedStyle(document.querySelector('li.card')).fontSize)"
        )
    assert sizes[3840] > 1.5 * sizes[1366]  # readable across the control room
    assert errors == []
