"""FIX 4.4 market data for one session: the catalogue and the consolidated book.

`FixMarketData` answers a session's SecurityListRequest (x) with a SecurityList (y) and its
MarketDataRequest (V) with a snapshot (W) per symbol, then, for a subscription, refreshes
from the market-data hub's consolidated book (the same book as `GET /v1/book` and the
WebSocket stream: every live venue, prices all-in for a taker). Refusals are a
MarketDataRequestReject (Y). Handlers run on the gateway's event loop; every message is built
completely, then handed to the acceptor's `send`, which fills in the header.

SecurityList (y), one NoRelatedSym entry per instrument:

- Symbol (55): the catalogue's symbol (`WETH/USDC`, `WETH-PERP`, `WETH-20270326-3000-C`).
- SecurityType (167): spot `FOR` (FIX 4.4's foreign exchange contract: `FXSPOT` is not in the
  4.4 dictionary), perpetual `FUT`, option `OPT`.
- SecurityDesc (107): the instrument in words (kind, underlying, strike, expiry time).
- Options: MaturityMonthYear (200) and MaturityDate (541), the expiry's UTC month and date
  (4.4 has no maturity time: SecurityDesc gives it); PutOrCall (201), StrikePrice (202),
  StrikeCurrency (947). A perpetual has no maturity.
- Inverse perpetuals: ContractMultiplier (231), quote per contract.
- Currency (15): the quote asset. RoundLot (561): the lot size. MinTradeVol (562): the
  minimum quantity.
- Text (58): `tick_size=<tick>`, as FIX 4.4 has no tag for it (MinPriceIncrement is 5.0).

SecurityListRequestType (559): 0 by Symbol, 1 by SecurityType, 4 all; 2 (Product) and 3
(TradingSessionID) are answered SecurityRequestResult (560) 1 (unsupported), an unknown
symbol or a type nothing matches with 2 (no instruments found). SubscriptionRequestType (263)
1 is answered as a snapshot (the catalogue does not change while the gateway runs); 2 has
nothing to stop and gets no answer.

MarketDataRequest (V):

- SubscriptionRequestType (263) 0: a W per symbol; 1: a W per symbol, then refreshes until
  a V with 2 and the same MDReqID (262), or the session ends (`close`). MDReqID is unique per
  session: an id already accepted (even a snapshot's, or a subscription since stopped) is
  refused with MDReqRejReason (281) 1.
- MarketDepth (264): levels per side, 0 the full book (as deep as the gateway serves:
  `book_depth_max`); deeper is refused (281 = 5).
- MDUpdateType (265), required with 263 = 1: 0 sends a whole W whenever the book within
  depth changed; 1 sends X with one entry per changed price level, MDUpdateAction (279)
  0 new, 1 change (size or condition), 2 delete, diffed against what this subscription last
  sent. Deletes come first: a client keeping `depth` levels never holds more. Levels that
  leave the depth are deleted explicitly, whatever MDImplicitDelete (547) says.
- NoMDEntryTypes (267): bid 0 and offer 1. Anything else (trades 2, ...) is refused (281 = 8)
  rather than ignored: the consolidated book has no trades, and a client waiting for them
  would wait forever.
- AggregatedBook (266) N is refused (281 = 7): the book is by price level.
- NoRelatedSym (146): catalogue symbols; one unknown symbol refuses the request (281 = 0).
  Nothing is subscribed for a refused request, and its MDReqID stays free.
- Scope, OpenCloseSettlFlag and trading sessions are ignored (one market, one session).
- A session holds at most `MAX_SUBSCRIPTIONS` subscriptions (281 = 2 beyond). Stopping one
  (263 = 2) is not answered; stopping an MDReqID with no running subscription is a Y with no
  MDReqRejReason (none fits) and a Text, as is a V without MDReqID (echoed as `UNKNOWN`).

Entries carry MDEntryType (269), MDEntryPx (270) and MDEntrySize (271) as exact decimal text
(never through a float: QuickFIX's `MDEntryPx` is a double field, so these are string fields),
plus QuoteCondition (276), which says whether the book is complete:

- `A` (open): every venue quoting the instrument is live.
- `I` (non-firm): at least one venue quoting it is stale. The hub never shows a stale venue's
  quotes as live, so the level holds the live venues' quotes only; the book is incomplete.
- `B` (closed): a side with no live level while a venue is stale (every venue quoting the
  instrument is stale, say) is sent as one entry of that MDEntryType with no price and no
  size, rather than as nothing, so that a client tells "nothing is quoted" from "we cannot
  see the quotes". An X deletes that entry (279 = 2 with 276 = B, no price) when quotes come
  back.

A change of condition is a change of the level (279 = 1), so a client always holds the
current condition of each level.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

import quickfix as fix
import quickfix44 as fix44

from gateway.domain.consolidated_book import ConsolidatedBook
from gateway.domain.instruments import EuropeanOption, Instrument, OptionRight, Perpetual
from gateway.venues.market_data import ConflatedBooks

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = logging.getLogger("gateway.fix.market_data")

# tags (FIX 4.4)
CURRENCY = 15
SECURITY_DESC = 107
TEXT = 58
SYMBOL = 55
NO_RELATED_SYM = 146
MATURITY_MONTH_YEAR = 200
PUT_OR_CALL = 201
STRIKE_PRICE = 202
CONTRACT_MULTIPLIER = 231
MD_REQ_ID = 262
SUBSCRIPTION_REQUEST_TYPE = 263
MARKET_DEPTH = 264
MD_UPDATE_TYPE = 265
AGGREGATED_BOOK = 266
NO_MD_ENTRY_TYPES = 267
NO_MD_ENTRIES = 268
MD_ENTRY_TYPE = 269
MD_ENTRY_PX = 270
MD_ENTRY_SIZE = 271
QUOTE_CONDITION = 276
MD_UPDATE_ACTION = 279
MD_REQ_REJ_REASON = 281
SECURITY_TYPE = 167
SECURITY_REQ_ID = 320
SECURITY_RESPONSE_ID = 322
TOT_NO_RELATED_SYM = 393
MATURITY_DATE = 541
SECURITY_LIST_REQUEST_TYPE = 559
SECURITY_REQUEST_RESULT = 560
ROUND_LOT = 561
MIN_TRADE_VOL = 562
LAST_FRAGMENT = 893
STRIKE_CURRENCY = 947

# MDEntryType (269)
BID = "0"
OFFER = "1"
SUPPORTED_ENTRY_TYPES = frozenset({BID, OFFER})

# QuoteCondition (276)
OPEN = "A"
CLOSED = "B"
NON_FIRM = "I"

# MDUpdateAction (279)
NEW = "0"
CHANGE = "1"
DELETE = "2"

# SubscriptionRequestType (263)
SNAPSHOT = "0"
SNAPSHOT_AND_UPDATES = "1"
UNSUBSCRIBE = "2"

# MDUpdateType (265)
FULL_REFRESH = 0
INCREMENTAL_REFRESH = 1

# MDReqRejReason (281)
UNKNOWN_SYMBOL = "0"
DUPLICATE_MD_REQ_ID = "1"
INSUFFICIENT_BANDWIDTH = "2"
UNSUPPORTED_SUBSCRIPTION_REQUEST_TYPE = "4"
UNSUPPORTED_MARKET_DEPTH = "5"
UNSUPPORTED_MD_UPDATE_TYPE = "6"
UNSUPPORTED_AGGREGATED_BOOK = "7"
UNSUPPORTED_MD_ENTRY_TYPE = "8"

# SecurityListRequestType (559)
LIST_BY_SYMBOL = "0"
LIST_BY_SECURITY_TYPE = "1"
LIST_ALL = "4"

# SecurityRequestResult (560)
VALID_REQUEST = 0
INVALID_OR_UNSUPPORTED_REQUEST = 1
NO_INSTRUMENTS_FOUND = 2

# SecurityType (167), by instrument kind: values of the FIX 4.4 dictionary only
SPOT_TYPE = "FOR"
PERPETUAL_TYPE = "FUT"
OPTION_TYPE = "OPT"

# a missing id cannot be echoed, and an empty field is not valid FIX
UNKNOWN_ID = "UNKNOWN"
# subscriptions one session may hold at once: each is a task and a hub mailbox
MAX_SUBSCRIPTIONS = 64


def decimal_text(value: Decimal) -> str:
    """Plain decimal text for PRICE and QTY fields: no exponent, no trailing zeros."""
    if not value.is_finite():
        raise ValueError(f"not a finite decimal: {value}")
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def security_type(instrument: Instrument) -> str:
    if isinstance(instrument, EuropeanOption):
        return OPTION_TYPE
    if isinstance(instrument, Perpetual):
        return PERPETUAL_TYPE
    return SPOT_TYPE


def _description(instrument: Instrument) -> str:
    if isinstance(instrument, EuropeanOption):
        return (
            f"European {instrument.right.value} on {instrument.base.symbol}, strike "
            f"{decimal_text(instrument.strike)} {instrument.quote.symbol}, cash-settled at "
            f"{instrument.expires_at.isoformat()}"
        )
    if isinstance(instrument, Perpetual):
        if instrument.inverse:
            return (
                f"{instrument.base.symbol} inverse perpetual, contracts of "
                f"{decimal_text(instrument.contract_size)} {instrument.quote.symbol}"
            )
        return f"{instrument.base.symbol} linear perpetual in {instrument.quote.symbol}"
    return f"{instrument.base.symbol}/{instrument.quote.symbol} spot"


def security_list_entry(instrument: Instrument) -> fix.Group:
    """One NoRelatedSym entry of a SecurityList (see the module docstring for the tags)."""
    entry = fix44.SecurityList.NoRelatedSym()
    entry.setField(fix.StringField(SYMBOL, instrument.symbol))
    entry.setField(fix.StringField(SECURITY_TYPE, security_type(instrument)))
    entry.setField(fix.StringField(SECURITY_DESC, _description(instrument)))
    if isinstance(instrument, EuropeanOption):
        expiry = instrument.expires_at
        entry.setField(fix.StringField(MATURITY_MONTH_YEAR, f"{expiry:%Y%m}"))
        entry.setField(fix.StringField(MATURITY_DATE, f"{expiry:%Y%m%d}"))
        put_or_call = "1" if instrument.right is OptionRight.CALL else "0"
        entry.setField(fix.StringField(PUT_OR_CALL, put_or_call))
        entry.setField(fix.StringField(STRIKE_PRICE, decimal_text(instrument.strike)))
        entry.setField(fix.StringField(STRIKE_CURRENCY, instrument.quote.symbol))
    if isinstance(instrument, Perpetual) and instrument.inverse:
        multiplier = decimal_text(instrument.contract_size)
        entry.setField(fix.StringField(CONTRACT_MULTIPLIER, multiplier))
    entry.setField(fix.StringField(CURRENCY, instrument.quote.symbol))
    rules = instrument.rules
    entry.setField(fix.StringField(ROUND_LOT, decimal_text(rules.lot_size)))
    entry.setField(fix.StringField(MIN_TRADE_VOL, decimal_text(rules.min_quantity)))
    entry.setField(fix.StringField(TEXT, f"tick_size={decimal_text(rules.tick_size)}"))
    return entry


@dataclass(frozen=True, slots=True)
class BookEntry:
    """One MDEntry: a price level of one side, or a side's `CLOSED` marker (no price)."""

    entry_type: str  # MDEntryType: BID or OFFER
    price: Decimal | None  # None: the CLOSED marker
    size: Decimal | None
    condition: str  # QuoteCondition: OPEN, NON_FIRM or CLOSED

    @property
    def key(self) -> tuple[str, Decimal | None]:
        return (self.entry_type, self.price)


