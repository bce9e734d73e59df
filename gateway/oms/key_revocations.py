"""A trading key's revocation (or expiry) takes effect in the gateway, not only on chain.

Intake refuses a revoked or expired key's new orders (`order_signatures`), but orders the key
signed while it was active may still rest on the internal book or run as a legged strategy.
The wallet refuses them at settlement ("wallet: bad signature" / "wallet: key expired"), and
with them the whole trade group, so the innocent counterparty's fill fails too. Each cycle of
`KeyRevocationFollower` therefore finds the open orders signed by a key the wallet would now
refuse, and cancels them the way an owner's cancel does (audited `order.cancelled`, with the
reason saying which key and why). Orders signed by the owner or by other keys stay.

Which keys: every open order with a 65-byte (ECDSA) signature is recovered to its signer
(once per order); a signer that is not the wallet's owner is one of its trading keys. The
key's record (`trading_key(key)`) is the truth: revoked is an erased record (expiry 0),
expired is an expiry before the latest block's timestamp (the wallet's own rule). Records are
read once and kept while the key has open orders; `KeyRevoked` and `KeyAuthorised` logs
(eth_getLogs by topic, from the block after the last one read) say which kept records changed
and must be read again. So nothing needs persisting: after a restart every key is read afresh,
and a re-scan only reads a record again. The last `confirmations` blocks (the settlement
reconciler's depth) are scanned again on the next cycle, so a log a reorg of at most that depth
moves to another block is still seen; cancelling earlier than confirmed is the safe direction.

Algos are not followed: a trading key cannot start one, and an algo's children are unsigned.

What stays open, by design: between the block that revokes the key (or passes its expiry) and
the next cycle, a key-signed resting order can still match. The chain then refuses the trade
group and the counterparty's order is marked settlement_failed, as for any refused trade
(`SettlementService`). The follower's interval bounds that window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

from sqlalchemy import Engine
from web3 import Web3

from gateway.chain import signatures as chain
from gateway.domain.errors import DomainError
from gateway.domain.orders import Order, TimeInForce
from gateway.domain.trading_keys import TradingKey
from gateway.matching import OpenOrder
from gateway.oms.internal_book import InternalBook
from gateway.oms.legging_runner import LeggingRunner
from gateway.oms.order_signatures import OrderSignatures
from gateway.oms.service import OrderService
from gateway.settlement import eip712
from gateway.store import order_repository as repo

log = logging.getLogger("gateway.keys")
T = TypeVar("T")

# A longer gap (the follower stopped for a while) is not read log by log: every kept record is
# read again instead, which costs one call per key rather than a huge log query.
MAX_LOG_BLOCKS: Final = 10_000
_IMMEDIATE: Final = (TimeInForce.IOC, TimeInForce.FOK)

WalletKey = tuple[str, str]  # (wallet, key), both checksummed


def revoked_reason(key: str) -> str:
    return f"trading key {key} revoked by the wallet's owner"


def expired_reason(key: str) -> str:
    return f"trading key {key} expired"


def refusal(key: str, record: TradingKey, chain_time: int) -> str | None:
    """Why the wallet would refuse what `key` signed at a block of `chain_time` (None: it
    would not): an erased record is a revocation (intake never accepts a signer that never
    was a key), an expiry before the block's timestamp is an expiry."""
    if not record.exists:
        return revoked_reason(key)
    if record.expiry < chain_time:
        return expired_reason(key)
    return None


@dataclass(frozen=True, slots=True)
class KeySweep:
    """One cycle: the keys the wallets now refuse that still had open orders (wallet, key,
    reason), the orders cancelled, and the legged strategies whose run was told to stop."""

    refused: tuple[tuple[str, str, str], ...]
    cancelled: tuple[Order, ...]
    stopped: tuple[str, ...]


