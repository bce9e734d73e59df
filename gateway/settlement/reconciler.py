"""Follow the Settlement contract's events from a persisted cursor, reorg-aware.

:class:`SettlementReconciler` reads ``BatchSettled``, ``Fill``, ``Traded``, ``StrategyFilled``
and ``SwapExecuted`` logs of one Settlement address block range by block range, up to
``head - confirmations``, and yields :class:`SettledEvent` s in chain order (a ``Traded`` log,
one paired trade, as the ``Fill`` of each of its two orders, both at its log index).

Guarantees:

- Restartable: its whole position is a :class:`ChainCursor` (last processed block, its hash,
  and the hashes of up to ``history`` blocks before it). Persist ``update.cursor`` together
  with the events of the same update, and restart from it: no event is yielded twice and none
  is skipped (events of blocks <= the cursor were delivered; later ones will be).
- Reorgs: before reading further, the cursor's block hash is compared with the chain. If it
  changed, the reconciler walks back through the cursor's recent hashes to the fork point
  (the newest block whose hash still matches) and reports ``reorged_after`` = that block
  number: every event previously yielded above it is undone. The undone events themselves are
  listed in ``undone`` as far as this process saw them (a restarted reconciler knows only the
  hashes, so after a restart rely on ``reorged_after``). A reorg deeper than every
  remembered block rewinds to ``start_block`` (``reorged_after = start_block - 1``: everything
  is re-read). Re-included events are then yielded again with their new block hash.
- Connection errors (a restarting node): retried with exponential backoff (capped), then the
  poll resumes from the cursor; nothing is yielded from a partial read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import requests
from web3 import Web3
from web3.contract import Contract
from web3.types import LogReceipt

from gateway.chain.artifacts import compile_contract
from gateway.chain.transactions import bind

log = logging.getLogger("gateway.settlement")

T = TypeVar("T")

EVENT_NAMES = ("BatchSettled", "Fill", "Traded", "StrategyFilled", "SwapExecuted")
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    OSError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
)


@dataclass(frozen=True, slots=True)
class ChainCursor:
    """The last processed block, its hash, and recent ``(number, hash)`` pairs before it."""

    block_number: int
    block_hash: str
    recent: tuple[tuple[int, str], ...] = ()  # oldest first, excludes block_number

    def to_dict(self) -> dict[str, Any]:
        return {
            "block_number": self.block_number,
            "block_hash": self.block_hash,
            "recent": [[n, h] for n, h in self.recent],
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ChainCursor:
        return cls(
            int(raw["block_number"]),
            str(raw["block_hash"]),
            tuple((int(n), str(h)) for n, h in raw.get("recent", [])),
        )


@dataclass(frozen=True, slots=True)
class SettledEvent:
    """One Settlement event. ``digest`` is set for ``Fill`` and ``StrategyFilled``, ``wallet``
    for ``StrategyFilled`` (a ``Fill``'s digest names its wallet: the EIP-712 domain is the
    wallet); amounts are integers in token units, ``None`` where the event has no such field.
    A ``Fill`` logs no batch id: it is the ``BatchSettled`` one of its transaction."""

    event: str  # BatchSettled | Fill | StrategyFilled | SwapExecuted
    batch_id: int
    tx_hash: str
    block_number: int
    block_hash: str
    log_index: int
    wallet: str | None = None
    digest: bytes | None = None
    amount: int | None = None  # Fill: base units
    quote: int | None = None  # Fill: quote units
    fill: int | None = None  # StrategyFilled: strategy units
    net_quote: int | None = None  # StrategyFilled: paid (>0) / received (<0)
    pair: str | None = None  # SwapExecuted
    token_in: str | None = None
    amount_in: int | None = None
    token_out: str | None = None
    amount_out: int | None = None
    operator: str | None = None  # BatchSettled
    counts: tuple[int, int, int] | None = None  # BatchSettled: orders, strategies, swaps

    @property
    def key(self) -> tuple[str, int, bytes]:
        """Unique per event on the current chain: (block hash, log index, digest); the digest
        tells apart the two fills that one ``Traded`` log stands for."""
        return (self.block_hash, self.log_index, self.digest or b"")


@dataclass(frozen=True, slots=True)
class ReconcileUpdate:
    """One poll's outcome. Apply ``reorged_after`` (drop every recorded event with a higher
    block number) before ``events``; persist ``cursor`` with them."""

    cursor: ChainCursor
    events: tuple[SettledEvent, ...] = ()
    reorged_after: int | None = None
    undone: tuple[SettledEvent, ...] = ()


@dataclass(slots=True)
class _Seen:
    number: int
    hash: str
    events: list[SettledEvent] = field(default_factory=list)


def _position(entry: LogReceipt) -> dict[str, Any]:
    """Where a log is: its transaction, block and index."""
    return {
        "tx_hash": Web3.to_hex(entry["transactionHash"]),
        "block_number": int(entry["blockNumber"]),
        "block_hash": Web3.to_hex(entry["blockHash"]),
        "log_index": int(entry["logIndex"]),
    }


def _decode(contract: Contract, name: str, entry: LogReceipt) -> SettledEvent:
    """One log; a ``Fill``'s batch id is 0 until `_batch_ids` gives it its transaction's."""
    decoded = contract.events[name]().process_log(entry)
    args = decoded["args"]
    common: dict[str, Any] = {"event": name, "batch_id": int(args.get("batch_id", 0))}
    common.update(_position(entry))
    if name == "Fill":
        return SettledEvent(
            **common,
            digest=bytes(args["digest"]),
            amount=int(args["amount"]),
            quote=int(args["quote"]),
        )
    if name == "StrategyFilled":
        return SettledEvent(
            **common,
            wallet=args["wallet"],
            digest=bytes(args["digest"]),
            fill=int(args["fill"]),
            net_quote=int(args["net_quote"]),
        )
    if name == "SwapExecuted":
        return SettledEvent(
            **common,
            pair=args["pair"],
            token_in=args["token_in"],
            amount_in=int(args["amount_in"]),
            token_out=args["token_out"],
            amount_out=int(args["amount_out"]),
        )
    return SettledEvent(
        **common,
        operator=args["operator"],
        counts=(
            int(args["orders"]),
            int(args["strategies"]),
            int(args["swaps"]),
        ),
    )


def _traded(contract: Contract, entry: LogReceipt) -> list[SettledEvent]:
    """A paired trade's ``Traded`` log as the two ``Fill`` s it stands for (buy, then sell),
    both at the log's index."""
    args = contract.events.Traded().process_log(entry)["args"]
    common: dict[str, Any] = {"event": "Fill", "batch_id": 0, **_position(entry)}
    common.update(amount=int(args["amount"]), quote=int(args["quote"]))
    return [
        SettledEvent(**common, digest=bytes(args["buy"])),
        SettledEvent(**common, digest=bytes(args["sell"])),
    ]


