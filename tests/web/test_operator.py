"""The operator's console in a real browser against a real devnet: signing in with the
operator token, a kill switch on a trader's account cancelling its resting orders, a venue
going stale when its simulated exchange stops and live again when it resumes, an API key
issued (its secret shown once) and revoked, at a laptop's and a phone's width."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from isthmus_client import Isthmus, NonceStore, Signer
from playwright.sync_api import Page, expect

from gateway.access.request_signing import sign_request
from tests.client.devnet_gateway import DEMO_KEYS, DevnetGateway
from tests.web.conftest import DEV_ACCOUNTS, OpenPage, screenshot, serious_accessibility_violations

TRADER = DEV_ACCOUNTS[9][0]  # a trader whose orders rest on the internal book
CONSOLE = "/app/#/operator"


def operator_client(devnet: DevnetGateway) -> httpx.Client:
    return httpx.Client(
        base_url=devnet.url,
        headers={"Authorization": f"Bearer {devnet.operator_token}"},
        timeout=30,
    )


def sign_in(page: Page, devnet: DevnetGateway) -> None:
    page.get_by_label("Operator token").fill(devnet.operator_token)
    page.get_by_role("button", name="Sign in as operator").click()
    # generous: the first page of a session may load on a busy machine
    expect(page.get_by_test_id("signed-in-as")).to_have_text("operator", timeout=30_000)
    expect(page.get_by_test_id("venues")).to_be_visible(timeout=30_000)


def confirm_in_dialog(page: Page, button: str) -> None:
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name=button, exact=True).click()
    expect(dialog).to_be_hidden()


# -- signing in ------------------------------------------------------------------------------


def test_the_operator_signs_in_with_the_token_and_a_wrong_one_shows_the_apis_message(
    open_page: OpenPage, devnet: DevnetGateway
) -> None:
    refused = httpx.get(
        f"{devnet.url}/v1/api-keys", headers={"Authorization": "Bearer not-the-token"}, timeout=30
    )
    assert refused.status_code == 401
    error = refused.json()["error"]

    page = open_page(path=CONSOLE)
    page.get_by_label("Operator token").fill("not-the-token")
    page.get_by_role("button", name="Sign in as operator").click()
    expect(page.get_by_test_id("sign-in-error")).to_have_text(
        f"{error['message']} ({error['code']})"
    )
    expect(page.get_by_test_id("venues")).to_have_count(0)  # still signed out

    sign_in(page, devnet)
    expect(page.get_by_test_id("sign-in-error")).to_have_count(0)
    # the session survives a reload of the tab
    page.reload()
    expect(page.get_by_test_id("venues")).to_be_visible(timeout=30_000)


# -- kill switch -----------------------------------------------------------------------------


@pytest.fixture
def resting_orders(devnet: DevnetGateway) -> Iterator[list[str]]:
    """Two buy orders of the trader resting on the internal book, far from the touch."""
    stamp = int(time.time() * 1000)
    with operator_client(devnet) as api:
        ids = []
        for n, price in enumerate(("2800.5", "2801.25")):
            placed = api.post(
                "/v1/orders",
                json={
                    "client_order_id": f"ks-{stamp}-{n}",
                    "account": TRADER,
                    "instrument": "WETH/USDC",
                    "side": "buy",
                    "type": "limit",
                    "quantity": "0.01",
                    "price": price,
                },
            )
            assert placed.status_code == 201, placed.text
            assert placed.json()["status"] == "accepted"
            ids.append(placed.json()["id"])
        try:
            yield ids
        finally:  # whatever the test did, the trader is not left halted
            api.put(f"/v1/risk/kill-switches/{TRADER}", json={"engaged": False, "reason": None})


def test_an_account_kill_switch_cancels_the_traders_resting_orders_and_is_released(
    open_page: OpenPage, devnet: DevnetGateway, resting_orders: list[str]
) -> None:
    page = open_page(path=CONSOLE)
    sign_in(page, devnet)
    form = page.get_by_test_id("kill-switch-form")
    form.get_by_label("Account", exact=True).fill(TRADER)
    form.get_by_label("Reason").fill("web test: runaway algo")
    form.get_by_role("button", name="Engage kill switch…").click()
    expect(page.get_by_test_id("confirm-body")).to_contain_text(TRADER)
    confirm_in_dialog(page, "Engage")

    result = page.get_by_test_id("kill-switch-result")
    expect(result).to_contain_text("engaged")
    expect(page.get_by_test_id("kill-switch-cancelled")).to_have_text("2")
    statuses = page.get_by_test_id("affected-order-status")
    expect(statuses).to_have_count(2)
    expect(statuses).to_have_text(["cancelled", "cancelled"])
    for order_id in resting_orders:
        expect(result).to_contain_text(order_id)
    expect(page.get_by_test_id(f"switch-state-{TRADER}")).to_have_text("engaged")

    with operator_client(devnet) as api:
        for order_id in resting_orders:
            assert api.get(f"/v1/orders/{order_id}").json()["status"] == "cancelled"
        switches = {s["scope"]: s["engaged"] for s in api.get("/v1/risk/kill-switches").json()}
        assert switches[TRADER] is True
        refused = api.post("/v1/orders", json=_order(TRADER, "halted"))
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "kill_switch_engaged"

    page.get_by_test_id(f"release-{TRADER}").click()
    confirm_in_dialog(page, "Release")
    expect(result).to_contain_text("released")
    expect(page.get_by_test_id(f"switch-state-{TRADER}")).to_have_count(0)
    with operator_client(devnet) as api:
        assert TRADER not in {s["scope"] for s in api.get("/v1/risk/kill-switches").json()}
        accepted = api.post("/v1/orders", json=_order(TRADER, "after-release"))
        assert accepted.status_code == 201, accepted.text
        assert api.delete(f"/v1/orders/{accepted.json()['id']}").status_code == 200


def _order(account: str, tag: str) -> dict[str, Any]:
    return {
        "client_order_id": f"{tag}-{int(time.time() * 1000)}",
        "account": account,
        "instrument": "WETH/USDC",
        "side": "buy",
        "type": "limit",
        "quantity": "0.01",
        "price": "2800",
    }


# -- a venue going stale ---------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it exited meanwhile
        # the command may hold spaces and parentheses: the fields start after the last ")"
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        if parent == pid:
            found.append(int(entry.name))
    return found


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for child in _children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def binance_simulator(devnet: DevnetGateway) -> int:
    assert devnet.process is not None
    matches = []
    for pid in _descendants(devnet.process.pid):
        try:
            argv = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"gateway.devnet.exchange_sim.server" in argv and b"binance" in argv:
            matches.append(pid)
    assert len(matches) == 1, matches
    return matches[0]


@contextmanager
def stopped(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_a_venue_goes_stale_when_its_exchange_stops_and_live_when_it_resumes(
    open_page: OpenPage, devnet: DevnetGateway
) -> None:
    page = open_page(path=CONSOLE)
    sign_in(page, devnet)
    state = page.get_by_test_id("venue-state-binance")
    expect(state).to_have_text("live", timeout=30_000)
    expect(page.get_by_test_id("book-live")).to_contain_text("binance", timeout=30_000)
    reconnects = int(page.get_by_test_id("venue-reconnects-binance").inner_text())

    with stopped(binance_simulator(devnet)):
        # silent for longer than the 5 s stale-after: out of the book
        expect(state).to_have_text("stale", timeout=30_000)
        expect(page.get_by_test_id("book-stale")).to_contain_text("binance", timeout=30_000)
        with operator_client(devnet) as api:
            feeds = {v["name"]: v for v in api.get("/v1/venues").json()["venues"]}
            assert feeds["binance"]["state"] == "stale"
            assert "binance" in api.get("/v1/book/WETH/USDC").json()["stale_venues"]
        screenshot(page, "operator-venue-stale")

    expect(state).to_have_text("live", timeout=60_000)
    expect(page.get_by_test_id("book-stale")).not_to_contain_text("binance", timeout=30_000)
    expect(page.get_by_test_id("book-live")).to_contain_text("binance")
    # the console counts its coming back
    expect(page.get_by_test_id("venue-reconnects-binance")).not_to_have_text(str(reconnects))
    assert int(page.get_by_test_id("venue-reconnects-binance").inner_text()) > reconnects


# -- settlement and audit ------------------------------------------------------------------


def test_a_signed_trade_settles_and_the_console_shows_its_batch_and_the_audit(
    open_page: OpenPage, devnet: DevnetGateway
) -> None:
    """alice's signed ask and bob's signed IOC bid match on the internal book; the fills
    settle on chain in one batch, which the console lists as confirmed with its gas and
    transaction, and the auditor's verification counts them."""
    with operator_client(devnet) as api:
        confirmed_before = api.get("/v1/settlements").json()["counts"]["confirmed"]
    stamp = int(time.time() * 1000)
    deadline = int(time.time()) + 3600
    price = "3290.5"  # above the exchanges' asks: only bob's bid meets it
    sides = {"alice": ("sell", None), "bob": ("buy", "ioc")}
    orders = {}
    for n, (name, (side, tif)) in enumerate(sides.items()):
        signer = Signer.from_key(DEMO_KEYS[name], devnet.demo_wallet(name))
        with Isthmus(devnet.url, signer, nonces=NonceStore(None)) as trader:
            body = trader.sign_order(
                "WETH/USDC",
                side,
                "0.01",
                price=price,
                time_in_force=tif,
                client_order_id=f"op-{stamp}-{name}",
                nonce=stamp + n,
                deadline=deadline,
            )
            orders[name] = trader.submit(body)
    assert orders["bob"].status == "filled", orders["bob"]

    page = open_page(path=CONSOLE)
    sign_in(page, devnet)
    # the trade settles on its own (a batch leaves at once): the console follows it
    expect(page.get_by_test_id("settlements-confirmed")).to_have_text(
        str(confirmed_before + 1), timeout=60_000
    )
    with operator_client(devnet) as api:
        (fill,) = api.get(f"/v1/orders/{orders['bob'].id}/fills").json()
        assert fill["settlement"] == "settled"
        batch = api.get(f"/v1/settlements/{fill['batch_id']}").json()
        listed = {b["id"]: b for b in api.get("/v1/settlements?status=confirmed").json()["items"]}
    assert listed[batch["id"]]["gas_used"] == batch["gas_used"] > 0
    batch_row = page.get_by_test_id("settlements").locator("tr", has_text=batch["id"])
    expect(batch_row).to_contain_text("confirmed")
    expect(batch_row).to_contain_text(f"{batch['gas_used']:,}")
    expect(batch_row.locator(f'[title="{batch["tx_hash"]}"]')).to_be_visible()

    page.get_by_role("button", name="Verify now").click()
    expect(page.get_by_test_id("audit-ok")).to_have_text("verified", timeout=30_000)
    expect(page.get_by_test_id("audit-fills")).not_to_have_text("0", timeout=30_000)


