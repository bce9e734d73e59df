"""The web app's shell: served by the gateway at /app, the stream's state shown."""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from tests.client.devnet_gateway import DevnetGateway
from tests.web.conftest import DEV_ACCOUNTS, OpenPage, serious_accessibility_violations


def test_the_gateway_serves_the_app_at_app(devnet: DevnetGateway) -> None:
    answer = httpx.get(f"{devnet.url}/app", follow_redirects=True, timeout=30)
    assert answer.status_code == 200
    assert '<div id="app">' in answer.text
    script = httpx.get(f"{devnet.url}/app/assets/app.js", timeout=30)
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]


def test_the_shell_loads_with_a_provider_and_names_both_screens(open_page: OpenPage) -> None:
    page = open_page(DEV_ACCOUNTS[4][0])
    expect(page.get_by_role("link", name="Trader")).to_be_visible()
    expect(page.get_by_role("link", name="Operator")).to_be_visible()
    assert page.evaluate("() => window.ethereum.isIsthmusTest") is True
    assert serious_accessibility_violations(page) == []


def test_a_trader_signs_in_with_the_browser_wallet(open_page: OpenPage) -> None:
    address = DEV_ACCOUNTS[4][0]
    page = open_page(address)
    page.get_by_role("button", name="Connect wallet and sign in").click()
    expect(page.get_by_test_id("signed-in-as")).to_have_text(address)
    expect(page.get_by_test_id("stream-status")).to_have_text("Live")