def _batch_ids(events: list[SettledEvent]) -> list[SettledEvent]:
    """The events with each ``Fill`` given the batch id of its transaction's ``BatchSettled``
    (a settle() logs exactly one, after its fills)."""
    batch_of = {e.tx_hash: e.batch_id for e in events if e.event == "BatchSettled"}
    return [
        replace(e, batch_id=batch_of.get(e.tx_hash, e.batch_id)) if e.event == "Fill" else e
        for e in events
    ]


class SettlementReconciler:
    """Yields the Settlement contract's settled events, confirmed and reorg-checked."""

    def __init__(
        self,
        rpc_url: str,
        settlement_address: str,
        *,
        start_block: int = 0,
        cursor: ChainCursor | None = None,
        confirmations: int = 0,
        history: int = 128,
        max_blocks_per_poll: int = 2_000,
        poll_interval: float = 0.5,
        retry_initial: float = 0.05,
        retry_max: float = 5.0,
        retry_attempts: int | None = None,  # None: retry forever
        w3: Web3 | None = None,
    ) -> None:
        self.w3 = w3 or Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
        self.settlement: Contract = bind(
            self.w3, compile_contract("Settlement"), settlement_address
        )
        self.start_block = start_block
        self.confirmations = confirmations
        self.history = history
        self.max_blocks_per_poll = max_blocks_per_poll
        self.poll_interval = poll_interval
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.retry_attempts = retry_attempts
        self._topics = {
            Web3.to_hex(Web3.keccak(text=self._signature(name))): name for name in EVENT_NAMES
        }
        # processed blocks, oldest first: the cursor's history plus what this process saw
        self._seen: list[_Seen] = []
        if cursor is not None and not cursor.block_hash:
            self.start_block = cursor.block_number + 1  # nothing processed yet
        elif cursor is not None:
            self._seen = [_Seen(n, h) for n, h in cursor.recent]
            self._seen.append(_Seen(cursor.block_number, cursor.block_hash))

    def _signature(self, name: str) -> str:
        abi = next(
            e for e in self.settlement.abi if e.get("type") == "event" and e.get("name") == name
        )
        inputs: list[dict[str, Any]] = list(abi.get("inputs", []))  # type: ignore[call-overload]
        types = ",".join(str(i["type"]) for i in inputs)
        return f"{name}({types})"

    @property
    def cursor(self) -> ChainCursor | None:
        """Where the next poll continues (None: nothing processed yet; starts at start_block)."""
        if not self._seen:
            return None
        last = self._seen[-1]
        return ChainCursor(
            last.number, last.hash, tuple((s.number, s.hash) for s in self._seen[:-1])
        )

    # -- chain access with retries ------------------------------------------------------------

    async def _retrying(self, fn: Callable[[], T]) -> T:
        delay = self.retry_initial
        attempt = 0
        while True:
            try:
                return await asyncio.to_thread(fn)
            except _CONNECTION_ERRORS as error:
                attempt += 1
                if self.retry_attempts is not None and attempt > self.retry_attempts:
                    raise
                log.warning("settlement node unreachable (%s); retrying in %.2fs", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)

    def _block_hash(self, number: int) -> str | None:
        try:
            block = self.w3.eth.get_block(number)
        except Exception as error:
            if "not found" in str(error).lower():
                return None
            raise
        return Web3.to_hex(block["hash"])

    # -- one poll -----------------------------------------------------------------------------

    def _find_fork(self) -> tuple[int | None, list[SettledEvent]]:
        """If the processed tail left the canonical chain: (the fork point, undone events)."""
        if not self._seen or self._block_hash(self._seen[-1].number) == self._seen[-1].hash:
            return None, []
        undone: list[SettledEvent] = []
        while self._seen:
            tip = self._seen[-1]
            if self._block_hash(tip.number) == tip.hash:
                return tip.number, undone
            undone[:0] = tip.events
            self._seen.pop()
        return self.start_block - 1, undone

    def _poll_once(self) -> ReconcileUpdate:
        reorged_after, undone = self._find_fork()
        head = int(self.w3.eth.block_number)
        target = head - self.confirmations
        first = self._seen[-1].number + 1 if self._seen else self.start_block
        last = min(target, first + self.max_blocks_per_poll - 1)
        events: list[SettledEvent] = []
        if last >= first:
            entries = self.w3.eth.get_logs(
                {
                    "address": self.settlement.address,
                    "fromBlock": first,
                    "toBlock": last,
                    "topics": [list(self._topics)],
                }
            )
            decoded: list[SettledEvent] = []
            for entry in entries:
                name = self._topics.get(Web3.to_hex(entry["topics"][0]))
                if name == "Traded":
                    decoded.extend(_traded(self.settlement, entry))
                elif name is not None:
                    decoded.append(_decode(self.settlement, name, entry))
            by_block: dict[int, list[SettledEvent]] = {}
            for event in _batch_ids(decoded):
                by_block.setdefault(event.block_number, []).append(event)
            # Block hashes are read after the logs: if a reorg slipped in between, a log's
            # block hash differs and this poll is dropped (the next one redoes it). Only the
            # blocks with events and the newest `history` ones are remembered (enough to find
            # a fork point), so a long catch-up reads headers only near the head.
            numbers = sorted(
                set(by_block) | set(range(max(first, last - self.history + 1), last + 1))
            )
            new_seen = [_Seen(n, self._block_hash(n) or "") for n in numbers]
            for seen in new_seen:
                seen.events = sorted(by_block.get(seen.number, []), key=lambda e: e.log_index)
                if any(e.block_hash != seen.hash for e in seen.events) or not seen.hash:
                    return ReconcileUpdate(
                        self._cursor_or_start(), (), reorged_after, tuple(undone)
                    )
            if self._seen and new_seen:
                parent = self.w3.eth.get_block(first)["parentHash"]
                if Web3.to_hex(parent) != self._seen[-1].hash:
                    return ReconcileUpdate(
                        self._cursor_or_start(), (), reorged_after, tuple(undone)
                    )
            for seen in new_seen:
                events.extend(seen.events)
            self._seen.extend(new_seen)
            del self._seen[: max(0, len(self._seen) - self.history)]
        return ReconcileUpdate(self._cursor_or_start(), tuple(events), reorged_after, tuple(undone))

    def _cursor_or_start(self) -> ChainCursor:
        cursor = self.cursor
        if cursor is None:
            return ChainCursor(self.start_block - 1, "")
        return cursor

    async def poll(self) -> ReconcileUpdate:
        """Process every confirmed block after the cursor (at most ``max_blocks_per_poll``)."""
        return await self._retrying(self._poll_once)

    async def follow(self, stop: asyncio.Event | None = None) -> AsyncIterator[ReconcileUpdate]:
        """Poll forever (until ``stop`` is set), yielding every non-empty update."""
        while stop is None or not stop.is_set():
            update = await self.poll()
            if update.events or update.reorged_after is not None:
                yield update
            else:
                await asyncio.sleep(self.poll_interval)
