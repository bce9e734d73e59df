"""The auditor's side: every fill an Isthmus ``Settlement`` contract settled, rebuilt from the
chain's events and checked with nothing but an RPC URL and the contract's address.

For each transaction that logged ``BatchSettled``, the ``settle(batch)`` calldata is decoded
and walked in the order the contract emits its events (one ``Fill`` per order; one ``Fill``
per strategy leg, then ``StrategyFilled``), so that every event is paired with the signed item
that produced it. A ``settle_pairs(batch)`` transaction is read as the orders it applies (each
pair's buy, then its sell) and its ``Traded`` logs as their ``Fill`` s.
Each fill is then checked as its wallet should have checked it, at the block it settled in:

- the EIP-712 digest of the calldata's order or strategy (domain: that wallet, this chain) is
  the one the events carry;
- the signature is the wallet's: an ECDSA signature recovering to the wallet's ``owner()``,
  or to a trading key of the wallet that was active then, with every traded instrument in
  its scope and the notional within its maximum; or (an item whose ``sig.v`` is 0) the
  contract owner's signature from ``batch.signatures``, which the owner accepts through
  EIP-1271 ``isValidSignature``; and the wallet was deployed by the Settlement's factory;
- the amount and quote of each event are the calldata's (its digest stands for the wallet,
  the instrument and the side);
- the limit price (or a strategy's net limit) and the deadline hold;
- no order or strategy is filled beyond its signed amount, across all batches audited.

Usage::

    from isthmus_client.audit import verify

    report = verify("https://rpc.example", "0xSettlement...")
    print(report.ok, len(report.fills), report.problems)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from eth_keys import keys
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import BadFunctionCallOutput, ContractLogicError

from isthmus_client.contracts import abi
from isthmus_client.signing import (
    SECP256K1_N,
    LegMessage,
    OrderMessage,
    StrategyMessage,
    digest,
    instrument_id,
    typed_data,
)

__all__ = [
    "AuditReport",
    "AuditedFill",
    "Auditor",
    "ChainEvent",
    "SettledTransaction",
    "SignedBy",
    "SignerCheck",
    "TransactionAudit",
    "item_signature",
    "recover_signer",
    "verify",
]

LOG_CHUNK: Final = 5_000
"""Blocks per ``eth_getLogs`` request (public nodes cap the range)."""
NO_KEY_LIMIT: Final = (1 << 128) - 1
"""A trading key's ``max_notional`` meaning "no limit"."""
EIP1271_MAGIC: Final = bytes.fromhex("1626ba7e")
CONTRACT_SIG_V: Final = 0  # Signature.v of an item whose signature is in Batch.signatures
_EVENTS: Final = ("BatchSettled", "Fill", "Traded", "StrategyFilled")
# what a call answers when the contract refuses or lacks the function; an unreachable node
# raises on, so that an outage is never taken for a finding
_REFUSED: Final = (ContractLogicError, BadFunctionCallOutput, ValueError)


def _view(name: str, inputs: Sequence[tuple[str, str]], outputs: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "function",
        "name": name,
        "stateMutability": "view",
        "inputs": [{"name": n, "type": t} for n, t in inputs],
        "outputs": [{"name": "", "type": t} for t in outputs],
    }


_ERC20_ABI: Final = [_view("decimals", [], ["uint8"])]
_EIP1271_ABI: Final = [
    _view("isValidSignature", [("digest", "bytes32"), ("signature", "bytes")], ["bytes4"])
]


class SignedBy:
    """Who signed a fill's order, as the wallet accepted it (``AuditedFill.signed_by``)."""

    OWNER: Final = "owner"
    """The wallet's owner, an EOA (ECDSA)."""
    TRADING_KEY: Final = "trading_key"
    """A trading key the owner authorised (ECDSA)."""
    CONTRACT_OWNER: Final = "contract_owner"
    """The wallet's owner, a contract such as a Safe (EIP-1271)."""