# -- API keys --------------------------------------------------------------------------------


def _signed_get(devnet: DevnetGateway, key_id: str, secret: str, path: str) -> httpx.Response:
    headers = sign_request(key_id, secret, "GET", path, b"", now_ms=int(time.time() * 1000))
    return httpx.get(f"{devnet.url}{path}", headers=headers, timeout=30)


def test_an_api_key_is_issued_with_its_secret_shown_once_and_revoked(
    open_page: OpenPage, devnet: DevnetGateway
) -> None:
    page = open_page(path=CONSOLE)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, devnet)
    label = f"web test {int(time.time() * 1000)}"
    form = page.get_by_test_id("issue-key")
    form.get_by_label("Label").fill(label)
    form.get_by_label("read", exact=True).check()
    form.get_by_role("button", name="Issue key").click()

    secret_box = page.get_by_test_id("new-key-secret")
    expect(secret_box).not_to_have_value("")
    secret = secret_box.input_value()
    with operator_client(devnet) as api:
        (key,) = [k for k in api.get("/v1/api-keys").json() if k["label"] == label]
    key_id = key["key_id"]
    assert key["scopes"] == ["read"] and key["revoked_at"] is None
    expect(page.get_by_test_id("new-key")).to_contain_text(key_id)
    expect(page.get_by_test_id(f"key-state-{key_id}")).to_have_text("active")

    page.get_by_test_id("copy-secret").click()
    expect(page.get_by_test_id("copy-secret")).to_have_text("Copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == secret
    assert _signed_get(devnet, key_id, secret, "/v1/instruments").status_code == 200

    page.get_by_test_id("dismiss-secret").click()
    expect(page.get_by_test_id("new-key")).to_have_count(0)
    page.reload()
    expect(page.get_by_test_id(f"key-state-{key_id}")).to_have_text("active")
    expect(page.get_by_test_id("new-key")).to_have_count(0)
    assert secret not in page.content()  # shown once: nowhere on the page any more

    page.get_by_test_id(f"revoke-{key_id}").click()
    expect(page.get_by_test_id("confirm-body")).to_contain_text(key_id)
    confirm_in_dialog(page, "Revoke")
    expect(page.get_by_test_id(f"key-state-{key_id}")).to_contain_text("revoked")
    expect(page.get_by_test_id(f"revoke-{key_id}")).to_have_count(0)

    refused = _signed_get(devnet, key_id, secret, "/v1/instruments")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthenticated"
    with operator_client(devnet) as api:
        (after,) = [k for k in api.get("/v1/api-keys").json() if k["key_id"] == key_id]
    assert after["revoked_at"] is not None


def test_a_key_the_api_refuses_to_issue_shows_its_message_and_code(
    open_page: OpenPage, devnet: DevnetGateway
) -> None:
    page = open_page(path=CONSOLE)
    sign_in(page, devnet)
    form = page.get_by_test_id("issue-key")
    form.get_by_label("Accounts").fill("0x1234")  # not an address
    form.get_by_role("button", name="Issue key").click()
    expect(form.get_by_role("alert")).to_contain_text("(validation_error)")
    expect(page.get_by_test_id("new-key")).to_have_count(0)


# -- the whole console at both widths --------------------------------------------------------


@pytest.mark.parametrize("width", ["laptop", "phone"])
def test_the_console_at_both_widths_has_no_serious_accessibility_violations(
    open_page: OpenPage, devnet: DevnetGateway, width: str
) -> None:
    page = open_page(width=width, path=CONSOLE)
    expect(page.get_by_label("Operator token")).to_be_visible()
    assert serious_accessibility_violations(page) == []  # the sign-in form
    sign_in(page, devnet)
    expect(page.get_by_test_id("venue-state-internal")).to_have_text("live")
    expect(page.get_by_test_id("book-mid")).not_to_have_text("—")
    expect(page.get_by_test_id("risk-margin")).to_be_visible()
    expect(page.get_by_test_id("settlement-counts")).to_be_visible()
    expect(page.get_by_test_id("audit-ok")).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("audit-log")).to_contain_text("head:")
    # nothing wider than the screen but the tables' own scrolling regions
    assert (
        page.evaluate("() => document.documentElement.scrollWidth") <= page.viewport_size["width"]
    )
    screenshot(page, f"operator-{width}")
    assert serious_accessibility_violations(page) == []