# what a client holds of one instrument's book, in book order (bids best first, then offers)
BookState = dict[tuple[str, Decimal | None], BookEntry]


def book_entries(book: ConsolidatedBook, entry_types: Iterable[str]) -> BookState:
    """The entries of `book` for the requested entry types (see the module docstring)."""
    wanted = set(entry_types)
    stale = bool(book.stale_venues)
    condition = NON_FIRM if stale else OPEN
    state: BookState = {}
    for entry_type, levels in ((BID, book.bids), (OFFER, book.asks)):
        if entry_type not in wanted:
            continue
        for level in levels:
            entry = BookEntry(entry_type, level.price, level.quantity, condition)
            state[entry.key] = entry
        if not levels and stale:
            marker = BookEntry(entry_type, None, None, CLOSED)
            state[marker.key] = marker
    return state


def book_changes(previous: BookState, current: BookState) -> list[tuple[str, BookEntry]]:
    """(MDUpdateAction, entry) turning `previous` into `current`: deletes first (a client
    holding `depth` levels never holds more), then changes, then new levels, in book order."""
    deletes = [(DELETE, entry) for key, entry in previous.items() if key not in current]
    changes = [
        (CHANGE, entry)
        for key, entry in current.items()
        if key in previous and previous[key] != entry
    ]
    news = [(NEW, entry) for key, entry in current.items() if key not in previous]
    return deletes + changes + news