@dataclass(frozen=True, slots=True)
class SignerCheck:
    """Who signed one item, judged as its wallet judged it at the item's block.

    ``signed_by`` is a :class:`SignedBy` value, empty when nobody the wallet accepts signed;
    ``problems`` lists what is wrong (empty: the signature is the wallet's)."""

    signer: str
    signed_by: str
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the signature is one the wallet accepts."""
        return not self.problems


@dataclass(frozen=True, slots=True)
class AuditedFill:
    """One on-chain ``Fill`` event and what the audit found about it.

    ``amount`` is in the base token's units and ``quote`` in the quote token's; ``digest`` is
    the EIP-712 digest of the signed order or strategy; ``instrument`` the instrument id (0x
    hex); ``kind`` is ``order``, ``strategy_leg`` or ``unknown`` (an event no signed item
    accounts for); ``signer`` the address that signed (the owner, a trading key or the owner
    contract) and ``signed_by`` which of them it was (:class:`SignedBy`). The event logs only
    the digest and the amounts: ``batch_id``, ``wallet``, ``instrument`` and ``side`` are the
    calldata's item that its digest proves (empty for ``unknown``, and ``batch_id`` 0 when
    the transaction has no ``BatchSettled``)."""

    tx_hash: str
    block_number: int
    log_index: int
    batch_id: int
    wallet: str
    digest: str
    instrument: str
    side: str
    amount: int
    quote: int
    kind: str
    signer: str = ""
    signed_by: str = ""
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the fill settled exactly as signed (no problem found)."""
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (integers that may exceed 2**53 as decimal strings)."""
        return {
            "tx_hash": self.tx_hash,
            "block_number": self.block_number,
            "log_index": self.log_index,
            "batch_id": str(self.batch_id),
            "wallet": self.wallet,
            "digest": self.digest,
            "instrument": self.instrument,
            "side": self.side,
            "amount": str(self.amount),
            "quote": str(self.quote),
            "kind": self.kind,
            "signer": self.signer,
            "signed_by": self.signed_by,
            "ok": self.ok,
            "problems": list(self.problems),
        }


@dataclass(frozen=True, slots=True)
class AuditReport:
    """The result of :func:`verify`: ``ok`` is False on any problem, of a fill (each fill
    lists its own) or of a transaction as a whole (``problems``)."""

    ok: bool
    from_block: int
    to_block: int
    batches: int
    fills: list[AuditedFill]
    problems: list[str]
    chain_id: int = 0
    settlement: str = ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: the range, counts, problems and every fill."""
        return {
            "ok": self.ok,
            "chain_id": self.chain_id,
            "settlement": self.settlement,
            "from_block": self.from_block,
            "to_block": self.to_block,
            "counts": {
                "batches": self.batches,
                "fills": len(self.fills),
                "fills_ok": sum(1 for f in self.fills if f.ok),
                "fills_with_problems": sum(1 for f in self.fills if not f.ok),
                "problems": len(self.problems),
            },
            "problems": list(self.problems),
            "fills": [f.to_json() for f in self.fills],
        }


@dataclass(frozen=True, slots=True)
class ChainEvent:
    """One decoded Settlement log: ``name`` (``BatchSettled``, ``Fill`` or
    ``StrategyFilled``), its log index in the block and its arguments. A ``Traded`` log (one
    paired trade) is read as two ``Fill`` s at its index, its buy's then its sell's."""

    name: str
    log_index: int
    args: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SettledTransaction:
    """One transaction's Settlement events (in log order) and its decoded ``settle(batch)``
    argument (``batch`` is None when the transaction is not a direct ``settle`` call)."""

    tx_hash: str
    block_number: int
    events: tuple[ChainEvent, ...]
    batch: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class TransactionAudit:
    """What :meth:`Auditor.audit_transaction` found: the transaction's fills, its problems
    not tied to one fill, and how many batches it settled."""

    fills: list[AuditedFill]
    problems: list[str]
    batches: int


@dataclass(slots=True)
class _Item:
    """One signed item of a batch as the wallet rebuilt it."""

    wallet: str
    digest: bytes
    sig: Any
    deadline: int
    instruments: tuple[bytes, ...]
    notional: int
    amount: int
    unit: int  # 10 ** decimals of the (first leg's) base token
    signer: SignerCheck | None = None  # set once checked


