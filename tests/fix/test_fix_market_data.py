"""FIX market data for one session, without sockets: the SecurityList against the catalogue,
snapshots (W) against the consolidated book level by level, incremental refreshes (X) that
carry exactly each change, full refreshes, unsubscribing, every MarketDataRequestReject
reason, and a stale feed said so. Every message sent is checked against the dictionary the
acceptor validates with (values of enumerated fields inside groups too, which QuickFIX's
validator leaves out, and decimals as plain text)."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import quickfix as fix
import quickfix44 as fix44

from gateway.config import Settings
from gateway.domain.consolidated_book import ConsolidatedBook, ConsolidatedLevel, VenueShare
from gateway.domain.orders import OrderSpec, OrderType, Side, TimeInForce
from gateway.fix.dictionary import build_dictionary
from gateway.fix.market_data import (
    CLOSED,
    NON_FIRM,
    OPEN,
    BookEntry,
    FixMarketData,
    book_changes,
    book_entries,
    decimal_text,
)
from gateway.runtime import Runtime
from tests.conftest import ManualClock
from tests.market_making import MARKET_MAKER, make_market

SPOT = "WETH/USDC"
PERP = "WETH-PERP"
TIMEOUT = 5.0  # seconds: a bound on waiting for a message, never a synchronization
DECIMAL_TAGS = {202, 231, 270, 271, 561, 562}  # PRICE, QTY and FLOAT fields we send
ENTRY_TAGS = (279, 269, 270, 271, 276)

# MDEntry as the tests read it: (MDUpdateAction or None in a W, type, price, size, condition)
Entry = tuple[str | None, str, str | None, str | None, str | None]


@pytest.fixture(scope="module")
def dictionary(tmp_path_factory: pytest.TempPathFactory) -> fix.DataDictionary:
    """FIX44.xml with Isthmus's fields: what the acceptor validates against."""
    path = build_dictionary(tmp_path_factory.mktemp("fix") / "FIX44.xml")
    return fix.DataDictionary(str(path))