def _set_entry(group: fix.Group, entry: BookEntry, *, delete: bool = False) -> None:
    group.setField(fix.StringField(MD_ENTRY_TYPE, entry.entry_type))
    if entry.price is not None:
        group.setField(fix.StringField(MD_ENTRY_PX, decimal_text(entry.price)))
    if entry.size is not None and not delete:
        group.setField(fix.StringField(MD_ENTRY_SIZE, decimal_text(entry.size)))
    if entry.price is None or not delete:
        # a delete names the level by its price; the CLOSED marker, which has none, by this
        group.setField(fix.StringField(QUOTE_CONDITION, entry.condition))


def snapshot_message(md_req_id: str, symbol: str, state: BookState) -> fix.Message:
    """MarketDataSnapshotFullRefresh (W) of one instrument."""
    message = fix44.MarketDataSnapshotFullRefresh()
    message.setField(fix.StringField(MD_REQ_ID, md_req_id))
    message.setField(fix.StringField(SYMBOL, symbol))
    for entry in state.values():
        group = fix44.MarketDataSnapshotFullRefresh.NoMDEntries()
        _set_entry(group, entry)
        message.addGroup(group)
    if not state:
        message.setField(fix.StringField(NO_MD_ENTRIES, "0"))  # required, even when empty
    return message