@dataclass(slots=True)
class _Batch:
    """One decoded batch while its events are paired with its items."""

    tx: SettledTransaction
    batch_id: int  # the calldata's (a Fill logs none: it is its transaction's batch)
    instruments: list[tuple[bytes, Any]]  # (id, preimage) by index
    signatures: list[bytes]  # Batch.signatures
    events: list[ChainEvent]  # the Fill and StrategyFilled events not yet paired
    filled: MutableMapping[tuple[str, bytes], int]
    problems: list[str]

    def take(self, name: str) -> ChainEvent | None:
        """The next event, if it is a ``name``."""
        return self.events.pop(0) if self.events and self.events[0].name == name else None


class Auditor:
    """Reads and checks every settled fill of one Settlement contract through ``w3``.

    :func:`verify` is the one call most auditors need; the methods are the steps, public so
    that each can be run (and tested) on its own."""

    def __init__(self, w3: Web3, settlement: str) -> None:
        self.w3 = w3
        settlement_abi = abi("Settlement")
        self.settlement = w3.eth.contract(
            address=to_checksum_address(settlement), abi=settlement_abi
        )
        self.chain_id = int(w3.eth.chain_id)
        self._wallet_abi = abi("MarginWallet")
        self._topics: dict[bytes, str] = {
            keccak(text=f"{e['name']}({','.join(str(i['type']) for i in e['inputs'])})"): e["name"]
            for e in settlement_abi
            if e.get("type") == "event" and e.get("name") in _EVENTS
        }
        self._decimals: dict[str, int] = {}
        self._timestamps: dict[int, int] = {}

    # -- reading the chain ------------------------------------------------------------------

    def transactions(self, from_block: int, to_block: int) -> list[SettledTransaction]:
        """Every transaction with Settlement events in the block range, in chain order, each
        with its events and decoded ``settle`` calldata."""
        by_tx: dict[str, tuple[int, list[ChainEvent]]] = {}
        start = from_block
        while start <= to_block:
            end = min(to_block, start + LOG_CHUNK - 1)
            entries = self.w3.eth.get_logs(
                {
                    "address": self.settlement.address,
                    "fromBlock": start,
                    "toBlock": end,
                    "topics": [[Web3.to_hex(topic) for topic in self._topics]],
                }
            )
            for entry in entries:
                name = self._topics.get(bytes(entry["topics"][0]))
                if name is None:
                    continue
                decoded = self.settlement.events[name]().process_log(entry)
                tx_hash = Web3.to_hex(entry["transactionHash"])
                _, events = by_tx.setdefault(tx_hash, (int(entry["blockNumber"]), []))
                index, args = int(entry["logIndex"]), decoded["args"]
                if name == "Traded":
                    # one paired trade: the Fill of its buy, then of its sell, at its index
                    events += [
                        ChainEvent(
                            "Fill",
                            index,
                            {
                                "digest": args[side],
                                "amount": args["amount"],
                                "quote": args["quote"],
                            },
                        )
                        for side in ("buy", "sell")
                    ]
                else:
                    events.append(ChainEvent(name, index, dict(args)))
            start = end + 1
        found = [
            SettledTransaction(
                tx_hash,
                block,
                tuple(sorted(events, key=lambda e: e.log_index)),
                self._batch(tx_hash),
            )
            for tx_hash, (block, events) in by_tx.items()
        ]
        return sorted(found, key=lambda t: (t.block_number, t.events[0].log_index))

    def _batch(self, tx_hash: str) -> Mapping[str, Any] | None:
        transaction = self.w3.eth.get_transaction(HexBytes(tx_hash))
        if str(transaction.get("to") or "").lower() != self.settlement.address.lower():
            return None
        try:
            function, args = self.settlement.decode_function_input(transaction["input"])
        except ValueError:
            return None
        if function.fn_name == "settle_pairs":
            return _pairs_as_batch(args["batch"])
        if function.fn_name != "settle":
            return None
        batch: Mapping[str, Any] = args["batch"]
        return batch

    def base_decimals(self, token: str) -> int:
        """``decimals()`` of an ERC-20 (cached)."""
        key = to_checksum_address(token)
        if key not in self._decimals:
            erc20 = self.w3.eth.contract(address=key, abi=_ERC20_ABI)
            self._decimals[key] = int(erc20.functions.decimals().call())
        return self._decimals[key]

    def timestamp(self, block: int) -> int:
        """The timestamp of ``block`` (cached)."""
        if block not in self._timestamps:
            self._timestamps[block] = int(self.w3.eth.get_block(block)["timestamp"])
        return self._timestamps[block]

    # -- the signer -------------------------------------------------------------------------

    def check_signer(
        self,
        item_digest: bytes,
        signature: bytes,
        wallet: str,
        block: int,
        *,
        contract_signature: bool = False,
        instruments: Sequence[bytes] = (),
        notional: int = 0,
    ) -> SignerCheck:
        """Who signed ``item_digest`` for ``wallet``, judged as the wallet judged it at
        ``block``: the wallet must be one of the Settlement factory's; a contract owner's
        signature (``contract_signature``: the item's ``sig.v`` was 0) must be accepted by the
        owner through EIP-1271; an ECDSA one must recover to the owner, or to a trading key
        active at that block whose scope covers every one of ``instruments`` and whose maximum
        covers ``notional`` (quote units)."""
        wallet = to_checksum_address(wallet)
        contract = self.w3.eth.contract(address=wallet, abi=self._wallet_abi)
        try:
            owner = to_checksum_address(contract.functions.owner().call(block_identifier=block))
        except _REFUSED as error:
            return SignerCheck(
                "", "", (f"wallet {wallet} has no owner() at block {block}: {error}",)
            )
        if not bool(self.settlement.functions.is_wallet(wallet).call(block_identifier=block)):
            return SignerCheck(
                "", "", (f"wallet {wallet} was not deployed by the Settlement's factory",)
            )
        if contract_signature:
            return self._check_contract_owner(owner, item_digest, signature, block)
        try:
            recovered = recover_signer(item_digest, signature)
        except ValueError as error:
            return SignerCheck("", "", (f"malformed signature: {error}",))
        if recovered == owner:
            return SignerCheck(owner, SignedBy.OWNER)
        try:
            expiry, all_instruments, max_notional, active = contract.functions.trading_key(
                recovered
            ).call(block_identifier=block)
        except _REFUSED:
            expiry, all_instruments, max_notional, active = 0, False, 0, False
        if int(expiry) == 0:  # never authorised, or revoked (revoking erases the record)
            return SignerCheck(
                recovered,
                "",
                (
                    f"signature recovers to {recovered}, neither the wallet owner {owner} "
                    f"nor a trading key of the wallet at block {block}",
                ),
            )
        problems: list[str] = []
        if not active:
            problems.append(f"trading key {recovered} expired at {int(expiry)} (at block {block})")
        if not all_instruments:
            for instrument in dict.fromkeys(instruments):
                allowed = contract.functions.key_instrument_allowed(recovered, instrument).call(
                    block_identifier=block
                )
                if not allowed:
                    problems.append(
                        f"trading key {recovered} may not trade instrument 0x{instrument.hex()} "
                        f"(at block {block})"
                    )
        if int(max_notional) != NO_KEY_LIMIT and notional > int(max_notional):
            problems.append(
                f"the notional {notional} is over trading key {recovered}'s maximum "
                f"{int(max_notional)} (at block {block})"
            )
        return SignerCheck(recovered, SignedBy.TRADING_KEY, tuple(problems))

    def _check_contract_owner(
        self, owner: str, item_digest: bytes, signature: bytes, block: int
    ) -> SignerCheck:
        if len(self.w3.eth.get_code(to_checksum_address(owner), block_identifier=block)) == 0:
            return SignerCheck(
                "", "", (f"a contract signature, but the wallet owner {owner} is not a contract",)
            )
        eip1271 = self.w3.eth.contract(address=to_checksum_address(owner), abi=_EIP1271_ABI)
        try:
            answer = eip1271.functions.isValidSignature(item_digest, signature).call(
                block_identifier=block
            )
        except _REFUSED:
            answer = b""
        if bytes(answer) != EIP1271_MAGIC:
            return SignerCheck(
                owner, "", (f"owner contract {owner} does not accept the signature (EIP-1271)",)
            )
        return SignerCheck(owner, SignedBy.CONTRACT_OWNER)

    # -- the audit --------------------------------------------------------------------------

    def audit(self, from_block: int = 0, to_block: int | None = None) -> AuditReport:
        """Audit every settled fill from ``from_block`` to ``to_block`` (the latest block
        when None)."""
        last = int(self.w3.eth.block_number) if to_block is None else to_block
        fills: list[AuditedFill] = []
        problems: list[str] = []
        batches = 0
        filled: dict[tuple[str, bytes], int] = defaultdict(int)
        for tx in self.transactions(from_block, last):
            found = self.audit_transaction(tx, filled)
            fills += found.fills
            problems += found.problems
            batches += found.batches
        return AuditReport(
            ok=not problems and all(f.ok for f in fills),
            from_block=from_block,
            to_block=last,
            batches=batches,
            fills=fills,
            problems=problems,
            chain_id=self.chain_id,
            settlement=self.settlement.address,
        )

    def audit_transaction(
        self, tx: SettledTransaction, filled: MutableMapping[tuple[str, bytes], int] | None = None
    ) -> TransactionAudit:
        """Pair one transaction's events with its batch's signed items and check each fill.
        ``filled`` holds what earlier transactions filled of each (wallet, digest) and is
        updated; without it, this transaction is judged alone."""
        where = f"tx {tx.tx_hash}"
        settled = [e for e in tx.events if e.name == "BatchSettled"]
        events = [e for e in tx.events if e.name in ("Fill", "StrategyFilled")]
        if len(settled) != 1:
            bare = _bare_fills(tx, events, 0, "no BatchSettled in its transaction")
            return TransactionAudit(
                bare, [f"{where}: {len(settled)} BatchSettled events"], len(settled)
            )
        if tx.batch is None:
            reason = (
                "the transaction is not a direct settle() call: the signed orders are not readable"
            )
            bare = _bare_fills(tx, events, int(settled[0].args["batch_id"]), reason)
            return TransactionAudit(bare, [f"{where}: {reason}"], 1)
        batch = _Batch(
            tx,
            int(tx.batch["batch_id"]),
            [(instrument_id(*_preimage(raw)), raw) for raw in tx.batch["instruments"]],
            [bytes(raw) for raw in tx.batch["signatures"]],
            events,
            defaultdict(int) if filled is None else filled,
            _batch_problems(where, settled[0].args, tx.batch),
        )
        fills: list[AuditedFill] = []
        for order in tx.batch["orders"]:
            fills += self._audit_order(batch, order)
        for strategy in tx.batch["strategies"]:
            fills += self._audit_strategy(batch, strategy)
        for event in batch.events:
            batch.problems.append(
                f"{where}: {event.name} log {event.log_index} matches nothing in the calldata"
            )
        fills += _bare_fills(
            tx, batch.events, int(tx.batch["batch_id"]), "matches nothing in the settle() calldata"
        )
        return TransactionAudit(fills, batch.problems, 1)

    def _audit_order(self, batch: _Batch, order: Mapping[str, Any]) -> list[AuditedFill]:
        """The ``Fill`` of one order item: the item's checks, the event against the
        calldata, the limit price, the order's total."""
        event = batch.take("Fill")
        if event is None:
            batch.problems.append(
                f"tx {batch.tx.tx_hash}: an order of the calldata has no Fill event"
            )
            return []
        item = self._order_item(order, batch.instruments)
        found = self._item_problems(batch, item, event)
        fill, quote, is_buy = int(order["fill"]), int(order["quote"]), bool(order["is_buy"])
        instrument, raw = batch.instruments[int(order["instrument"])]
        found += _leg_problems(event, fill, quote, item.digest)
        bound = fill * int(order["limit_price"]) // 10 ** self.base_decimals(raw["base"])
        if is_buy and quote > bound:
            found.append(f"pays {quote} quote units, over the signed limit ({bound})")
        if not is_buy and quote < bound:
            found.append(f"receives {quote} quote units, under the signed limit ({bound})")
        found += _total_problems(batch.filled, item, fill)
        leg = _Leg(batch.batch_id, item.wallet, instrument, is_buy)
        return [_audited(batch.tx, event, leg, "order", found, item.signer)]

    def _audit_strategy(self, batch: _Batch, strategy: Mapping[str, Any]) -> list[AuditedFill]:
        """The leg ``Fill``s and the ``StrategyFilled`` of one strategy item: each leg against
        the calldata, then the item's checks, the net limit and the strategy's total (a
        problem of the strategy is a problem of each of its legs)."""
        where = f"tx {batch.tx.tx_hash}"
        item = self._strategy_item(strategy, batch.instruments)
        fill, net = int(strategy["fill"]), 0
        legs: list[tuple[ChainEvent, _Leg, list[str]]] = []
        for leg in strategy["legs"]:
            event = batch.take("Fill")
            if event is None:
                batch.problems.append(f"{where}: a strategy leg of the calldata has no Fill event")
                continue
            quote, is_buy = int(leg["quote"]), bool(leg["is_buy"])
            net += quote if is_buy else -quote
            instrument = batch.instruments[int(leg["instrument"])][0]
            amount = fill * int(leg["ratio"])
            leg_of = _Leg(batch.batch_id, item.wallet, instrument, is_buy)
            legs.append((event, leg_of, _leg_problems(event, amount, quote, item.digest)))
        closing = batch.take("StrategyFilled")
        if closing is None:
            batch.problems.append(f"{where}: a strategy of the calldata has no StrategyFilled")
            return []
        found = self._item_problems(batch, item, closing)
        if str(closing.args["wallet"]).lower() != item.wallet.lower():
            found.append("StrategyFilled's wallet differs from the calldata")
        if int(closing.args["fill"]) != fill or int(closing.args["net_quote"]) != net:
            found.append("StrategyFilled differs from the calldata's fill or quotes")
        limit = int(strategy["limit_net_price"])
        if net * item.unit > fill * limit:
            found.append(f"net quote {net} for {fill} units is beyond the signed net limit {limit}")
        found += _total_problems(batch.filled, item, fill)
        return [
            _audited(batch.tx, event, leg, "strategy_leg", problems + found, item.signer)
            for event, leg, problems in legs
        ]

    def _order_item(self, order: Mapping[str, Any], ins: Sequence[tuple[bytes, Any]]) -> _Item:
        instrument, raw = ins[int(order["instrument"])]
        wallet = to_checksum_address(order["wallet"])
        message = OrderMessage(
            instrument,
            bool(order["is_buy"]),
            int(order["amount"]),
            int(order["limit_price"]),
            int(order["nonce"]),
            int(order["deadline"]),
        )
        unit = 10 ** self.base_decimals(raw["base"])
        return _Item(
            wallet,
            digest(typed_data(message, self.chain_id, wallet)),
            order["sig"],
            message.deadline,
            (instrument,),
            message.amount * message.limit_price // unit,
            message.amount,
            unit,
        )

    def _strategy_item(
        self, strategy: Mapping[str, Any], ins: Sequence[tuple[bytes, Any]]
    ) -> _Item:
        wallet = to_checksum_address(strategy["wallet"])
        message = StrategyMessage(
            tuple(
                LegMessage(ins[int(leg["instrument"])][0], bool(leg["is_buy"]), int(leg["ratio"]))
                for leg in strategy["legs"]
            ),
            int(strategy["amount"]),
            int(strategy["limit_net_price"]),
            int(strategy["nonce"]),
            int(strategy["deadline"]),
        )
        unit = 10 ** self.base_decimals(ins[int(strategy["legs"][0]["instrument"])][1]["base"])
        return _Item(
            wallet,
            digest(typed_data(message, self.chain_id, wallet)),
            strategy["sig"],
            message.deadline,
            tuple(leg.instrument for leg in message.legs),
            message.amount * abs(message.limit_net_price) // unit,
            message.amount,
            unit,
        )

    def _item_problems(self, batch: _Batch, item: _Item, event: ChainEvent) -> list[str]:
        """The checks of a signed item as a whole: its digest, its signer, its deadline.
        Sets ``item.signer``."""
        found: list[str] = []
        if bytes(event.args["digest"]) != item.digest:
            found.append("the event's digest is not the EIP-712 digest of the signed order")
        try:
            signature, contract = item_signature(item.sig, batch.signatures)
        except ValueError as error:
            signer = SignerCheck("", "", (f"no signature in the batch: {error}",))
        else:
            signer = self.check_signer(
                item.digest,
                signature,
                item.wallet,
                batch.tx.block_number,
                contract_signature=contract,
                instruments=item.instruments,
                notional=item.notional,
            )
        item.signer = signer
        found += signer.problems
        timestamp = self.timestamp(batch.tx.block_number)
        if timestamp > item.deadline:
            found.append(f"settled at {timestamp}, after the signed deadline {item.deadline}")
        return found