def run(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(body())


@asynccontextmanager
async def gateway(tmp_path: Path) -> AsyncIterator[Runtime]:
    """A runtime on the internal book with its market-data hub running; nothing else in the
    background."""
    rt = Runtime.build(
        Settings(database_url=f"sqlite:///{tmp_path / 'fix-md.db'}"), clock=ManualClock()
    )
    await rt.start(
        expiry_interval=None,
        monitor=False,
        algos=False,
        reconcile_interval=None,
        settle_interval=None,
        dead_man_switch=False,
    )
    try:
        yield rt
    finally:
        await rt.stop()


class Outbox:
    """The acceptor's `send`: what the session would write, each message checked as read."""

    def __init__(self, dictionary: fix.DataDictionary) -> None:
        self.dictionary = dictionary
        self.queue: asyncio.Queue[fix.Message] = asyncio.Queue()
        self._seq = itertools.count(1)

    def send(self, message: fix.Message) -> None:
        self.queue.put_nowait(message)

    async def next(self) -> fix.Message:
        return self.checked(await asyncio.wait_for(self.queue.get(), TIMEOUT))

    def take(self) -> list[fix.Message]:
        """Everything sent so far (for what must be there, or not, once a call returned)."""
        taken: list[fix.Message] = []
        while not self.queue.empty():
            taken.append(self.checked(self.queue.get_nowait()))
        return taken

    def checked(self, message: fix.Message) -> fix.Message:
        """The message as the counterparty parses it, after the dictionary's checks."""
        header = message.getHeader()
        header.setField(fix.SenderCompID("ISTHMUS"))
        header.setField(fix.TargetCompID("DESK1"))
        header.setField(fix.MsgSeqNum(next(self._seq)))
        header.setField(fix.SendingTime())
        raw = message.toString()
        parsed = fix.Message(raw, self.dictionary, True)
        self.dictionary.validate(parsed)
        for pair in raw.split("\x01")[:-1]:
            tag_text, _, value = pair.partition("=")
            tag = int(tag_text)
            if self.dictionary.hasFieldValue(tag):  # groups included
                assert self.dictionary.isFieldValue(tag, value), f"{tag}={value} in {raw!r}"
            if tag in DECIMAL_TAGS:
                assert re.fullmatch(r"\d+(\.\d+)?", value), f"{tag}={value} is not plain decimal"
        return parsed


def received(message: fix.Message, dictionary: fix.DataDictionary) -> fix.Message:
    """As the acceptor hands a message over: parsed with the dictionary (not validated, so
    that values the acceptor would refuse reach the handler too), then copied."""
    return fix.Message(fix.Message(message.toString(), dictionary, False))


def md_request(
    dictionary: fix.DataDictionary,
    req_id: str,
    *,
    kind: str = "1",
    depth: str = "0",
    update: str | None = "1",
    types: tuple[str, ...] = ("0", "1"),
    symbols: tuple[str, ...] = (SPOT,),
    extra: dict[int, str] | None = None,
) -> fix.Message:
    message = fix44.MarketDataRequest()
    message.setField(fix.StringField(262, req_id))
    message.setField(fix.StringField(263, kind))
    message.setField(fix.StringField(264, depth))
    if update is not None:
        message.setField(fix.StringField(265, update))
    for tag, value in (extra or {}).items():
        message.setField(fix.StringField(tag, value))
    for entry_type in types:
        group = fix44.MarketDataRequest.NoMDEntryTypes()
        group.setField(fix.StringField(269, entry_type))
        message.addGroup(group)
    for symbol in symbols:
        related = fix44.MarketDataRequest.NoRelatedSym()
        related.setField(fix.StringField(55, symbol))
        message.addGroup(related)
    return received(message, dictionary)


def list_request(dictionary: fix.DataDictionary, req_id: str, **fields: str) -> fix.Message:
    message = fix44.SecurityListRequest()
    message.setField(fix.StringField(320, req_id))
    tags = {"kind": 559, "symbol": 55, "security_type": 167, "subscription": 263}
    for name, value in fields.items():
        message.setField(fix.StringField(tags[name], value))
    return received(message, dictionary)


def get(fields: fix.FieldMap, tag: int) -> str | None:
    return str(fields.getField(tag)) if fields.isSetField(tag) else None


def msg_type(message: fix.Message) -> str:
    return str(message.getHeader().getField(35))


def entries(message: fix.Message) -> list[Entry]:
    group = (
        fix44.MarketDataSnapshotFullRefresh.NoMDEntries()
        if msg_type(message) == "W"
        else fix44.MarketDataIncrementalRefresh.NoMDEntries()
    )
    found: list[Entry] = []
    for index in range(1, message.groupCount(268) + 1):
        message.getGroup(index, group)
        action, entry_type, price, size, condition = (get(group, tag) for tag in ENTRY_TAGS)
        assert entry_type is not None
        found.append((action, entry_type, price, size, condition))
    return found


def x_symbols(message: fix.Message) -> set[str | None]:
    group = fix44.MarketDataIncrementalRefresh.NoMDEntries()
    symbols: set[str | None] = set()
    for index in range(1, message.groupCount(268) + 1):
        message.getGroup(index, group)
        symbols.add(get(group, 55))
    return symbols


def book_as_entries(book: ConsolidatedBook) -> list[Entry]:
    sides = (("0", book.bids), ("1", book.asks))
    return [
        (None, entry_type, decimal_text(level.price), decimal_text(level.quantity), OPEN)
        for entry_type, levels in sides
        for level in levels
    ]


def security_list(message: fix.Message) -> list[dict[int, str]]:
    group = fix44.SecurityList.NoRelatedSym()
    listed: list[dict[int, str]] = []
    for index in range(1, message.groupCount(146) + 1):
        message.getGroup(index, group)
        tags = (55, 167, 107, 200, 541, 201, 202, 947, 231, 15, 561, 562, 58)
        listed.append({tag: str(group.getField(tag)) for tag in tags if group.isSetField(tag)})
    return listed


_orders = itertools.count(1)


async def rest(rt: Runtime, side: Side, price: str, size: str, instrument: str = SPOT) -> str:
    """A resting limit order of the market maker; its id."""
    submitted = await rt.orders.submit(
        OrderSpec(
            MARKET_MAKER,
            f"fix-md-{next(_orders)}",
            side,
            OrderType.LIMIT,
            Decimal(size),
            TimeInForce.GTC,
            instrument=instrument,
            price=Decimal(price),
        )
    )
    return submitted.order.id


# -- security list -------------------------------------------------------------------------


def test_the_security_list_is_the_catalogue(tmp_path: Path, dictionary: fix.DataDictionary) -> None:
    async def body() -> None:
        async with gateway(tmp_path) as rt:
            out = Outbox(dictionary)
            md = FixMarketData(rt, out.send)
            await md.on_security_list_request(list_request(dictionary, "sl-1", kind="4"))
            reply = await out.next()
            assert msg_type(reply) == "y"
            assert (get(reply, 320), get(reply, 560), get(reply, 893)) == ("sl-1", "0", "Y")
            assert get(reply, 322)
            catalogue = list(rt.orders.catalogue)
            assert get(reply, 393) == str(len(catalogue)) == str(reply.groupCount(146))
            listed = security_list(reply)
            assert [entry[55] for entry in listed] == [i.symbol for i in catalogue]
            by_symbol = {entry[55]: entry for entry in listed}
            spot = by_symbol[SPOT]
            assert (spot[167], spot[15], spot[561], spot[562], spot[58]) == (
                "FOR",
                "USDC",
                "0.0001",
                "0.0001",
                "tick_size=0.01",
            )
            assert 541 not in spot and 201 not in spot
            perp = by_symbol[PERP]
            assert (perp[167], perp[15], perp[561], perp[562], perp[58]) == (
                "FUT",
                "USDC",
                "0.001",
                "0.001",
                "tick_size=0.05",
            )
            assert 541 not in perp and 200 not in perp and 231 not in perp  # linear, no expiry
            call = by_symbol["WETH-20270326-3000-C"]
            assert {t: call[t] for t in (167, 200, 541, 201, 202, 947, 15, 561, 562, 58)} == {
                167: "OPT",
                200: "202703",
                541: "20270326",
                201: "1",
                202: "3000",
                947: "USDC",
                15: "USDC",
                561: "0.01",
                562: "0.01",
                58: "tick_size=0.5",
            }
            assert "2027-03-26T08:00:00+00:00" in call[107]
            put = by_symbol["WETH-20270326-2500-P"]
            assert (put[167], put[201], put[202]) == ("OPT", "0", "2500")
            assert out.take() == []

    run(body)


def test_security_list_by_symbol_and_type_and_its_refusals(
    tmp_path: Path, dictionary: fix.DataDictionary
) -> None:
    async def body() -> None:
        async with gateway(tmp_path) as rt:
            out = Outbox(dictionary)
            md = FixMarketData(rt, out.send)

            async def ask(req_id: str, **fields: str) -> tuple[str | None, list[str]]:
                await md.on_security_list_request(list_request(dictionary, req_id, **fields))
                reply = await out.next()
                assert get(reply, 320) == req_id
                return get(reply, 560), [entry[55] for entry in security_list(reply)]

            assert await ask("s1", kind="0", symbol=PERP) == ("0", [PERP])
            assert await ask("s2", kind="0", symbol="DOGE/USDC") == ("2", [])  # none found
            options = [i.symbol for i in rt.orders.catalogue if i.kind.value == "option"]
            assert len(options) == 10
            assert await ask("s3", kind="1", security_type="OPT") == ("0", options)
            assert await ask("s4", kind="1", security_type="FOR") == ("0", [SPOT])
            assert await ask("s5", kind="1", security_type="CS") == ("2", [])
            assert await ask("s6", kind="3") == ("1", [])  # by trading session: unsupported
            assert await ask("s7", kind="0") == ("1", [])  # by symbol, without one
            assert await ask("s8", kind="1") == ("1", [])  # by type, without one
            everything = [i.symbol for i in rt.orders.catalogue]
            assert await ask("s9", kind="4", subscription="1") == ("0", everything)  # a snapshot
            # stopping a security list subscription: nothing to stop, nothing to answer
            await md.on_security_list_request(
                list_request(dictionary, "s10", kind="4", subscription="2")
            )
            assert out.take() == []

    run(body)


# -- snapshots -----------------------------------------------------------------------------


def test_a_snapshot_is_the_consolidated_book_level_by_level(
    tmp_path: Path, dictionary: fix.DataDictionary
) -> None:
    async def body() -> None:
        async with gateway(tmp_path) as rt:
            await make_market(rt, SPOT, "2999", "3001", deeper_asks=(("3002.5", "2"),))
            await rest(rt, Side.BUY, "2998.25", "3.5")
            await make_market(rt, SPOT, "2999", "3001")  # waits for the hub to show it all
            out = Outbox(dictionary)
            md = FixMarketData(rt, out.send)

            await md.on_market_data_request(
                md_request(dictionary, "snap-1", kind="0", update=None, symbols=(SPOT, PERP))
            )
            spot, perp = await out.next(), await out.next()
            book = rt.market_data.book(SPOT, rt.settings.book_depth_max)
            assert len(book.bids) == 2 and len(book.asks) == 2
            assert msg_type(spot) == "W" and (get(spot, 262), get(spot, 55)) == ("snap-1", SPOT)
            assert entries(spot) == book_as_entries(book)
            assert entries(spot) == [
                (None, "0", "2999", "50", OPEN),
                (None, "0", "2998.25", "3.5", OPEN),
                (None, "1", "3001", "50", OPEN),
                (None, "1", "3002.5", "2", OPEN),
            ]
            # nothing quotes the perpetual: an empty book, NoMDEntries=0
            assert (get(perp, 55), get(perp, 268), entries(perp)) == (PERP, "0", [])

            await md.on_market_data_request(
                md_request(dictionary, "snap-2", kind="0", depth="1", update=None)
            )
            assert entries(await out.next()) == book_as_entries(rt.market_data.book(SPOT, 1))
            await md.on_market_data_request(
                md_request(dictionary, "snap-3", kind="0", types=("1",), update=None)
            )
            assert [e[1:] for e in entries(await out.next())] == [
                ("1", "3001", "50", OPEN),
                ("1", "3002.5", "2", OPEN),
            ]
            assert not md.subscriptions and out.take() == []  # snapshots subscribe nothing

    run(body)


# -- subscriptions -------------------------------------------------------------------------


def test_incremental_refreshes_carry_exactly_each_change(
    tmp_path: Path, dictionary: fix.DataDictionary
) -> None:
    async def body() -> None:
        async with gateway(tmp_path) as rt:
            await make_market(rt, SPOT, "2999", "3001")
            out = Outbox(dictionary)
            md = FixMarketData(rt, out.send)
            await md.on_market_data_request(md_request(dictionary, "inc-1"))
            snapshot = await out.next()
            assert msg_type(snapshot) == "W" and entries(snapshot) == [
                (None, "0", "2999", "50", OPEN),
                (None, "1", "3001", "50", OPEN),
            ]
            assert list(md.subscriptions) == ["inc-1"]

            async def refresh() -> list[Entry]:
                message = await out.next()
                assert msg_type(message) == "X" and get(message, 262) == "inc-1"
                assert x_symbols(message) == {SPOT}
                return entries(message)

            first = await rest(rt, Side.BUY, "2998", "3")
            assert await refresh() == [("0", "0", "2998", "3", OPEN)]
            second = await rest(rt, Side.BUY, "2998", "1.25")
            assert await refresh() == [("1", "0", "2998", "4.25", OPEN)]
            ask = await rest(rt, Side.SELL, "3000.5", "0.5")
            assert await refresh() == [("0", "1", "3000.5", "0.5", OPEN)]
            await rt.orders.cancel(first)
            assert await refresh() == [("1", "0", "2998", "1.25", OPEN)]
            await rt.orders.cancel(second)
            assert await refresh() == [("2", "0", "2998", None, None)]
            await rt.orders.cancel(ask)
            assert await refresh() == [("2", "1", "3000.5", None, None)]
            # another instrument's book is not this subscription's
            await make_market(rt, PERP, "2990", "3010", tag="perp")
            await rest(rt, Side.BUY, "2997", "2")
            assert await refresh() == [("0", "0", "2997", "2", OPEN)]
            await md.close()
            assert list(md.subscriptions) == []

    run(body)


def test_a_limited_depth_deletes_what_leaves_it_first(
    tmp_path: Path, dictionary: fix.DataDictionary
) -> None:
    async def body() -> None:
        async with gateway(tmp_path) as rt:
            await make_market(rt, SPOT, "2999", "3001")
            out = Outbox(dictionary)
            md = FixMarketData(rt, out.send)
            await md.on_market_data_request(md_request(dictionary, "top", depth="1"))
            assert [e[1:3] for e in entries(await out.next())] == [("0", "2999"), ("1", "3001")]

            better = await rest(rt, Side.BUY, "3000", "2")
            assert entries(await out.next()) == [
                ("2", "0", "2999", None, None),
                ("0", "0", "3000", "2", OPEN),
            ]
            await rest(rt, Side.BUY, "2990", "1")  # below the depth: nothing to say
            await rt.orders.cancel(better)
            # the next refresh is the cancel's, and the 2990 bid is in none
            assert entries(await out.next()) == [
                ("2", "0", "3000", None, None),
                ("0", "0", "2999", "50", OPEN),
            ]
            await md.close()

    run(body)


def test_a_full_refresh_subscription_sends_the_whole_book_each_time(
    tmp_path: Path, dictionary: fix.DataDictionary
) -> None:
    async def body() -> None:
        async with gateway(tmp_path) as rt:
            await make_market(rt, SPOT, "2999", "3001")
            out = Outbox(dictionary)
            md = FixMarketData(rt, out.send)
            await md.on_market_data_request(md_request(dictionary, "full", update="0"))
            assert len(entries(await out.next())) == 2
            await rest(rt, Side.BUY, "2998", "3")
            refreshed = await out.next()
            assert msg_type(refreshed) == "W" and get(refreshed, 262) == "full"
            assert entries(refreshed) == book_as_entries(rt.market_data.book(SPOT, 100))
            assert [e[1:3] for e in entries(refreshed)] == [
                ("0", "2999"),
                ("0", "2998"),
                ("1", "3001"),
            ]
            await md.close()

    run(body)


def test_unsubscribing_and_closing_stop_the_refreshes(
    tmp_path: Path, dictionary: fix.DataDictionary
) -> None:
    async def body() -> None:
        async with gateway(tmp_path) as rt:
            await make_market(rt, SPOT, "2999", "3001")
            out = Outbox(dictionary)
            md = FixMarketData(rt, out.send)
            for req_id in ("a", "b"):
                await md.on_market_data_request(md_request(dictionary, req_id))
                assert get(await out.next(), 262) == req_id
            await md.on_market_data_request(md_request(dictionary, "a", kind="2"))
            assert list(md.subscriptions) == ["b"] and out.take() == []  # stopping: no answer

            await rest(rt, Side.BUY, "2998", "3")
            refreshed = await out.next()  # "b" still runs; "a"'s task has ended
            assert get(refreshed, 262) == "b"
            assert entries(refreshed) == [("0", "0", "2998", "3", OPEN)]
            assert out.take() == []

            # an id stays used for the session, and a stopped one cannot be stopped again
            await md.on_market_data_request(md_request(dictionary, "a"))
            await md.on_market_data_request(md_request(dictionary, "a", kind="2"))
            duplicate, unknown = await out.next(), await out.next()
            assert (msg_type(duplicate), get(duplicate, 281)) == ("Y", "1")
            assert (msg_type(unknown), get(unknown, 262), get(unknown, 281)) == ("Y", "a", None)
            assert "no subscription" in str(get(unknown, 58))

            await md.close()
            assert list(md.subscriptions) == []
            await make_market(rt, SPOT, "3000", "3001", tag="after")  # the hub shows it...
            assert out.take() == []  # ...and nobody is told

    run(body)


# -- refusals ------------------------------------------------------------------------------


def test_every_refusal_is_a_reject_with_its_reason(
    tmp_path: Path, dictionary: fix.DataDictionary
) -> None:
    async def body() -> None:
        async with gateway(tmp_path) as rt:
            out = Outbox(dictionary)
            md = FixMarketData(rt, out.send, max_subscriptions=1)

            async def refused(request: fix.Message) -> tuple[str | None, str | None, str]:
                await md.on_market_data_request(request)
                reply = await out.next()
                assert msg_type(reply) == "Y" and out.take() == []
                return get(reply, 262), get(reply, 281), str(get(reply, 58))

            def req(req_id: str, **fields: Any) -> fix.Message:
                return md_request(dictionary, req_id, **fields)

            assert (await refused(req("r0", symbols=(SPOT, "DOGE/USDC"))))[:2] == ("r0", "0")
            assert (await refused(req("r4", kind="5")))[:2] == ("r4", "4")
            depth = await refused(req("r5", depth="101"))
            assert depth[:2] == ("r5", "5") and "100" in depth[2]
            assert (await refused(req("r5b", depth="-1")))[:2] == ("r5b", "5")
            assert (await refused(req("r6", update=None)))[:2] == ("r6", "6")
            assert (await refused(req("r6b", update="2")))[:2] == ("r6b", "6")
            assert (await refused(req("r7", extra={266: "N"})))[:2] == ("r7", "7")
            trades = await refused(req("r8", types=("0", "2")))
            assert trades[:2] == ("r8", "8") and "2" in trades[2]

            anonymous = req("x")
            anonymous.removeField(262)
            assert (await refused(anonymous))[:2] == ("UNKNOWN", None)

            # nothing was subscribed for a refusal, and its id is still free
            assert list(md.subscriptions) == []
            await md.on_market_data_request(req("r0"))
            assert msg_type(await out.next()) == "W"
            assert (await refused(req("r0")))[:2] == ("r0", "1")  # duplicate MDReqID
            # a second subscription beyond the session's limit; a snapshot is no subscription
            assert (await refused(req("r2")))[:2] == ("r2", "2")
            await md.on_market_data_request(req("r2", kind="0"))
            assert msg_type(await out.next()) == "W"
            assert list(md.subscriptions) == ["r0"]
            await md.close()

    run(body)


# -- stale feeds ---------------------------------------------------------------------------


def test_a_stale_feed_is_said_so(tmp_path: Path, dictionary: fix.DataDictionary) -> None:
    async def body() -> None:
        async with gateway(tmp_path) as rt:
            await make_market(rt, SPOT, "2999", "3001")
            out = Outbox(dictionary)
            md = FixMarketData(rt, out.send)
            await md.on_market_data_request(md_request(dictionary, "live"))
            assert [e[4] for e in entries(await out.next())] == [OPEN, OPEN]

            feed = rt.market_data.feeds["internal"]
            assert feed.task is not None
            feed.task.cancel()  # the feed task ended: the internal book is stale from now on
            assert entries(await out.next()) == [
                ("2", "0", "2999", None, None),
                ("2", "1", "3001", None, None),
                ("0", "0", None, None, CLOSED),
                ("0", "1", None, None, CLOSED),
            ]
            await md.on_market_data_request(md_request(dictionary, "stale", kind="0", update=None))
            assert entries(await out.next()) == [
                (None, "0", None, None, CLOSED),
                (None, "1", None, None, CLOSED),
            ]
            await md.close()

    run(body)


def test_a_partly_stale_book_is_non_firm_and_its_levels_change_with_it() -> None:
    def level(price: str, size: str) -> ConsolidatedLevel:
        return ConsolidatedLevel(
            Decimal(price), Decimal(size), (VenueShare("internal", Decimal(price), Decimal(size)),)
        )

    now = datetime(2026, 11, 25, tzinfo=UTC)
    live = ConsolidatedBook(SPOT, (level("2999", "1"),), (), ("binance", "internal"), (), now)
    stale = ConsolidatedBook(SPOT, (level("2999", "1"),), (), ("internal",), ("binance",), now)
    assert list(book_entries(live, ("0", "1")).values()) == [
        BookEntry("0", Decimal("2999"), Decimal("1"), OPEN)
    ]
    partly = book_entries(stale, ("0", "1"))
    assert list(partly.values()) == [
        BookEntry("0", Decimal("2999"), Decimal("1"), NON_FIRM),
        BookEntry("1", None, None, CLOSED),  # no live offer while a venue is stale
    ]
    assert book_changes(book_entries(live, ("0", "1")), partly) == [
        ("1", BookEntry("0", Decimal("2999"), Decimal("1"), NON_FIRM)),
        ("0", BookEntry("1", None, None, CLOSED)),
    ]
    assert list(book_entries(stale, ("0",)).values()) == [
        BookEntry("0", Decimal("2999"), Decimal("1"), NON_FIRM)
    ]


@pytest.mark.parametrize(
    ("value", "text"),
    [("1E+3", "1000"), ("3000.50", "3000.5"), ("0.00010", "0.0001"), ("0E-8", "0"), ("12", "12")],
)
def test_decimals_are_plain_text(value: str, text: str) -> None:
    assert decimal_text(Decimal(value)) == text
