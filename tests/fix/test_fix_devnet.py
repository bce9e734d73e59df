"""FIX on the real devnet (`isthmus up`): a desk logs on with an API key through QuickFIX's
own initiator, lists the securities, reads the book, and enters, replaces, cancels and
mass-cancels signed orders for a demo wallet, checking every ExecutionReport field."""

from __future__ import annotations

import asyncio
import secrets
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import quickfix as fix
import quickfix44 as fix44
from isthmus_client import AsyncIsthmus, NonceStore, Signer

from gateway.fix.dictionary import build_dictionary
from tests.client.devnet_gateway import DEMO_KEYS, DevnetGateway
from tests.fix.initiator import (
    BUY,
    GTC,
    IOC,
    SELL,
    FixInitiator,
    field,
    groups,
    limit_order,
    maybe_field,
)

pytestmark = pytest.mark.chain
FAR_DEADLINE = 2_000_000_000


def api_key(devnet: DevnetGateway, accounts: list[str]) -> tuple[str, str]:
    created = httpx.post(
        f"{devnet.url}/v1/api-keys",
        json={"role": "protocol", "scopes": ["quote", "trade", "read"], "accounts": accounts},
        headers={"Authorization": f"Bearer {devnet.operator_token}"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    return created.json()["key_id"], created.json()["secret"]


def signed_body(devnet: DevnetGateway, who: str, **order: Any) -> dict[str, Any]:
    signer = Signer.from_key(DEMO_KEYS[who], devnet.demo_wallet(who))

    async def sign() -> dict[str, Any]:
        async with AsyncIsthmus(devnet.url, signer, nonces=NonceStore(None)) as isthmus:
            # a nonce no other test on the shared devnet has spent
            body: dict[str, Any] = await isthmus.sign_order(
                **order, deadline=FAR_DEADLINE, nonce=secrets.randbelow(2**63)
            )
            return body

    return asyncio.run(sign())


def new_order_single(body: dict[str, Any]) -> fix.Message:
    """The REST body of a signed order as a NewOrderSingle with the signature's tags."""
    signature = body["signature"]
    return limit_order(
        body["client_order_id"],
        body["account"],
        body["quantity"],
        body["price"],
        side=BUY if body["side"] == "buy" else SELL,
        time_in_force={"gtc": GTC, "ioc": IOC}[body.get("time_in_force") or "gtc"],
        instrument=body["instrument"],
        extra=[
            (20010, signature["signature"]),
            (20011, signature["nonce"]),
            (20012, str(signature["deadline"])),
        ],
    )


@pytest.fixture
def desk(devnet: DevnetGateway, tmp_path: Path) -> Any:
    wallet = devnet.demo_wallet("carol")
    key_id, secret = api_key(devnet, [wallet])
    initiator = FixInitiator(
        port=devnet.fix_port,
        sender_comp_id="DESK1",
        key_id=key_id,
        secret=secret,
        store_dir=tmp_path / "desk",
        reset_on_logon=True,
        dictionary=build_dictionary(tmp_path / "FIX44-isthmus.xml"),
    )
    initiator.start()
    try:
        initiator.wait_logon(30)
        yield initiator, wallet
    finally:
        initiator.stop()


def test_a_signed_order_is_reported_new_replaced_and_cancelled(
    devnet: DevnetGateway, desk: Any
) -> None:
    initiator, wallet = desk
    body = signed_body(
        devnet,
        "carol",
        instrument="WETH/USDC",
        side="buy",
        quantity="0.5",
        price="1500",
        client_order_id="fix-new-1",
    )
    initiator.send(new_order_single(body))
    new = initiator.next_app("8", timeout=30)
    assert field(new, 150) == "0" and field(new, 39) == "0", new.toString()
    assert field(new, 11) == "fix-new-1" and field(new, 1) == wallet
    assert field(new, 55) == "WETH/USDC" and field(new, 54) == "1"
    assert Decimal(field(new, 38)) == Decimal("0.5") and Decimal(field(new, 44)) == 1500
    assert Decimal(field(new, 14)) == 0 and Decimal(field(new, 151)) == Decimal("0.5")
    assert field(new, 20001) == "none"
    order_id = field(new, 37)

    cancel = fix44.OrderCancelRequest()
    for tag, value in (
        (11, "fix-cxl-1"),
        (41, "fix-new-1"),
        (1, wallet),
        (55, "WETH/USDC"),
        (54, "1"),
        (60, "20261206-12:00:00.000"),
    ):
        cancel.setField(fix.StringField(tag, value))
    initiator.send(cancel)
    cancelled = initiator.next_app("8", timeout=30)
    assert field(cancelled, 150) == "4" and field(cancelled, 39) == "4", cancelled.toString()
    assert field(cancelled, 37) == order_id
    assert field(cancelled, 11) == "fix-cxl-1" and field(cancelled, 41) == "fix-new-1"
    assert Decimal(field(cancelled, 151)) == 0

    again = fix44.OrderCancelRequest()
    for tag, value in (
        (11, "fix-cxl-2"),
        (41, "fix-new-1"),
        (1, wallet),
        (55, "WETH/USDC"),
        (54, "1"),
        (60, "20261206-12:00:00.000"),
    ):
        again.setField(fix.StringField(tag, value))
    initiator.send(again)
    refused = initiator.next_app("9", timeout=30)
    assert field(refused, 434) == "1" and maybe_field(refused, 20003), refused.toString()


def test_the_security_list_and_the_book_reach_a_desk(devnet: DevnetGateway, desk: Any) -> None:
    initiator, _ = desk
    request = fix44.SecurityListRequest()
    request.setField(fix.StringField(320, "sec-1"))
    request.setField(fix.StringField(559, "4"))  # all securities
    initiator.send(request)
    listing = initiator.next_app("y", timeout=30)
    assert field(listing, 320) == "sec-1" and field(listing, 560) == "0"
    symbols = {entry[55] for entry in groups(listing, 146, 55, [55])}
    operator = {"Authorization": f"Bearer {devnet.operator_token}"}
    catalogue = httpx.get(f"{devnet.url}/v1/instruments", headers=operator, timeout=30)
    listed = {i["symbol"] for i in catalogue.json()}
    assert symbols == listed

    market = fix44.MarketDataRequest()
    market.setField(fix.StringField(262, "md-1"))
    market.setField(fix.StringField(263, "0"))  # a snapshot
    market.setField(fix.StringField(264, "0"))
    for entry_type in ("0", "1"):
        group = fix44.MarketDataRequest.NoMDEntryTypes()
        group.setField(fix.StringField(269, entry_type))
        market.addGroup(group)
    symbol = fix44.MarketDataRequest.NoRelatedSym()
    symbol.setField(fix.StringField(55, "WETH/USDC"))
    market.addGroup(symbol)
    initiator.send(market)
    snapshot = initiator.next_app("W", timeout=30)
    assert field(snapshot, 262) == "md-1" and field(snapshot, 55) == "WETH/USDC"
    entries = groups(snapshot, 268, 269, [269, 270, 271])
    bids = [Decimal(e[270]) for e in entries if e[269] == "0" and 270 in e]
    asks = [Decimal(e[270]) for e in entries if e[269] == "1" and 270 in e]
    # the devnet's exchanges quote WETH/USDC: best first on each side
    assert bids and asks, snapshot.toString()
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
    assert bids[-1] > 0 and asks[-1] > 0


def test_a_signed_fix_order_settles_on_chain_and_passes_the_audit(
    devnet: DevnetGateway, desk: Any
) -> None:
    initiator, wallet = desk
    operator = {"Authorization": f"Bearer {devnet.operator_token}"}
    book = httpx.get(f"{devnet.url}/v1/book/WETH/USDC", headers=operator, timeout=30).json()
    mid = (Decimal(book["bids"][0]["price"]) + Decimal(book["asks"][0]["price"])) / 2
    price = str(mid.quantize(Decimal("0.01")))
    # alice rests a signed sell on the internal book through the API ...
    alice = Signer.from_key(DEMO_KEYS["alice"], devnet.demo_wallet("alice"))

    async def rest_the_sell() -> None:
        async with AsyncIsthmus(devnet.url, alice, nonces=NonceStore(None)) as isthmus:
            body = await isthmus.sign_order(
                "WETH/USDC",
                "sell",
                "0.1",
                price=price,
                deadline=FAR_DEADLINE,
                nonce=secrets.randbelow(2**63),
            )
            await isthmus.submit(body)

    asyncio.run(rest_the_sell())
    # ... and carol's desk takes it over FIX, signed by carol
    body = signed_body(
        devnet,
        "carol",
        instrument="WETH/USDC",
        side="buy",
        quantity="0.1",
        price=price,
        client_order_id="fix-settle-1",
    )
    initiator.send(new_order_single(body))
    new = initiator.next_app("8", timeout=30)
    assert field(new, 150) == "0", new.toString()
    trade = initiator.next_app("8", timeout=30)
    assert (field(trade, 150), field(trade, 39)) == ("F", "2"), trade.toString()
    assert Decimal(field(trade, 32)) == Decimal("0.1") and Decimal(field(trade, 31)) == Decimal(
        price
    )
    assert field(trade, 20001) == "pending"
    fill_id = field(trade, 17)
    # the fill settles on chain: two Restated reports, the order's (settled as a whole) and
    # the fill's, which carries the transaction
    restated = [initiator.next_app("8", timeout=60) for _ in range(2)]
    assert all(field(r, 150) == "D" and field(r, 20001) == "settled" for r in restated)
    [settled] = [r for r in restated if maybe_field(r, 20002) is not None]
    tx_hash = field(settled, 20002)
    assert tx_hash.startswith("0x") and len(tx_hash) == 66
    # and the auditor finds it on chain, signed by carol's wallet, as the store has it
    report = httpx.get(f"{devnet.url}/v1/audit/verify", headers=operator, timeout=60).json()
    mine = [f for f in report["fills"] if fill_id in f["gateway_fills"]]
    assert len(mine) == 1 and mine[0]["ok"], mine
    assert mine[0]["tx_hash"] == tx_hash and mine[0]["wallet"].lower() == wallet.lower()
