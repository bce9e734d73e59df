"""Uniswap v2 pairs (and forks with the same interface) as a venue, through web3.

Quotes are the pair's own integer math on its current reserves. Swaps go through the
published Router02 so that the input transfer and the swap are one transaction, with the
order's limit price as the slippage bound. The pool fee is inside the prices (so
`fees()` is zero); the gas of a swap is reported separately by `gas_estimate`.

The public tape is the pair's `Swap` events: each is one trade of its net base amount at the
quote paid or received per base (fee included), timed by its block. Block timestamps are
cached; one `fetch_trades` scans at most `max_scan_blocks` blocks, in `get_logs` requests of
`log_chunk_blocks`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from web3 import Web3

from gateway.chain.artifacts import uniswap_v2_periphery
from gateway.chain.transactions import Sender, TransactionError, bind
from gateway.chain.uniswap import ERC20_ABI, get_reserves, pair_contract
from gateway.domain import amm
from gateway.domain.amm import PoolSwap
from gateway.domain.amounts import from_units, to_units
from gateway.domain.clock import Clock
from gateway.domain.instruments import Instrument, InstrumentCatalogue
from gateway.domain.market import (
    Balance,
    FeeSchedule,
    OrderBook,
    PublicTrade,
    VenueKind,
    VenueOrder,
    VenueOrderRequest,
    VenueOrderStatus,
    VenuePosition,
)
from gateway.domain.orders import OrderType, Side
from gateway.venues.in_flight_swaps import InFlightSwaps
from gateway.venues.protocol import VenueError, VenueOrderNotFound, VenueRejected, VenueUnavailable

MAX_UINT = 2**256 - 1
SWAP_GAS_ESTIMATE = 110_000  # a router swap through one pair, measured on anvil
SWAP_TOPIC = Web3.keccak(text="Swap(address,uint256,uint256,uint256,uint256,address)")
BLOCK_TIME_CACHE_SIZE = 100_000


@dataclass(frozen=True, slots=True)
class Pool:
    """One pair, seen as our instrument: `base` and `quote` are token addresses."""

    instrument: str
    pair: str
    base: str
    quote: str
    base_decimals: int
    quote_decimals: int
    fee_bps: int = 30


@dataclass(frozen=True, slots=True)
class AmmQuote:
    """A swap priced on current reserves, in token units."""

    instrument: str
    side: Side
    base_units: int
    quote_units: int  # paid for a buy, received for a sell
    reserve_base: int
    reserve_quote: int

    @property
    def average_price(self) -> Decimal:
        return Decimal(self.quote_units) / Decimal(self.base_units)


# re-read a quiet pool at the head this often: well within the hub's `stale_after`
POOL_HEARTBEAT = timedelta(seconds=1)


class UniswapV2Venue:
    def __init__(
        self,
        name: str,
        w3: Web3,
        router: str,
        pools: Sequence[Pool],
        catalogue: InstrumentCatalogue,
        clock: Clock,
        *,
        trader: Sender | None = None,
        book_levels: int = 20,
        poll_interval: float = 0.5,
        deadline_seconds: int = 300,
        max_scan_blocks: int = 50_000,
        log_chunk_blocks: int = 5_000,
    ) -> None:
        self._name = name
        self._w3 = w3
        self._router = bind(w3, uniswap_v2_periphery("UniswapV2Router02"), router)
        self._pools: dict[str, Pool] = {p.instrument: p for p in pools}
        self._catalogue = catalogue
        self._clock = clock
        self._trader = trader
        self._book_levels = book_levels
        self._poll_interval = poll_interval
        self._deadline_seconds = deadline_seconds
        self._orders: dict[str, VenueOrder] = {}
        self._approved: set[str] = set()
        self._max_scan_blocks = max_scan_blocks
        self._log_chunk_blocks = log_chunk_blocks
        self._block_times: dict[int, int] = {}
        self._base_is_token0: dict[str, bool] = {}
        # pool fills recorded but whose swap has not been mined yet (settled in the batch)
        self.in_flight = InFlightSwaps()

    @property
    def name(self) -> str:
        return self._name

    @property
    def kind(self) -> VenueKind:
        return VenueKind.AMM

    def pool(self, instrument: str) -> Pool:
        try:
            return self._pools[instrument]
        except KeyError:
            raise VenueRejected(f"no pool for {instrument}", venue=self.name) from None

    async def load_instruments(self) -> list[Instrument]:
        return [self._catalogue.get(symbol) for symbol in self._pools]

    # -- quotes ---------------------------------------------------------------------

    def _reserves(self, pool: Pool) -> tuple[int, int]:
        """(base, quote) reserves as the next swap will meet them: the chain's at the latest
        block moved by the pool fills whose swaps are not mined yet."""
        try:
            block = int(self._w3.eth.block_number)
            reserves = get_reserves(self._w3, pool.pair, block)
        except Exception as error:  # connection refused, node gone
            raise VenueUnavailable(f"cannot read {pool.pair}: {error}", venue=self.name) from error
        moved = self.in_flight.reserves(
            pool.pair,
            {reserves.token0: reserves.reserve0, reserves.token1: reserves.reserve1},
            block,
        )
        return moved[Web3.to_checksum_address(pool.base)], moved[
            Web3.to_checksum_address(pool.quote)
        ]

    def quote(self, instrument: str, side: Side, quantity: Decimal) -> AmmQuote:
        """Exact price of buying (exact output) or selling (exact input) `quantity` base."""
        pool = self.pool(instrument)
        base_units = to_units(quantity, pool.base_decimals)
        reserve_base, reserve_quote = self._reserves(pool)
        if side is Side.BUY:
            quote_units = amm.amount_in(base_units, reserve_quote, reserve_base, pool.fee_bps)
        else:
            quote_units = amm.amount_out(base_units, reserve_base, reserve_quote, pool.fee_bps)
        return AmmQuote(instrument, side, base_units, quote_units, reserve_base, reserve_quote)

    def gas_estimate(self) -> int:
        return SWAP_GAS_ESTIMATE

    def plan_swap(self, instrument: str, side: Side, quantity: Decimal, bound: Decimal) -> PoolSwap:
        """The swap that fills `quantity` base at no worse than `bound` (per base), priced on
        the reserves the settlement batch will meet; VenueRejected if the pool cannot.
        Blocking call; the caller holds it in `in_flight` once the fill is recorded."""
        pool = self.pool(instrument)
        priced = self.quote(instrument, side, quantity)
        base_units, quote_units = priced.base_units, priced.quote_units
        if base_units <= 0 or quote_units <= 0:
            raise VenueRejected(
                f"{quantity} {instrument} is too small for the pool", venue=self.name
            )
        worst = self._quote_bound(
            VenueOrderRequest(instrument, side, OrderType.LIMIT, quantity, bound), pool
        )
        if (side is Side.BUY and quote_units > worst) or (
            side is Side.SELL and quote_units < worst
        ):
            raise VenueRejected(
                f"the pool prices {quantity} {instrument} beyond {bound}", venue=self.name
            )
        if side is Side.BUY:
            return PoolSwap(pool.pair, pool.quote, pool.base, quote_units, base_units)
        return PoolSwap(pool.pair, pool.base, pool.quote, base_units, quote_units)

    def reserves(self, instrument: str) -> tuple[Pool, int, int]:
        """The pool and its current (base, quote) reserves in token units (blocking call)."""
        pool = self.pool(instrument)
        reserve_base, reserve_quote = self._reserves(pool)
        return pool, reserve_base, reserve_quote

    def gas_price(self) -> int:
        """The chain's current gas price in wei (blocking call)."""
        try:
            return int(self._w3.eth.gas_price)
        except Exception as error:
            raise VenueUnavailable(
                f"cannot read the gas price: {error}", venue=self.name
            ) from error

    def _book(self, instrument: str, depth: int) -> OrderBook:
        pool = self.pool(instrument)
        reserve_base, reserve_quote = self._reserves(pool)
        lot = self._catalogue.get(instrument).rules.lot_size
        # chunks of about 0.1% of the pool's base, rounded to the lot size
        chunk_size = max(lot, (from_units(reserve_base, pool.base_decimals) / 1000).quantize(lot))
        bids, asks = amm.book_levels(
            reserve_base,
            reserve_quote,
            base_decimals=pool.base_decimals,
            quote_decimals=pool.quote_decimals,
            chunk=to_units(chunk_size, pool.base_decimals),
            levels=depth,
            fee_bps=pool.fee_bps,
        )
        return OrderBook(self.name, instrument, bids, asks, self._clock.now())

    async def fetch_order_book(self, instrument: str, depth: int = 20) -> OrderBook:
        return await asyncio.to_thread(self._book, instrument, depth)

    async def stream_order_books(self, instruments: Sequence[str]) -> AsyncIterator[OrderBook]:
        """The pairs' books read at the chain's head: at once, then at every new block or
        recorded pool fill, and at least every `POOL_HEARTBEAT` on the venue's clock
        while the node answers. Every successful read is yielded, changed or not: the
        market-data hub takes an unchanged book as the proof that the reserves were read at a
        recent head, which is what keeps a quiet pool live. A read that fails raises
        `VenueUnavailable`, and the hub marks the pool stale at once."""
        last_block, last_version = -1, -1
        last_read: datetime | None = None
        while True:
            try:
                block = await asyncio.to_thread(lambda: self._w3.eth.block_number)
            except Exception as error:
                raise VenueUnavailable(f"node unreachable: {error}", venue=self.name) from error
            now = self._clock.now()
            heartbeat = last_read is None or not (
                timedelta(0) <= now - last_read < POOL_HEARTBEAT  # a clock set back: read now
            )
            if heartbeat or block != last_block or self.in_flight.version != last_version:
                last_block, last_version, last_read = block, self.in_flight.version, now
                for symbol in instruments:
                    yield await self.fetch_order_book(symbol, self._book_levels)
            await asyncio.sleep(self._poll_interval)

    # -- public trades (Swap events) ------------------------------------------------------

    async def fetch_trades(
        self, instrument: str, since: datetime | None = None, limit: int = 1000
    ) -> list[PublicTrade]:
        """The pair's swaps, oldest first: from the first block at or after `since` onwards,
        or the most recent ones back from the latest block; at most `max_scan_blocks`
        blocks are scanned either way."""
        pool = self.pool(instrument)
        if limit <= 0:
            return []
        try:
            return await asyncio.to_thread(self._trades, pool, since, limit)
        except VenueError:
            raise
        except Exception as error:  # connection refused, node gone, RPC refused the range
            raise VenueUnavailable(
                f"cannot read swaps of {pool.pair}: {error}", venue=self.name
            ) from error

    def _trades(self, pool: Pool, since: datetime | None, limit: int) -> list[PublicTrade]:
        latest = int(self._w3.eth.block_number)
        chunk = max(1, self._log_chunk_blocks)
        trades: list[PublicTrade] = []
        if since is None:
            floor = max(0, latest - self._max_scan_blocks + 1)
            to_block = latest
            while to_block >= floor and len(trades) < limit:
                from_block = max(floor, to_block - chunk + 1)
                trades = self._swaps(pool, from_block, to_block) + trades
                to_block = from_block - 1
            return trades[-limit:]
        start = self._first_block_at(int(since.timestamp()), latest)
        end = min(latest, start + self._max_scan_blocks - 1)
        from_block = start
        while from_block <= end and len(trades) < limit:
            to_block = min(end, from_block + chunk - 1)
            trades.extend(
                t for t in self._swaps(pool, from_block, to_block) if t.timestamp >= since
            )
            from_block = to_block + 1
        return trades[:limit]

    def _block_time(self, number: int) -> int:
        cached = self._block_times.get(number)
        if cached is None:
            cached = int(self._w3.eth.get_block(number)["timestamp"])
            if len(self._block_times) >= BLOCK_TIME_CACHE_SIZE:
                self._block_times.clear()  # simplest bound; refills on demand
            self._block_times[number] = cached
        return cached

    def _first_block_at(self, seconds: int, latest: int) -> int:
        """The first block whose timestamp is >= `seconds` (latest + 1 if none): block
        timestamps never decrease, so a binary search."""
        low, high = 0, latest + 1
        while low < high:
            middle = (low + high) // 2
            if self._block_time(middle) >= seconds:
                high = middle
            else:
                low = middle + 1
        return low

    def _token0_is_base(self, pool: Pool) -> bool:
        known = self._base_is_token0.get(pool.pair)
        if known is None:
            token0 = pair_contract(self._w3, pool.pair).functions.token0().call()
            known = Web3.to_checksum_address(token0) == Web3.to_checksum_address(pool.base)
            self._base_is_token0[pool.pair] = known
        return known

    def _swaps(self, pool: Pool, from_block: int, to_block: int) -> list[PublicTrade]:
        logs = self._w3.eth.get_logs(
            {
                "address": Web3.to_checksum_address(pool.pair),
                "topics": [SWAP_TOPIC],
                "fromBlock": from_block,
                "toBlock": to_block,
            }
        )
        event = pair_contract(self._w3, pool.pair).events.Swap()
        base_is_token0 = self._token0_is_base(pool)
        trades: list[PublicTrade] = []
        for raw in logs:
            args = event.process_log(raw)["args"]
            in0, in1, out0, out1 = (
                int(args["amount0In"]),
                int(args["amount1In"]),
                int(args["amount0Out"]),
                int(args["amount1Out"]),
            )
            base_out, quote_in = (
                (out0 - in0, in1 - out1)
                if base_is_token0
                else (
                    out1 - in1,
                    in0 - out0,
                )
            )
            if base_out == 0 or quote_in == 0:
                continue  # no net trade (a flash swap repaid in kind)
            base = from_units(abs(base_out), pool.base_decimals)
            quote = from_units(abs(quote_in), pool.quote_decimals)
            block_time = self._block_time(int(raw["blockNumber"]))
            trades.append(
                PublicTrade(
                    venue=self.name,
                    instrument=pool.instrument,
                    trade_id=f"{Web3.to_hex(raw['transactionHash'])}:{int(raw['logIndex'])}",
                    price=quote / base,
                    quantity=base,
                    side=Side.BUY if base_out > 0 else Side.SELL,
                    timestamp=datetime.fromtimestamp(block_time, tz=UTC),
                )
            )
        return trades

    # -- trading --------------------------------------------------------------------

    def _require_trader(self) -> Sender:
        if self._trader is None:
            raise VenueRejected("this AMM venue has no trading account", venue=self.name)
        return self._trader

    def _ensure_allowance(self, trader: Sender, token: str) -> None:
        if token in self._approved:
            return
        erc20 = self._w3.eth.contract(address=Web3.to_checksum_address(token), abi=ERC20_ABI)
        if erc20.functions.allowance(trader.address, self._router.address).call() < MAX_UINT // 2:
            trader.transact(erc20.functions.approve(self._router.address, MAX_UINT))
        self._approved.add(token)

    def _swap(self, request: VenueOrderRequest) -> VenueOrder:
        trader = self._require_trader()
        pool = self.pool(request.instrument)
        if request.order_type not in (OrderType.MARKET, OrderType.LIMIT):
            raise VenueRejected(
                "AMM orders are market or limit (as a price bound)", venue=self.name
            )
        base_units = to_units(request.quantity, pool.base_decimals)
        deadline = self._w3.eth.get_block("latest")["timestamp"] + self._deadline_seconds
        path_in = pool.quote if request.side is Side.BUY else pool.base
        self._ensure_allowance(trader, path_in)
        bound = self._quote_bound(request, pool)
        if request.side is Side.BUY:
            call = self._router.functions.swapTokensForExactTokens(
                base_units, bound, [pool.quote, pool.base], trader.address, deadline
            )
        else:
            call = self._router.functions.swapExactTokensForTokens(
                base_units, bound, [pool.base, pool.quote], trader.address, deadline
            )
        try:
            receipt = trader.transact(call)
        except TransactionError as error:
            raise VenueRejected(f"swap reverted: {error}", venue=self.name) from error
        except Exception as error:
            # Estimation fails with the revert reason when the price bound cannot be met.
            raise VenueRejected(f"swap refused: {error}", venue=self.name) from error
        quote_units = self._quote_moved(receipt, pool, trader.address, request.side)
        filled = from_units(base_units, pool.base_decimals)
        paid = from_units(quote_units, pool.quote_decimals)
        order = VenueOrder(
            venue=self.name,
            venue_order_id=Web3.to_hex(receipt["transactionHash"]),
            instrument=request.instrument,
            side=request.side,
            order_type=request.order_type,
            quantity=request.quantity,
            price=request.price,
            status=VenueOrderStatus.CLOSED,
            filled=filled,
            average_price=paid / filled,
            fee=Decimal(0),
            client_order_id=request.client_order_id,
            timestamp=self._clock.now(),
            network_fee=from_units(
                int(receipt["gasUsed"]) * int(receipt.get("effectiveGasPrice", 0)), 18
            ),
        )
        self._orders[order.venue_order_id] = order
        return order

    def _quote_bound(self, request: VenueOrderRequest, pool: Pool) -> int:
        """Most quote a buy pays, least a sell receives, in token units.

        From the limit price, rounded in the trader's favour; a market order is bounded by
        the current quote (the swap reverts if the pool moved against it meanwhile).
        """
        if request.price is None:
            return self.quote(request.instrument, request.side, request.quantity).quote_units
        rounding = ROUND_FLOOR if request.side is Side.BUY else ROUND_CEILING
        exact = (request.quantity * request.price).quantize(
            Decimal(10) ** -pool.quote_decimals, rounding
        )
        return to_units(exact, pool.quote_decimals)

    def _quote_moved(self, receipt: Any, pool: Pool, trader: str, side: Side) -> int:
        """Quote tokens the swap moved, read from the ERC-20 Transfer logs of the receipt."""
        quote = Web3.to_checksum_address(pool.quote)
        transfer = self._w3.eth.contract(address=quote, abi=ERC20_ABI).events.Transfer()
        moved = 0
        for raw in receipt["logs"]:
            if Web3.to_checksum_address(raw["address"]) != quote:
                continue  # the base token's Transfer has the same signature
            log = transfer.process_log(raw)
            source, target = log["args"]["from"], log["args"]["to"]
            if side is Side.BUY and source == trader and target == pool.pair:
                moved += log["args"]["value"]
            if side is Side.SELL and source == pool.pair and target == trader:
                moved += log["args"]["value"]
        if moved == 0:
            raise VenueError("swap receipt shows no quote transfer", venue=self.name)
        return moved

    async def place_order(self, request: VenueOrderRequest) -> VenueOrder:
        return await asyncio.to_thread(self._swap, request)

    async def cancel_order(self, venue_order_id: str, instrument: str) -> VenueOrder:
        order = await self.fetch_order(venue_order_id, instrument)
        raise VenueRejected(
            f"swap {order.venue_order_id} already settled on chain", venue=self.name
        )

    async def fetch_order(self, venue_order_id: str, instrument: str) -> VenueOrder:
        order = self._orders.get(venue_order_id)
        if order is None or order.instrument != instrument:
            raise VenueOrderNotFound(f"no swap {venue_order_id}", venue=self.name)
        return order

    async def find_order(self, client_order_id: str, instrument: str) -> VenueOrder | None:
        """Swaps sent by this process only: a swap is a transaction, and the chain does not
        know our client order ids, so a swap from before a restart cannot be told apart."""
        for order in self._orders.values():
            if order.client_order_id == client_order_id and order.instrument == instrument:
                return order
        raise VenueUnavailable(
            f"swap {client_order_id} is not one this process sent", venue=self.name
        )

    def _balances(self) -> dict[str, Balance]:
        trader = self._require_trader()
        balances: dict[str, Balance] = {}
        for pool in self._pools.values():
            instrument = self._catalogue.get(pool.instrument)
            for asset, token, decimals in (
                (instrument.base, pool.base, pool.base_decimals),
                (instrument.quote, pool.quote, pool.quote_decimals),
            ):
                erc20 = self._w3.eth.contract(
                    address=Web3.to_checksum_address(token), abi=ERC20_ABI
                )
                units = erc20.functions.balanceOf(trader.address).call()
                balances[asset.symbol] = Balance(asset.symbol, from_units(units, decimals))
        return balances

    async def fetch_balances(self) -> dict[str, Balance]:
        return await asyncio.to_thread(self._balances)

    async def fetch_positions(self) -> list[VenuePosition]:
        return []

    def fees(self, instrument: str) -> FeeSchedule:
        return FeeSchedule(Decimal(0), Decimal(0))  # the pool fee is inside the quotes

    async def close(self) -> None:
        return None