# -- pure helpers -----------------------------------------------------------------------------


def recover_signer(item_digest: bytes, signature: bytes) -> str:
    """The checksummed address whose ECDSA ``signature`` (65 bytes ``r || s || v``) signed
    ``item_digest``, in the strict form the wallets accept (``0 < r < n``, ``0 < s <= n/2``,
    ``v`` in {27, 28}); raises ``ValueError`` for any other form."""
    if len(signature) != 65:
        raise ValueError("a signature is 65 bytes r || s || v")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if v not in (27, 28):
        raise ValueError(f"v must be 27 or 28, got {v}")
    if not 0 < r < SECP256K1_N:
        raise ValueError("r out of range")
    if not 0 < s <= SECP256K1_N // 2:
        raise ValueError("s must be in the lower half order (EIP-2)")
    public_key = keys.Signature(vrs=(v - 27, r, s)).recover_public_key_from_msg_hash(item_digest)
    return str(public_key.to_checksum_address())


def item_signature(sig: Any, signatures: Sequence[bytes]) -> tuple[bytes, bool]:
    """An item's ``Signature(v, r, s)`` read against ``Batch.signatures``: (the signature
    bytes, whether it is a contract owner's EIP-1271 signature). ``v`` 0 means the signature
    is ``signatures[r]``; raises ``ValueError`` for an index the batch does not have."""
    if isinstance(sig, Mapping):
        v, r, s = int(sig["v"]), bytes(sig["r"]), bytes(sig["s"])
    else:
        v, r, s = int(sig[0]), bytes(sig[1]), bytes(sig[2])
    if v != CONTRACT_SIG_V:
        return r + s + bytes([v]), False
    index = int.from_bytes(r, "big")
    if index >= len(signatures):
        raise ValueError(f"signature index {index} outside the batch's {len(signatures)}")
    return bytes(signatures[index]), True


