"""The web app's shell: served by the gateway at /app, the stream's state shown."""

from __future__ import annotations

import httpx
from playwright.sync_api import WebSocketRoute, expect

from tests.client.devnet_gateway import DevnetGateway
from tests.web.conftest import DEV_ACCOUNTS, OpenPage, serious_accessibility_violations


def test_the_gateway_serves_the_app_at_app(devnet: DevnetGateway) -> None:
    # `make up` says where it is
    assert f"web app  http://127.0.0.1:{devnet.port}/app/" in " ".join(devnet.output.split("\n"))
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


def test_a_lost_stream_is_shown_while_it_is_down_and_reconnects(open_page: OpenPage) -> None:
    page = open_page(DEV_ACCOUNTS[5][0])
    connections: list[WebSocketRoute] = []

    def through_to_the_gateway(socket: WebSocketRoute) -> None:
        socket.connect_to_server()
        connections.append(socket)

    page.route_web_socket("**/v1/stream*", through_to_the_gateway)
    page.get_by_role("button", name="Connect wallet and sign in").click()
    status = page.get_by_test_id("stream-status")
    expect(status).to_have_text("Live")
    # every text the indicator shows from now on, seen by the test (not the app) in the page
    page.evaluate(
        """() => {
          window.seenStatuses = [];
          const node = document.querySelector('[data-testid="stream-status"]');
          new MutationObserver(() => window.seenStatuses.push(node.textContent))
            .observe(node, { childList: true, characterData: true, subtree: true });
        }"""
    )
    connections[0].close(code=1011, reason="the test cut the connection")
    page.wait_for_function("() => window.seenStatuses.at(-1) === 'Live'")
    expect(status).to_have_text("Live")
    seen = page.evaluate("() => window.seenStatuses")
    assert "Stream lost — reconnecting…" in seen
    assert seen[-1] == "Live"
    assert len(connections) == 2