def incremental_message(
    md_req_id: str, symbol: str, changes: list[tuple[str, BookEntry]]
) -> fix.Message:
    """MarketDataIncrementalRefresh (X) of one instrument's changes."""
    message = fix44.MarketDataIncrementalRefresh()
    message.setField(fix.StringField(MD_REQ_ID, md_req_id))
    for action, entry in changes:
        group = fix44.MarketDataIncrementalRefresh.NoMDEntries()
        group.setField(fix.StringField(MD_UPDATE_ACTION, action))
        group.setField(fix.StringField(SYMBOL, symbol))
        _set_entry(group, entry, delete=action == DELETE)
        message.addGroup(group)
    return message


def reject_message(md_req_id: str, reason: str | None, text: str) -> fix.Message:
    """MarketDataRequestReject (Y); `reason` None when no MDReqRejReason fits."""
    message = fix44.MarketDataRequestReject()
    message.setField(fix.StringField(MD_REQ_ID, md_req_id))
    if reason is not None:
        message.setField(fix.StringField(MD_REQ_REJ_REASON, reason))
    message.setField(fix.StringField(TEXT, text))
    return message


class Refused(Exception):
    """A MarketDataRequest this session cannot serve: answered with a Y."""

    def __init__(self, reason: str | None, text: str) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text