def _preimage(raw: Mapping[str, Any]) -> tuple[int, str, str, int, int, bool]:
    return (
        int(raw["kind"]),
        str(raw["base"]),
        str(raw["quote"]),
        int(raw["strike"]),
        int(raw["expiry"]),
        bool(raw["is_call"]),
    )


def _pairs_as_batch(batch: Mapping[str, Any]) -> dict[str, Any]:
    """A ``settle_pairs`` batch read as the ``settle`` batch of the same orders: each pair's
    buy, then its sell (the order the contract applies them)."""
    orders = [
        {
            "wallet": side["wallet"],
            "instrument": pair["instrument"],
            "is_buy": is_buy,
            "amount": side["amount"],
            "limit_price": side["limit_price"],
            "nonce": side["nonce"],
            "deadline": side["deadline"],
            "sig": side["sig"],
            "fill": pair["fill"],
            "quote": pair["quote"],
        }
        for pair in batch["pairs"]
        for side, is_buy in ((pair["buy"], True), (pair["sell"], False))
    ]
    return {
        "batch_id": batch["batch_id"],
        "instruments": batch["instruments"],
        "orders": orders,
        "strategies": [],
        "swaps": [],
        "signatures": batch["signatures"],
    }


def _batch_problems(where: str, event: Mapping[str, Any], batch: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    if int(batch["batch_id"]) != int(event["batch_id"]):
        problems.append(f"{where}: BatchSettled id differs from the calldata's batch id")
    counts = (len(batch["orders"]), len(batch["strategies"]), len(batch["swaps"]))
    if counts != (int(event["orders"]), int(event["strategies"]), int(event["swaps"])):
        problems.append(f"{where}: BatchSettled counts differ from the calldata")
    return problems


def _leg_problems(event: ChainEvent, amount: int, quote: int, item_digest: bytes) -> list[str]:
    # a Fill logs its digest and amounts only: the digest names the wallet (the EIP-712 domain)
    # and the signed order, so it stands for the wallet, instrument and side of the calldata
    args = event.args
    found: list[str] = []
    if int(args["amount"]) != amount or int(args["quote"]) != quote:
        found.append("the event's amount or quote differs from the calldata")
    if bytes(args["digest"]) != item_digest:
        found.append("the event's digest is not the EIP-712 digest of the signed order")
    return found


def _total_problems(
    filled: MutableMapping[tuple[str, bytes], int], item: _Item, fill: int
) -> list[str]:
    key = (item.wallet.lower(), item.digest)
    filled[key] = filled.get(key, 0) + fill
    if filled[key] > item.amount:
        return [f"filled {filled[key]} in total, over the signed amount {item.amount}"]
    return []


@dataclass(frozen=True)
class _Leg:
    """What the calldata says of a ``Fill``: its batch, wallet, instrument and side (empty
    when nothing in the calldata matched it)."""

    batch_id: int
    wallet: str = ""
    instrument: bytes = b""
    is_buy: bool | None = None


def _audited(
    tx: SettledTransaction,
    event: ChainEvent,
    leg: _Leg,
    kind: str,
    problems: Iterable[str],
    signer: SignerCheck | None = None,
) -> AuditedFill:
    args = event.args
    return AuditedFill(
        tx_hash=tx.tx_hash,
        block_number=tx.block_number,
        log_index=event.log_index,
        batch_id=leg.batch_id,
        wallet=leg.wallet and to_checksum_address(leg.wallet),
        digest=Web3.to_hex(bytes(args["digest"])),
        instrument=Web3.to_hex(leg.instrument) if leg.instrument else "",
        side="" if leg.is_buy is None else "buy" if leg.is_buy else "sell",
        amount=int(args["amount"]),
        quote=int(args["quote"]),
        kind=kind,
        signer=signer.signer if signer is not None else "",
        signed_by=signer.signed_by if signer is not None else "",
        problems=tuple(dict.fromkeys(problems)),
    )


def _bare_fills(
    tx: SettledTransaction, events: Iterable[ChainEvent], batch_id: int, reason: str
) -> list[AuditedFill]:
    return [
        _audited(tx, e, _Leg(batch_id), "unknown", (reason,)) for e in events if e.name == "Fill"
    ]


def verify(
    rpc_url: str, settlement: str, *, from_block: int = 0, to_block: int | None = None
) -> AuditReport:
    """Prove from the chain alone that every fill the ``settlement`` contract settled between
    ``from_block`` and ``to_block`` (the latest block when None) settled exactly as its
    wallet's owner signed it. Needs nothing but a JSON-RPC URL (with historical state for the
    range: the signer and its trading key are judged at each fill's block).

    Each fill of the report lists what is wrong with it; ``problems`` lists what is wrong
    with a transaction as a whole. ``ok`` is True only when nothing is."""
    w3 = Web3(Web3.HTTPProvider(rpc_url))
    return Auditor(w3, settlement).audit(from_block, to_block)