class KeyRevocationFollower:
    def __init__(
        self,
        signatures: OrderSignatures,
        read_engine: Engine,
        orders: OrderService,
        book: InternalBook,
        legging: LeggingRunner,
        *,
        confirmations: int = 0,
    ) -> None:
        self._signatures = signatures
        self._read_engine = read_engine
        self._orders = orders
        self._book = book
        self._legging = legging
        self.confirmations = confirmations
        self._cursor: int | None = None  # the newest block whose key logs were read
        # records read from the chain, kept while their key has open orders and no log says
        # they changed
        self._records: dict[WalletKey, TradingKey] = {}
        # order id -> its ECDSA signer (None: none to follow); a signature never changes
        self._signers: dict[str, str | None] = {}

    async def _chain(self, read: Callable[[], T]) -> T:
        return await asyncio.to_thread(read)

    async def run(self, interval: float) -> None:
        """A cycle at once (keys revoked while the gateway was down), then every `interval`."""
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("following trading-key revocations failed")
            await asyncio.sleep(interval)

    async def run_once(self) -> KeySweep:
        w3 = self._signatures.w3
        head = await self._chain(lambda: w3.eth.get_block("latest"))
        await self._forget_changed(int(head["number"]))
        by_key = await self._key_signed_orders()
        reasons: dict[str, str] = {}
        refused: list[tuple[str, str, str]] = []
        for (wallet, key), order_ids in by_key.items():
            reason = refusal(key, await self._record(wallet, key), int(head["timestamp"]))
            if reason is not None:
                refused.append((wallet, key, reason))
                reasons.update((order_id, reason) for order_id in order_ids)
        if not reasons:
            return KeySweep(tuple(refused), (), ())
        cancelled, stopped = await self._cancel(reasons, await self._orders_by_ids(reasons))
        for wallet, key, reason in refused:
            count = len(by_key[(wallet, key)])
            log.warning("%s (wallet %s): cancelling its %d open orders", reason, wallet, count)
        return KeySweep(tuple(refused), tuple(cancelled), tuple(stopped))

    async def _forget_changed(self, head: int) -> None:
        """Drop the kept records that a key log since the last cycle may have changed."""
        if self._cursor is not None:
            first = max(self._cursor + 1 - self.confirmations, 0)
            if head - first >= MAX_LOG_BLOCKS:
                self._records.clear()
            elif first <= head:
                w3 = self._signatures.w3
                changed = await self._chain(lambda: chain.key_changes(w3, first, head))
                for pair in changed:
                    self._records.pop(pair, None)
        # the first cycle reads nothing: no record is kept yet, each is read afresh
        self._cursor = head

    async def _key_signed_orders(self) -> dict[WalletKey, list[str]]:
        """The ids of the open orders signed by a trading key, by (wallet, key).

        Every cycle reads the open signed orders' ids and accounts only; an order is read
        whole once, the first time it is seen, to recover its signer. So a cycle costs a
        few microseconds per resting order, not the building of every order again."""

        known = frozenset(self._signers)

        def read() -> tuple[list[tuple[str, str]], list[Order]]:
            with self._read_engine.connect() as connection:
                open_signed = repo.open_signed_order_accounts(connection)
                new = [order_id for order_id, _ in open_signed if order_id not in known]
                return open_signed, [stored.order for stored in repo.get_orders(connection, new)]

        open_signed, new_orders = await asyncio.to_thread(read)
        await self._recover_signers(new_orders)
        by_key: dict[WalletKey, list[str]] = {}
        owners: dict[str, str | None] = {}
        for order_id, account in open_signed:
            signer = self._signers.get(order_id)
            if signer is None:
                continue
            wallet = Web3.to_checksum_address(account)
            if wallet not in owners:
                try:
                    owners[wallet] = Web3.to_checksum_address(await self._signatures.owner(wallet))
                except DomainError:
                    owners[wallet] = None  # cannot be read now: keep its orders, next cycle
            owner = owners[wallet]
            if owner is not None and signer != owner:
                by_key.setdefault((wallet, signer), []).append(order_id)
        # memory follows the open orders
        open_ids = {order_id for order_id, _ in open_signed}
        self._signers = {i: s for i, s in self._signers.items() if i in open_ids}
        self._records = {pair: r for pair, r in self._records.items() if pair in by_key}
        return by_key

    async def _orders_by_ids(self, order_ids: Mapping[str, str]) -> dict[str, Order]:
        def read() -> list[Order]:
            with self._read_engine.connect() as connection:
                return [stored.order for stored in repo.get_orders(connection, list(order_ids))]

        return {order.id: order for order in await asyncio.to_thread(read)}

    async def _recover_signers(self, orders: Sequence[Order]) -> None:
        """The ECDSA signer of each order not seen before (recovery is CPU work: off the
        event loop, all at once)."""
        pending: list[tuple[str, bytes, bytes]] = []
        for order in orders:
            signed = order.spec.signed
            if order.id in self._signers:
                continue
            if signed is None or chain.is_contract_length(signed.signature):
                self._signers[order.id] = None  # unsigned, or a contract owner's (EIP-1271)
                continue
            try:
                digest = await self._signatures.digest(order.spec, signed)
            except DomainError:
                self._signers[order.id] = None  # not an on-chain order: nothing to follow
                continue
            pending.append((order.id, digest, signed.signature))
        if pending:
            self._signers.update(await asyncio.to_thread(_recover, pending))

    async def _record(self, wallet: str, key: str) -> TradingKey:
        pair = (wallet, key)
        record = self._records.get(pair)
        if record is None:
            record = await self._signatures.trading_key(wallet, key)
            self._records[pair] = record
        return record

    async def _cancel(
        self, reasons: Mapping[str, str], orders: Mapping[str, Order]
    ) -> tuple[list[Order], list[str]]:
        """Cancel each order with its reason, by the path an owner's cancel takes."""
        cancelled = await self._book.cancel_where(lambda view: _reason_of(reasons, view))
        done = {order.id for order in cancelled}
        stopped: list[str] = []
        for order_id, reason in reasons.items():
            if order_id in done:
                continue
            if self._legging.is_running(order_id):
                # as DELETE /v1/orders/{id}: the run stops (an unbalanced clip is rebalanced
                # first) and then cancels the strategy order's rest; asked once only
                with contextlib.suppress(DomainError):
                    if (await self._legging.get(order_id)).stop is None:
                        await self._legging.cancel(order_id)
                        stopped.append(order_id)
                continue
            order = orders.get(order_id)
            if order is not None and order.spec.time_in_force in _IMMEDIATE:
                continue  # being routed right now: it ends with its request and never rests
            with contextlib.suppress(DomainError):  # it ended meanwhile: nothing to cancel
                cancelled.append(await self._orders.cancel(order_id, reason=reason))
        return cancelled, stopped


def _reason_of(reasons: Mapping[str, str], view: OpenOrder) -> str | None:
    return reasons.get(view.order_id)


def _recover(pending: Sequence[tuple[str, bytes, bytes]]) -> dict[str, str | None]:
    signers: dict[str, str | None] = {}
    for order_id, digest, signature in pending:
        try:
            signers[order_id] = eip712.recover_digest_signer(digest, signature)
        except ValueError:  # SignatureError included: intake would not have taken it
            signers[order_id] = None
    return signers