@dataclass(frozen=True, slots=True)
class MarketDataRequest:
    md_req_id: str
    subscription_type: str
    depth: int
    update_type: int  # FULL_REFRESH or INCREMENTAL_REFRESH (FULL_REFRESH for a snapshot)
    entry_types: tuple[str, ...]
    symbols: tuple[str, ...]


@dataclass
class _Subscription:
    request: MarketDataRequest
    books: ConflatedBooks
    sent: dict[str, BookState]  # by symbol: what the client holds now
    task: asyncio.Task[None] | None = None


def _field(message: fix.FieldMap, tag: int) -> str | None:
    return str(message.getField(tag)) if message.isSetField(tag) else None


class FixMarketData:
    """SecurityListRequest (x) -> SecurityList (y), MarketDataRequest (V) -> snapshot (W)
    then incremental refreshes (X) from the consolidated book, for one FIX session."""

    def __init__(
        self,
        rt: Runtime,
        send: Callable[[fix.Message], None],
        *,
        max_subscriptions: int = MAX_SUBSCRIPTIONS,
    ) -> None:
        self._rt = rt
        self._send = send
        self._max_subscriptions = max_subscriptions
        self._catalogue = rt.orders.catalogue
        self._max_depth = rt.settings.book_depth_max
        self._subscriptions: dict[str, _Subscription] = {}
        # every MDReqID accepted in this session: ids are unique for the session's life
        self._used_ids: set[str] = set()
        self._responses = itertools.count(1)

    @property
    def subscriptions(self) -> tuple[str, ...]:
        """The MDReqIDs of the running subscriptions."""
        return tuple(self._subscriptions)

    # -- security list ----------------------------------------------------------------

    async def on_security_list_request(self, message: fix.Message) -> None:
        if _field(message, SUBSCRIPTION_REQUEST_TYPE) == UNSUBSCRIBE:
            return  # nothing was subscribed: a security list is always a snapshot here
        req_id = _field(message, SECURITY_REQ_ID) or UNKNOWN_ID
        result, instruments = self._select(message)
        reply = fix44.SecurityList()
        reply.setField(fix.StringField(SECURITY_REQ_ID, req_id))
        response_id = f"{req_id}-{next(self._responses)}"
        reply.setField(fix.StringField(SECURITY_RESPONSE_ID, response_id))
        reply.setField(fix.StringField(SECURITY_REQUEST_RESULT, str(result)))
        if result == VALID_REQUEST:
            reply.setField(fix.StringField(TOT_NO_RELATED_SYM, str(len(instruments))))
            reply.setField(fix.StringField(LAST_FRAGMENT, "Y"))
            for instrument in instruments:
                reply.addGroup(security_list_entry(instrument))
        self._send(reply)

    def _select(self, message: fix.Message) -> tuple[int, list[Instrument]]:
        """(SecurityRequestResult, the instruments) of a SecurityListRequest."""
        kind = _field(message, SECURITY_LIST_REQUEST_TYPE)
        if not message.isSetField(SECURITY_REQ_ID) or kind is None:
            return INVALID_OR_UNSUPPORTED_REQUEST, []
        if kind == LIST_ALL:
            found = list(self._catalogue)
        elif kind == LIST_BY_SYMBOL:
            symbol = _field(message, SYMBOL)
            if symbol is None:
                return INVALID_OR_UNSUPPORTED_REQUEST, []
            found = [self._catalogue.get(symbol)] if symbol in self._catalogue else []
        elif kind == LIST_BY_SECURITY_TYPE:
            wanted = _field(message, SECURITY_TYPE)
            if wanted is None:  # CFICode alone: we publish none to match against
                return INVALID_OR_UNSUPPORTED_REQUEST, []
            found = [i for i in self._catalogue if security_type(i) == wanted]
        else:  # Product, TradingSessionID, or not a request type at all
            return INVALID_OR_UNSUPPORTED_REQUEST, []
        return (VALID_REQUEST if found else NO_INSTRUMENTS_FOUND), found

    # -- market data ------------------------------------------------------------------

    async def on_market_data_request(self, message: fix.Message) -> None:
        md_req_id = _field(message, MD_REQ_ID) or UNKNOWN_ID
        try:
            if not message.isSetField(MD_REQ_ID):  # nothing to name the request by later
                raise Refused(None, "MDReqID (262) is required")
            if _field(message, SUBSCRIPTION_REQUEST_TYPE) == UNSUBSCRIBE:
                await self._unsubscribe(md_req_id)
                return
            request = self._parse(message, md_req_id)
        except Refused as refused:
            self._send(reject_message(md_req_id, refused.reason, refused.text))
            return
        self._used_ids.add(request.md_req_id)
        hub = self._rt.market_data
        if request.subscription_type == SNAPSHOT:
            for symbol in request.symbols:
                state = book_entries(hub.book(symbol, request.depth), request.entry_types)
                self._send(snapshot_message(request.md_req_id, symbol, state))
            return
        # subscribed before the snapshot is read: a change after it reaches the mailbox, and
        # the snapshot is exactly the mailbox's first book, so nothing is missed or repeated
        books = hub.subscribe(frozenset(request.symbols), request.depth)
        subscription = _Subscription(request, books, {})
        try:
            for symbol in request.symbols:
                state = book_entries(hub.book(symbol, request.depth), request.entry_types)
                self._send(snapshot_message(request.md_req_id, symbol, state))
                subscription.sent[symbol] = state
        except BaseException:
            hub.unsubscribe(books)
            raise
        self._subscriptions[request.md_req_id] = subscription
        subscription.task = asyncio.create_task(
            self._stream(subscription), name=f"fix-md-{request.md_req_id}"
        )

    def _parse(self, message: fix.Message, md_req_id: str) -> MarketDataRequest:
        kind = _field(message, SUBSCRIPTION_REQUEST_TYPE)
        if kind not in (SNAPSHOT, SNAPSHOT_AND_UPDATES):
            raise Refused(
                UNSUPPORTED_SUBSCRIPTION_REQUEST_TYPE,
                f"SubscriptionRequestType {kind} unsupported: 0 snapshot, 1 snapshot and "
                "updates, 2 stop",
            )
        if md_req_id in self._used_ids or md_req_id in self._subscriptions:
            raise Refused(
                DUPLICATE_MD_REQ_ID, f"MDReqID {md_req_id} was already used in this session"
            )
        if _field(message, AGGREGATED_BOOK) == "N":
            raise Refused(
                UNSUPPORTED_AGGREGATED_BOOK, "only the aggregated book (by price level) is served"
            )
        depth = self._depth(_field(message, MARKET_DEPTH))
        update_type = FULL_REFRESH
        if kind == SNAPSHOT_AND_UPDATES:
            update_type = self._update_type(_field(message, MD_UPDATE_TYPE))
        entry_types = self._entry_types(message)
        symbols = self._symbols(message)
        if kind == SNAPSHOT_AND_UPDATES and len(self._subscriptions) >= self._max_subscriptions:
            raise Refused(
                INSUFFICIENT_BANDWIDTH,
                f"at most {self._max_subscriptions} subscriptions per session: stop one first",
            )
        return MarketDataRequest(md_req_id, kind, depth, update_type, entry_types, symbols)

    def _depth(self, text: str | None) -> int:
        limit = self._max_depth
        try:
            depth = int(text) if text is not None else -1
        except ValueError:
            depth = -1
        if depth < 0 or depth > limit:
            raise Refused(
                UNSUPPORTED_MARKET_DEPTH,
                f"MarketDepth {text} unsupported: 1 to {limit} levels, or 0 for the full book "
                f"({limit} levels)",
            )
        return depth or limit

    @staticmethod
    def _update_type(text: str | None) -> int:
        if text == str(FULL_REFRESH):
            return FULL_REFRESH
        if text == str(INCREMENTAL_REFRESH):
            return INCREMENTAL_REFRESH
        raise Refused(
            UNSUPPORTED_MD_UPDATE_TYPE,
            f"MDUpdateType {text} unsupported: 0 full refresh or 1 incremental refresh, "
            "required with SubscriptionRequestType 1",
        )

    @staticmethod
    def _entry_types(message: fix.Message) -> tuple[str, ...]:
        types: list[str] = []
        group = fix44.MarketDataRequest.NoMDEntryTypes()
        for index in range(1, message.groupCount(NO_MD_ENTRY_TYPES) + 1):
            message.getGroup(index, group)
            entry_type = _field(group, MD_ENTRY_TYPE)
            if entry_type not in SUPPORTED_ENTRY_TYPES:
                raise Refused(
                    UNSUPPORTED_MD_ENTRY_TYPE,
                    f"MDEntryType {entry_type} unsupported: 0 bid and 1 offer only",
                )
            if entry_type not in types:
                types.append(entry_type)
        if not types:
            raise Refused(UNSUPPORTED_MD_ENTRY_TYPE, "no MDEntryType: ask for 0 bid, 1 offer")
        return tuple(types)

    def _symbols(self, message: fix.Message) -> tuple[str, ...]:
        symbols: list[str] = []
        group = fix44.MarketDataRequest.NoRelatedSym()
        for index in range(1, message.groupCount(NO_RELATED_SYM) + 1):
            message.getGroup(index, group)
            symbol = _field(group, SYMBOL)
            if symbol is None or symbol not in self._catalogue:
                raise Refused(UNKNOWN_SYMBOL, f"unknown symbol {symbol}")
            if symbol not in symbols:
                symbols.append(symbol)
        if not symbols:
            raise Refused(UNKNOWN_SYMBOL, "no symbol: NoRelatedSym names the instruments")
        return tuple(symbols)

    async def _unsubscribe(self, md_req_id: str) -> None:
        subscription = self._subscriptions.pop(md_req_id, None)
        if subscription is None:
            # no MDReqRejReason says "no such subscription": the text does
            raise Refused(None, f"no subscription with MDReqID {md_req_id} to stop")
        await self._stop(subscription)

    async def _stop(self, subscription: _Subscription) -> None:
        task = subscription.task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._rt.market_data.unsubscribe(subscription.books)

    async def close(self) -> None:
        """Stop every subscription (the session logged out or was lost)."""
        subscriptions = list(self._subscriptions.values())
        self._subscriptions.clear()
        for subscription in subscriptions:
            await self._stop(subscription)

    async def _stream(self, subscription: _Subscription) -> None:
        request = subscription.request
        try:
            while True:
                for book in await subscription.books.next():
                    self._refresh(subscription, book)
        except asyncio.CancelledError:
            raise
        except Exception:
            # a send that failed (the session is going away) or a bug: this subscription
            # ends, the session's others go on
            log.exception("market data subscription %s ended", request.md_req_id)
            if self._subscriptions.get(request.md_req_id) is subscription:
                del self._subscriptions[request.md_req_id]
            self._rt.market_data.unsubscribe(subscription.books)

    def _refresh(self, subscription: _Subscription, book: ConsolidatedBook) -> None:
        request = subscription.request
        symbol = book.instrument
        previous = subscription.sent.get(symbol, {})
        state = book_entries(book, request.entry_types)
        if request.update_type == FULL_REFRESH:
            # list order matters too: a whole refresh is sent whenever the client's book differs
            if list(state.values()) != list(previous.values()):
                self._send(snapshot_message(request.md_req_id, symbol, state))
        else:
            changes = book_changes(previous, state)
            if changes:
                self._send(incremental_message(request.md_req_id, symbol, changes))
        subscription.sent[symbol] = state
