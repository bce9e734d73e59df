"""Send settlement batches: simulate, bisect, sign, replace, confirm.

:class:`SettlementSender` settles one batch at a time (an ``asyncio.Lock``) from the operator's
key. Guarantees, per :meth:`SettlementSender.settle` call:

- Nothing is sent that did not simulate successfully (``eth_call`` of ``settle`` from the
  operator against the latest block). A reverting batch is bisected by groups: each half is
  simulated, recursively down to single groups; a group that reverts alone is *rejected* with
  its revert reason; groups that pass alone but revert together with the others are
  *deferred* (retry them in a later batch). The rest goes out as one transaction, so a bad
  group never holds up the others and a group is never split.
- The operator nonce is read once from the chain (``pending``) and then kept locally; it is
  re-read after a "nonce too low" error, after a reorg and after any send failure.
- Fees are EIP-1559: ``max_fee = base_fee * base_fee_multiplier + priority_fee`` from the
  latest block (capped by ``max_fee_cap``). A transaction not mined within ``replace_after``
  (blocks and/or seconds) is replaced with the same nonce at the higher of +12.5% (rounded
  up; what nodes require) and the current market fee, at most ``max_bumps`` times. Whichever
  version is mined is the one reported.
- A mined transaction is reported ``confirmed`` only once ``confirmations`` blocks sit on top
  of its block and the block at its height still has the receipt's hash. If the block was
  reorged away and the node re-queued the transaction, it is waited for again (same nonce);
  if it is in no canonical block and not pending, it is reported ``reorged`` and the local
  nonce is re-read: the caller resubmits the same groups. If the old transaction is
  re-included meanwhile, the wallets' single-use order nonces make the resubmission reject
  (never settle twice); the reconciler's events are the ground truth.

Limits: simulation and sending are not atomic, so a batch can still revert on chain if the
state changes in between (reported ``reverted``); a transaction the node drops is only
noticed through the replacement path (its nonce stays pending).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from eth_account import Account
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.logs import DISCARD
from web3.types import TxParams, TxReceipt, Wei

from gateway.chain.artifacts import compile_contract
from gateway.chain.transactions import bind
from gateway.settlement.batch_builder import settle_call
from gateway.settlement.items import (
    OrderSettlement,
    SettlementGroup,
    StrategySettlement,
    SwapSettlement,
)
from gateway.telemetry import tracing

log = logging.getLogger("gateway.settlement")

T = TypeVar("T")


class BatchStatus(enum.StrEnum):
    CONFIRMED = "confirmed"  # mined, `confirmations` deep, block still canonical
    REVERTED = "reverted"  # mined with status 0 (the nonce is spent, nothing settled)
    REORGED = "reorged"  # its block left the canonical chain: resubmit


class SettlementTimeoutError(RuntimeError):
    """No version of the transaction was mined within ``timeout_seconds``."""


@dataclass(frozen=True, slots=True)
class FeePolicy:
    """EIP-1559 fees, in wei."""

    priority_fee: int = 10**9
    base_fee_multiplier: int = 2
    max_fee_cap: int | None = None  # never bid more than this per gas
    max_priority_fee_cap: int | None = None
    bump_numerator: int = 1125  # replacements: at least old * 1125 / 1000 (+12.5%)
    bump_denominator: int = 1000
    max_bumps: int = 5


@dataclass(frozen=True, slots=True)
class SenderConfig:
    confirmations: int = 0  # blocks on top of the inclusion block
    replace_after_blocks: int | None = 3
    replace_after_seconds: float | None = None
    poll_interval: float = 0.05  # seconds between chain polls
    timeout_seconds: float = 600.0
    gas_multiplier_percent: int = 120
    gas_margin: int = 10_000


@dataclass(frozen=True, slots=True)
class RejectedGroup:
    group: SettlementGroup
    reason: str


@dataclass(frozen=True, slots=True)
class SentBatch:
    """The transaction that carried a batch and what it did."""

    batch_id: int
    groups: tuple[SettlementGroup, ...]
    tx_hash: str
    nonce: int
    block_number: int
    block_hash: str
    gas_used: int
    status: BatchStatus
    item_log_index: dict[str, int]  # item_id -> log index of its Fill/StrategyFilled/SwapExecuted
    replaced_tx_hashes: tuple[str, ...] = ()  # every other version sent with this nonce


@dataclass(frozen=True, slots=True)
class SettlementResult:
    batch: SentBatch | None  # None when nothing was left to send
    rejected: tuple[RejectedGroup, ...] = ()
    deferred: tuple[SettlementGroup, ...] = ()  # valid alone, conflicting together: retry


class Stage(enum.StrEnum):
    SENT = "sent"  # first version broadcast
    REPLACED = "replaced"  # a higher-fee version with the same nonce broadcast
    MINED = "mined"  # a version has a receipt (not yet confirmed)


@dataclass(frozen=True, slots=True)
class SendProgress:
    """Reported to ``on_progress`` as a batch moves (e.g. to record the tx hash early)."""

    stage: Stage
    batch_id: int
    tx_hash: str
    nonce: int
    block_number: int | None = None


@dataclass(slots=True)
class _Attempt:
    tx_hash: HexBytes
    max_fee: int
    priority_fee: int


@dataclass(slots=True)
class _Partition:
    ok: list[SettlementGroup] = field(default_factory=list)
    rejected: list[RejectedGroup] = field(default_factory=list)
    deferred: list[SettlementGroup] = field(default_factory=list)


def _revert_reason(error: Exception) -> str:
    if isinstance(error, ContractLogicError):
        return str(error.message or error)
    return str(error)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _hex(value: bytes) -> str:
    return Web3.to_hex(value)


class SettlementSender:
    """Settles batches of :class:`SettlementGroup` through ``Settlement.settle``."""

    def __init__(
        self,
        rpc_url: str,
        operator_key: str | bytes,
        settlement_address: str,
        chain_id: int,
        *,
        fees: FeePolicy | None = None,
        config: SenderConfig | None = None,
        w3: Web3 | None = None,
        on_progress: Callable[[SendProgress], None] | None = None,
    ) -> None:
        self.w3 = w3 or Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
        self.on_progress = on_progress
        self.account: LocalAccount = Account.from_key(operator_key)
        self.chain_id = chain_id
        self.fees = fees or FeePolicy()
        self.config = config or SenderConfig()
        self.settlement: Contract = bind(
            self.w3, compile_contract("Settlement"), settlement_address
        )
        self._nonce: int | None = None
        self._lock = asyncio.Lock()
        # replicas: raises unless this process still holds the settlement role (by its own
        # clock), so a sender paused past its lease never broadcasts on waking up
        self.before_send: Callable[[], None] | None = None

    @property
    def operator(self) -> str:
        return self.account.address

    # -- nonce --------------------------------------------------------------------------------

    def _next_nonce(self) -> int:
        if self._nonce is None:
            self._nonce = self.w3.eth.get_transaction_count(self.account.address, "pending")
        return self._nonce

    def resync_nonce(self) -> None:
        """Forget the local nonce; the next send reads it from the chain (``pending``)."""
        self._nonce = None

    # -- simulation and bisection -------------------------------------------------------------

    def _simulate(self, batch_id: int, groups: Sequence[SettlementGroup]) -> str | None:
        """The revert reason of settling ``groups`` now, or None if it would succeed."""
        try:
            # a malformed item (e.g. a high-s signature) fails here, like a revert would
            settle_call(self.settlement, batch_id, groups).call(
                {"from": self.account.address}, block_identifier="latest"
            )
        except (ContractLogicError, ValueError) as error:
            return _revert_reason(error)
        return None

    def _partition(self, batch_id: int, groups: list[SettlementGroup]) -> _Partition:
        reason = self._simulate(batch_id, groups)
        if reason is None:
            return _Partition(ok=list(groups))
        if len(groups) == 1:
            return _Partition(rejected=[RejectedGroup(groups[0], reason)])
        middle = len(groups) // 2
        left = self._partition(batch_id, groups[:middle])
        right = self._partition(batch_id, groups[middle:])
        merged = _Partition(
            ok=left.ok + right.ok,
            rejected=left.rejected + right.rejected,
            deferred=left.deferred + right.deferred,
        )
        if left.ok and right.ok and self._simulate(batch_id, merged.ok) is not None:
            # each half settles alone but not together: keep the first, retry the rest later
            merged.ok = left.ok
            merged.deferred += right.ok
        return merged

    # -- fees and sending ---------------------------------------------------------------------

    def _market_fees(self) -> tuple[int, int]:
        base = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
        tip = self.fees.priority_fee
        if self.fees.max_priority_fee_cap is not None:
            tip = min(tip, self.fees.max_priority_fee_cap)
        max_fee = base * self.fees.base_fee_multiplier + tip
        if self.fees.max_fee_cap is not None:
            max_fee = min(max_fee, self.fees.max_fee_cap)
        return max_fee, min(tip, max_fee)

    def _bumped_fees(self, previous: _Attempt) -> tuple[int, int]:
        num, den = self.fees.bump_numerator, self.fees.bump_denominator
        market_fee, market_tip = self._market_fees()
        max_fee = max(_ceil_div(previous.max_fee * num, den), market_fee)
        tip = max(_ceil_div(previous.priority_fee * num, den), market_tip)
        # a cap may keep us below +12.5%: the node then refuses the replacement, and we wait
        if self.fees.max_fee_cap is not None:
            max_fee = min(max_fee, self.fees.max_fee_cap)
        return max_fee, min(tip, max_fee)

    def _sign_and_send(self, tx: dict[str, Any], max_fee: int, tip: int) -> HexBytes:
        tx = dict(tx, maxFeePerGas=Wei(max_fee), maxPriorityFeePerGas=Wei(tip))
        signed = self.account.sign_transaction(tx)
        if self.before_send is not None:
            self.before_send()
        return self.w3.eth.send_raw_transaction(signed.raw_transaction)

    def _send_new(self, fn: Any) -> tuple[dict[str, Any], _Attempt, int]:
        """Build, sign and send the first version; resyncs the nonce once if it is too low.
        Also returns the head block read before sending (``replace_after_blocks`` counts from
        it, so a block mined right after the send is never missed)."""
        for attempt in range(2):
            nonce = self._next_nonce()
            gas = fn.estimate_gas({"from": self.account.address})
            cfg = self.config
            tx: dict[str, Any] = cast(
                dict[str, Any],
                fn.build_transaction(
                    cast(
                        TxParams,
                        {
                            "from": self.account.address,
                            "nonce": nonce,
                            "chainId": self.chain_id,
                            "gas": gas * cfg.gas_multiplier_percent // 100 + cfg.gas_margin,
                            "maxFeePerGas": Wei(1),
                            "maxPriorityFeePerGas": Wei(1),
                        },
                    )
                ),
            )
            max_fee, tip = self._market_fees()
            head = int(self.w3.eth.block_number)
            try:
                tx_hash = self._sign_and_send(tx, max_fee, tip)
            except Exception as error:
                self.resync_nonce()
                if attempt == 0 and "nonce too low" in str(error).lower():
                    continue
                raise
            self._nonce = nonce + 1
            return tx, _Attempt(tx_hash, max_fee, tip), head
        raise AssertionError("unreachable")

    def _replace(self, tx: dict[str, Any], previous: _Attempt) -> _Attempt | None:
        max_fee, tip = self._bumped_fees(previous)
        try:
            return _Attempt(self._sign_and_send(tx, max_fee, tip), max_fee, tip)
        except Web3RPCError as error:
            # e.g. the old version was mined in the meantime ("nonce too low") or the cap
            # keeps the bump too small ("underpriced"): keep waiting for what is out there
            log.warning("replacing nonce %s failed: %s", tx["nonce"], error)
            return None

    # -- waiting ------------------------------------------------------------------------------

    def _receipt_of(self, attempts: Sequence[_Attempt]) -> TxReceipt | None:
        for attempt in attempts:
            try:
                return self.w3.eth.get_transaction_receipt(attempt.tx_hash)
            except TransactionNotFound:
                continue
        return None

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    def _report(self, progress: SendProgress) -> None:
        if self.on_progress is not None:
            self.on_progress(progress)

    async def _wait_mined(
        self, batch_id: int, tx: dict[str, Any], attempts: list[_Attempt], sent_at_block: int
    ) -> TxReceipt:
        """Poll until a version of ``tx`` is mined, replacing it when due (appends to
        ``attempts``)."""
        cfg = self.config
        started = time.monotonic()
        since_block, since_time = sent_at_block, started
        while True:
            receipt = await self._call(self._receipt_of, attempts)
            if receipt is not None:
                self._report(
                    SendProgress(
                        Stage.MINED,
                        batch_id,
                        _hex(receipt["transactionHash"]),
                        int(tx["nonce"]),
                        int(receipt["blockNumber"]),
                    )
                )
                return receipt
            now = time.monotonic()
            if now - started > cfg.timeout_seconds:
                raise SettlementTimeoutError(
                    f"nonce {tx['nonce']}: none of {len(attempts)} versions mined"
                )
            head = await self._call(lambda: self.w3.eth.block_number)
            due = (
                cfg.replace_after_blocks is not None
                and head - since_block >= cfg.replace_after_blocks
            ) or (
                cfg.replace_after_seconds is not None
                and now - since_time >= cfg.replace_after_seconds
            )
            if due and len(attempts) <= self.fees.max_bumps:
                replacement = await self._call(self._replace, tx, attempts[-1])
                if replacement is not None:
                    attempts.append(replacement)
                    self._report(
                        SendProgress(
                            Stage.REPLACED, batch_id, _hex(replacement.tx_hash), int(tx["nonce"])
                        )
                    )
                    log.info(  # the hash under its own key: logs mask 32-byte hex in text
                        "nonce %s replaced by a higher-fee version",
                        tx["nonce"],
                        extra={"tx_hash": _hex(replacement.tx_hash)},
                    )
                since_block, since_time = head, now
            await asyncio.sleep(cfg.poll_interval)

    def _canonical_receipt(self, attempts: Sequence[_Attempt]) -> TxReceipt | None:
        """The receipt of a version whose block is canonical now, if any."""
        receipt = self._receipt_of(attempts)
        if receipt is None:
            return None
        block = self.w3.eth.get_block(receipt["blockNumber"])
        return receipt if block["hash"] == receipt["blockHash"] else None

    def _requeued(self, attempts: Sequence[_Attempt]) -> bool:
        """Whether the node holds a version as pending again (some nodes re-queue the
        transactions of orphaned blocks; anvil's ``anvil_reorg`` drops them)."""
        for attempt in attempts:
            try:
                found = self.w3.eth.get_transaction(attempt.tx_hash)
            except TransactionNotFound:
                continue
            if found.get("blockNumber") is None:
                return True
        return False

    async def _wait_confirmed(
        self, receipt: TxReceipt, attempts: Sequence[_Attempt]
    ) -> TxReceipt | None:
        """The receipt once ``confirmations`` deep and canonical; None if reorged away."""
        while True:
            head = await self._call(lambda: self.w3.eth.block_number)
            current = await self._call(self._canonical_receipt, attempts)
            if current is None:
                return None
            receipt = current
            if head - receipt["blockNumber"] >= self.config.confirmations:
                return receipt
            await asyncio.sleep(self.config.poll_interval)

    # -- events -------------------------------------------------------------------------------

    def item_log_indexes(
        self, receipt: TxReceipt, groups: Sequence[SettlementGroup]
    ) -> dict[str, int]:
        """Map each item to the log index of its ``Fill`` or ``Traded`` (order), ``StrategyFilled``
        (strategy) or ``SwapExecuted`` (swap) event in ``receipt``: by digest (an order's
        digest names its wallet), wallet + digest for strategies, or pair + token + amounts
        for swaps; repeated keys are matched in batch order."""
        address = self.settlement.address
        events = self.settlement.events
        by_key: dict[tuple[Any, ...], deque[int]] = defaultdict(deque)
        for name in ("Fill", "Traded", "StrategyFilled", "SwapExecuted"):
            for entry in events[name]().process_receipt(receipt, errors=DISCARD):
                if entry["address"] != address:
                    continue
                args = entry["args"]
                if name == "Traded":  # a paired trade: one log for both orders
                    by_key[("Fill", bytes(args["buy"]))].append(int(entry["logIndex"]))
                    by_key[("Fill", bytes(args["sell"]))].append(int(entry["logIndex"]))
                    continue
                if name == "SwapExecuted":
                    key: tuple[Any, ...] = (
                        name,
                        args["pair"],
                        args["token_in"],
                        args["amount_in"],
                        args["amount_out"],
                    )
                elif name == "Fill":
                    key = (name, bytes(args["digest"]))
                else:
                    key = (name, args["wallet"], bytes(args["digest"]))
                by_key[key].append(int(entry["logIndex"]))
        found: dict[str, int] = {}
        for group in groups:
            for item in group.items:
                if isinstance(item, OrderSettlement):
                    key = ("Fill", item.digest(self.chain_id))
                elif isinstance(item, StrategySettlement):
                    key = (
                        "StrategyFilled",
                        Web3.to_checksum_address(item.wallet),
                        item.digest(self.chain_id),
                    )
                else:
                    assert isinstance(item, SwapSettlement)
                    key = (
                        "SwapExecuted",
                        Web3.to_checksum_address(item.pair),
                        Web3.to_checksum_address(item.token_in),
                        item.amount_in,
                        item.amount_out,
                    )
                queue = by_key.get(key)
                if queue:
                    found[item.item_id] = queue.popleft()
        return found

    # -- the public entry point ---------------------------------------------------------------

    async def settle(self, batch_id: int, groups: Sequence[SettlementGroup]) -> SettlementResult:
        """Settle ``groups`` as batch ``batch_id`` (a uint256; see
        :func:`gateway.settlement.batch_builder.batch_id_from_key`)."""
        async with self._lock:
            with tracing.start_span("settlement.simulate") as span:
                partition = await self._call(self._partition, batch_id, list(groups))
                span.set_attribute("settlement.groups", len(groups))
                span.set_attribute("settlement.groups_ok", len(partition.ok))
                span.set_attribute("settlement.groups_rejected", len(partition.rejected))
                span.set_attribute("settlement.groups_deferred", len(partition.deferred))
            rejected, deferred = tuple(partition.rejected), tuple(partition.deferred)
            if not partition.ok:
                return SettlementResult(None, rejected, deferred)
            with tracing.start_span("settlement.transaction") as span:
                sent = await self._transact(batch_id, partition.ok)
                span.set_attribute("tx.hash", sent.tx_hash)
                span.set_attribute("tx.nonce", sent.nonce)
                span.set_attribute("tx.gas_used", sent.gas_used)
                span.set_attribute("tx.block_number", sent.block_number)
                span.set_attribute("tx.replaced", len(sent.replaced_tx_hashes))
                span.set_attribute("batch.status", sent.status.value)
            return SettlementResult(sent, rejected, deferred)

    async def _transact(self, batch_id: int, groups: list[SettlementGroup]) -> SentBatch:
        """Send the batch of `groups` (simulated to succeed) and follow it until it is
        confirmed, reverted or reorged away."""
        fn = settle_call(self.settlement, batch_id, groups)
        tx, first, sent_at = await self._call(self._send_new, fn)
        self._report(SendProgress(Stage.SENT, batch_id, _hex(first.tx_hash), int(tx["nonce"])))
        attempts = [first]
        while True:
            try:
                receipt = await self._wait_mined(batch_id, tx, attempts, sent_at)
            except Exception:
                self.resync_nonce()
                raise
            confirmed = await self._wait_confirmed(receipt, attempts)
            if confirmed is not None or not await self._call(self._requeued, attempts):
                break
            # reorged out but back in the node's pool: it will be mined again
            sent_at = await self._call(lambda: self.w3.eth.block_number)
        hashes = [_hex(a.tx_hash) for a in attempts]
        if confirmed is None:
            self.resync_nonce()  # the nonce may be free again (or re-used by the node)
            status = BatchStatus.REORGED
            mined_hash = _hex(receipt["transactionHash"])
            logs: dict[str, int] = {}
        else:
            receipt = confirmed
            mined_hash = _hex(receipt["transactionHash"])
            status = BatchStatus.CONFIRMED if receipt["status"] == 1 else BatchStatus.REVERTED
            logs = self.item_log_indexes(receipt, groups) if status is BatchStatus.CONFIRMED else {}
        sent = SentBatch(
            batch_id=batch_id,
            groups=tuple(groups),
            tx_hash=mined_hash,
            nonce=int(tx["nonce"]),
            block_number=int(receipt["blockNumber"]),
            block_hash=_hex(receipt["blockHash"]),
            gas_used=int(receipt["gasUsed"]),
            status=status,
            item_log_index=logs,
            replaced_tx_hashes=tuple(h for h in hashes if h != mined_hash),
        )
        return sent
