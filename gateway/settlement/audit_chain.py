"""The auditor's chain side: every fill the Settlement contract emitted, proven from the chain
alone (an RPC URL and the contract's address).

For every ``BatchSettled`` transaction the ``settle(batch)`` calldata is decoded and walked in
the contract's own emission order (each order item emits one ``Fill``; each strategy item one
``Fill`` per leg, then ``StrategyFilled``), so every event is paired with the signed item that
produced it. A ``settle_pairs(batch)`` transaction is read as the orders it applies (each
pair's buy, then its sell) and each ``Traded`` log as the ``Fill`` of each of them.
Each fill is then checked as the wallet should have checked it: the EIP-712 digest of the
calldata's order (domain: that wallet, this chain) equals the event's; its signature is the
wallet's at that block, that is an ECDSA signature recovering to the wallet's ``owner()``, or to
a trading key of the wallet that was active then with the instrument in its scope and the
notional within its maximum, or (an item whose ``sig.v`` is 0) the contract owner's signature
from ``batch.signatures``, which the owner accepts through EIP-1271 ``isValidSignature`` at that
block; the amounts and side equal the calldata, the limit price and deadline hold at the block,
and no order is filled beyond its signed amount across batches. Each fill reports who signed it:
the owner, a trading key, or the contract owner."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract

from gateway.chain import signatures
from gateway.chain.artifacts import compile_contract
from gateway.chain.settlement_abi import item_signature, pair_batch_orders
from gateway.chain.transactions import bind
from gateway.domain.trading_keys import TradingKeyRefused, check_key_active, check_key_scope
from gateway.settlement import eip712

_EVENTS: Final = ("BatchSettled", "Fill", "Traded", "StrategyFilled", "SwapExecuted")
_LOG_CHUNK: Final = 5_000  # blocks per eth_getLogs request (public nodes cap the range)
_ERC20_ABI: Final = [
    {
        "name": "decimals",
        "type": "function",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "uint8"}],
    },
    {
        "name": "symbol",
        "type": "function",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "string"}],
    },
]


class SignedBy:
    """Who signed a fill's order, as the wallet accepted it."""

    OWNER = "owner"  # the owner EOA (ECDSA)
    TRADING_KEY = "trading_key"  # a trading key the owner authorised (ECDSA)
    CONTRACT_OWNER = "contract_owner"  # the owner contract, e.g. a Safe (EIP-1271)


@dataclass(frozen=True, slots=True)
class SignerCheck:
    """The signer of one item at its block and what is wrong with it (``signed_by`` empty:
    nobody the wallet accepts)."""

    signer: str
    signed_by: str
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True, slots=True)
class AuditedFill:
    """One on-chain ``Fill`` event and what the audit found about it.

    ``item_log_index`` is the log the gateway records for it: the ``Fill`` itself for an
    order, the ``StrategyFilled`` that closes a strategy's legs for a strategy leg. The event
    logs only the digest and the amounts; ``wallet``, ``instrument`` and ``side`` are those
    of the calldata's item whose digest it carries (empty when nothing matched it)."""

    tx_hash: str
    block_number: int
    log_index: int
    item_log_index: int
    batch_id: int
    wallet: str
    digest: str
    instrument: str  # the instrument id, 0x hex
    side: str  # buy | sell
    amount: int  # base units
    quote: int  # quote units
    kind: str  # order | strategy_leg
    problems: tuple[str, ...] = ()
    gateway_fills: tuple[str, ...] = ()  # the store's fill ids matched to it (with a store)
    signer: str = ""  # the owner, the trading key or the contract owner that signed it
    signed_by: str = ""  # a SignedBy value; empty when no accepted signer was found

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def label(self) -> str:
        return f"{self.tx_hash}#{self.log_index}"

    def to_json(self) -> dict[str, Any]:
        return {
            "tx_hash": self.tx_hash,
            "block_number": self.block_number,
            "log_index": self.log_index,
            "item_log_index": self.item_log_index,
            "batch_id": str(self.batch_id),
            "wallet": self.wallet,
            "digest": self.digest,
            "instrument": self.instrument,
            "side": self.side,
            "amount": str(self.amount),
            "quote": str(self.quote),
            "kind": self.kind,
            "ok": self.ok,
            "problems": list(self.problems),
            "gateway_fills": list(self.gateway_fills),
            "signer": self.signer,
            "signed_by": self.signed_by,
        }


@dataclass(frozen=True, slots=True)
class ChainInstrument:
    """An instrument preimage seen in calldata, with its tokens' symbols and decimals."""

    id: str
    kind: int
    base: str
    quote: str
    strike: int
    expiry: int
    is_call: bool
    base_symbol: str
    quote_symbol: str
    base_decimals: int
    quote_decimals: int


@dataclass(frozen=True, slots=True)
class ChainAudit:
    chain_id: int
    settlement: str
    from_block: int
    to_block: int
    batches: int
    fills: tuple[AuditedFill, ...]
    instruments: dict[str, ChainInstrument]  # by id (0x hex)
    problems: tuple[str, ...]  # not tied to one fill (an undecodable transaction)


@dataclass(slots=True)
class _Tx:
    tx_hash: str
    block_number: int
    events: list[tuple[str, Any]] = field(default_factory=list)  # (name, decoded log)


class ChainAuditor:
    """Reads and checks every settled fill of one Settlement contract."""

    def __init__(self, w3: Web3, settlement_address: str) -> None:
        self.w3 = w3
        self.settlement: Contract = bind(w3, compile_contract("Settlement"), settlement_address)
        self.chain_id = int(w3.eth.chain_id)
        self._tokens: dict[str, tuple[str, int]] = {}
        self._timestamps: dict[int, int] = {}
        self._topics = {self._topic(name): name for name in _EVENTS}

    def _topic(self, name: str) -> str:
        abi = next(
            e for e in self.settlement.abi if e.get("type") == "event" and e.get("name") == name
        )
        inputs: list[dict[str, Any]] = list(abi.get("inputs", []))  # type: ignore[call-overload]
        return Web3.to_hex(Web3.keccak(text=f"{name}({','.join(str(i['type']) for i in inputs)})"))

    # -- chain reads ------------------------------------------------------------------------

    def _logs(self, from_block: int, to_block: int) -> list[_Tx]:
        by_tx: dict[str, _Tx] = {}
        start = from_block
        while start <= to_block:
            end = min(to_block, start + _LOG_CHUNK - 1)
            entries = self.w3.eth.get_logs(
                {
                    "address": self.settlement.address,
                    "fromBlock": start,
                    "toBlock": end,
                    "topics": [list(self._topics)],
                }
            )
            for entry in entries:
                name = self._topics.get(Web3.to_hex(entry["topics"][0]))
                if name is None:
                    continue
                decoded = self.settlement.events[name]().process_log(entry)
                tx_hash = Web3.to_hex(entry["transactionHash"])
                tx = by_tx.setdefault(tx_hash, _Tx(tx_hash, int(entry["blockNumber"])))
                if name == "Traded":
                    tx.events += [("Fill", fill) for fill in _traded_fills(decoded)]
                else:
                    tx.events.append((name, decoded))
            start = end + 1
        for tx in by_tx.values():
            tx.events.sort(key=lambda e: int(e[1]["logIndex"]))
        return sorted(by_tx.values(), key=lambda t: (t.block_number, t.events[0][1]["logIndex"]))

    def token(self, address: str) -> tuple[str, int]:
        """(symbol, decimals) of an ERC-20."""
        key = Web3.to_checksum_address(address)
        if key not in self._tokens:
            erc20 = self.w3.eth.contract(address=key, abi=_ERC20_ABI)
            self._tokens[key] = (
                str(erc20.functions.symbol().call()),
                int(erc20.functions.decimals().call()),
            )
        return self._tokens[key]

    def _timestamp(self, block: int) -> int:
        if block not in self._timestamps:
            self._timestamps[block] = int(self.w3.eth.get_block(block)["timestamp"])
        return self._timestamps[block]

    def check_signer(
        self,
        digest: bytes,
        signature: bytes,
        wallet: str,
        block: int,
        *,
        contract_signature: bool = False,
        instruments: Sequence[bytes] = (),
        notional: int = 0,
    ) -> SignerCheck:
        """Who signed ``digest`` for ``wallet``, judged as the wallet judged it at ``block``:
        a contract owner's signature (``contract_signature``: the item's ``sig.v`` was 0)
        through EIP-1271 on the owner; an ECDSA one must recover to the owner, or to a trading
        key active at that block whose scope covers every one of ``instruments`` and whose
        maximum covers ``notional`` (quote units)."""
        wallet = Web3.to_checksum_address(wallet)
        try:
            owner = Web3.to_checksum_address(signatures.wallet_owner(self.w3, wallet, block))
        except Exception as error:  # not a wallet at all: nothing vouches for the signature
            return SignerCheck(
                "", "", (f"wallet {wallet} has no owner() at block {block}: {error}",)
            )
        if not bool(self.settlement.functions.is_wallet(wallet).call(block_identifier=block)):
            return SignerCheck(
                "", "", (f"wallet {wallet} was not deployed by the Settlement's factory",)
            )
        if contract_signature:
            return self._contract_owner_check(owner, digest, signature, block)
        try:
            recovered = eip712.recover_digest_signer(digest, signature)
        except (eip712.SignatureError, ValueError) as error:
            return SignerCheck("", "", (f"malformed signature: {error}",))
        if recovered == owner:
            return SignerCheck(owner, SignedBy.OWNER)
        record = signatures.trading_key(self.w3, wallet, recovered, block)
        if not record.exists:
            return SignerCheck(
                recovered,
                "",
                (
                    f"signature recovers to {recovered}, neither the wallet owner {owner} "
                    f"nor a trading key of the wallet at block {block}",
                ),
            )
        # the wallet's own rule (gateway.domain.trading_keys), judged at that block
        allowed = {
            instrument: signatures.key_instrument_allowed(
                self.w3, wallet, recovered, instrument, block
            )
            for instrument in dict.fromkeys(instruments)
            if not record.all_instruments
        }
        problems: list[str] = []
        try:
            check_key_active(recovered, record)
            check_key_scope(recovered, record, allowed, notional)
        except TradingKeyRefused as refusal:
            problems.append(f"{refusal} (at block {block})")
        return SignerCheck(recovered, SignedBy.TRADING_KEY, tuple(problems))

    def _contract_owner_check(
        self, owner: str, digest: bytes, signature: bytes, block: int
    ) -> SignerCheck:
        owner = Web3.to_checksum_address(owner)
        if not signatures.is_contract(self.w3, owner, block):
            return SignerCheck(
                "", "", (f"a contract signature, but the wallet owner {owner} is not a contract",)
            )
        if not signatures.contract_accepts(self.w3, owner, digest, signature, block):
            return SignerCheck(
                owner, "", (f"owner contract {owner} does not accept the signature (EIP-1271)",)
            )
        return SignerCheck(owner, SignedBy.CONTRACT_OWNER)

    # -- the audit --------------------------------------------------------------------------

    def audit(self, from_block: int = 0, to_block: int | None = None) -> ChainAudit:
        last = int(self.w3.eth.block_number) if to_block is None else to_block
        fills: list[AuditedFill] = []
        problems: list[str] = []
        instruments: dict[str, ChainInstrument] = {}
        filled: dict[tuple[str, bytes], int] = defaultdict(int)  # across batches
        batches = 0
        for tx in self._logs(from_block, last):
            found, tx_problems, batch_count = self._audit_tx(tx, instruments, filled)
            fills.extend(found)
            problems.extend(tx_problems)
            batches += batch_count
        return ChainAudit(
            self.chain_id,
            self.settlement.address,
            from_block,
            last,
            batches,
            tuple(fills),
            instruments,
            tuple(problems),
        )

    def _instrument(self, raw: dict[str, Any]) -> ChainInstrument:
        ins_id = eip712.instrument_id(
            int(raw["kind"]),
            raw["base"],
            raw["quote"],
            int(raw["strike"]),
            int(raw["expiry"]),
            bool(raw["is_call"]),
        )
        base_symbol, base_decimals = self.token(raw["base"])
        quote_symbol, quote_decimals = self.token(raw["quote"])
        return ChainInstrument(
            Web3.to_hex(ins_id),
            int(raw["kind"]),
            Web3.to_checksum_address(raw["base"]),
            Web3.to_checksum_address(raw["quote"]),
            int(raw["strike"]),
            int(raw["expiry"]),
            bool(raw["is_call"]),
            base_symbol,
            quote_symbol,
            base_decimals,
            quote_decimals,
        )

    def _audit_tx(
        self,
        tx: _Tx,
        instruments: dict[str, ChainInstrument],
        filled: dict[tuple[str, bytes], int],
    ) -> tuple[list[AuditedFill], list[str], int]:
        settled = [e for name, e in tx.events if name == "BatchSettled"]
        legs = [(name, e) for name, e in tx.events if name in ("Fill", "StrategyFilled")]
        where = f"tx {tx.tx_hash}"
        if len(settled) != 1:
            fills = [
                _bare(tx, e, 0, ["no BatchSettled in its transaction"])
                for n, e in legs
                if n == "Fill"
            ]
            return fills, [f"{where}: {len(settled)} BatchSettled events"], len(settled)
        batch_event = settled[0]["args"]
        transaction = self.w3.eth.get_transaction(HexBytes(tx.tx_hash))
        calldata: dict[str, Any] | None = None
        if str(transaction.get("to") or "").lower() == self.settlement.address.lower():
            try:
                function, args = self.settlement.decode_function_input(transaction["input"])
                if function.fn_name == "settle":
                    calldata = args["batch"]
                elif function.fn_name == "settle_pairs":
                    calldata = _pair_batch_as_batch(args["batch"])
            except ValueError:
                calldata = None
        if calldata is None:
            reason = (
                "the transaction is not a direct settle() call: the signed orders are not readable"
            )
            fills = [
                _bare(tx, e, int(batch_event["batch_id"]), [reason]) for n, e in legs if n == "Fill"
            ]
            return fills, [f"{where}: {reason}"], 1
        problems: list[str] = []
        if int(calldata["batch_id"]) != int(batch_event["batch_id"]):
            problems.append(f"{where}: BatchSettled id differs from the calldata's batch id")
        counts = (len(calldata["orders"]), len(calldata["strategies"]), len(calldata["swaps"]))
        if counts != (
            int(batch_event["orders"]),
            int(batch_event["strategies"]),
            int(batch_event["swaps"]),
        ):
            problems.append(f"{where}: BatchSettled counts differ from the calldata")
        ins = [self._instrument(raw) for raw in calldata["instruments"]]
        for item in ins:
            instruments[item.id] = item
        block = tx.block_number
        timestamp = self._timestamp(block)
        batch_id = int(calldata["batch_id"])
        signatures = [bytes(raw) for raw in calldata.get("signatures", [])]
        queue = list(legs)
        out: list[AuditedFill] = []

        def take(expected: str) -> Any | None:
            if queue and queue[0][0] == expected:
                return queue.pop(0)[1]
            return None

        for order in calldata["orders"]:
            event = take("Fill")
            if event is None:
                problems.append(f"{where}: an order of the calldata has no Fill event")
                continue
            instrument = ins[int(order["instrument"])]
            signed = eip712.Order(
                bytes.fromhex(instrument.id[2:]),
                bool(order["is_buy"]),
                int(order["amount"]),
                int(order["limit_price"]),
                int(order["nonce"]),
                int(order["deadline"]),
            )
            wallet = Web3.to_checksum_address(order["wallet"])
            digest = eip712.order_digest(signed, self.chain_id, wallet)
            unit = 10**instrument.base_decimals
            found, signer = self._item_problems(
                digest,
                order["sig"],
                signatures,
                wallet,
                block,
                timestamp,
                signed.deadline,
                event,
                (signed.instrument,),
                signed.amount * signed.limit_price // unit,
            )
            fill, quote = int(order["fill"]), int(order["quote"])
            found += _leg_problems(event, fill, quote)
            bound = fill * signed.limit_price // unit
            if signed.is_buy and quote > bound:
                found.append(f"pays {quote} quote units, over the signed limit ({bound})")
            if not signed.is_buy and quote < bound:
                found.append(f"receives {quote} quote units, under the signed limit ({bound})")
            found += _total_problems(filled, wallet, digest, fill, signed.amount)
            leg = _Leg(wallet, instrument.id, "buy" if signed.is_buy else "sell")
            out.append(_audited(tx, event, event, batch_id, leg, "order", found, signer))
        for strategy in calldata["strategies"]:
            wallet = Web3.to_checksum_address(strategy["wallet"])
            leg_events = []
            item_problems: list[str] = []
            net = 0
            for leg in strategy["legs"]:
                event = take("Fill")
                if event is None:
                    problems.append(f"{where}: a strategy leg of the calldata has no Fill event")
                    continue
                instrument = ins[int(leg["instrument"])]
                quote = int(leg["quote"])
                net += quote if leg["is_buy"] else -quote
                leg_events.append(
                    (
                        event,
                        _Leg(wallet, instrument.id, "buy" if leg["is_buy"] else "sell"),
                        _leg_problems(event, int(strategy["fill"]) * int(leg["ratio"]), quote),
                    )
                )
            closing = take("StrategyFilled")
            if closing is None:
                problems.append(f"{where}: a strategy of the calldata has no StrategyFilled")
                continue
            signed_strategy = eip712.Strategy(
                tuple(
                    eip712.Leg(
                        bytes.fromhex(ins[int(leg["instrument"])].id[2:]),
                        bool(leg["is_buy"]),
                        int(leg["ratio"]),
                    )
                    for leg in strategy["legs"]
                ),
                int(strategy["amount"]),
                int(strategy["limit_net_price"]),
                int(strategy["nonce"]),
                int(strategy["deadline"]),
            )
            digest = eip712.strategy_digest(signed_strategy, self.chain_id, wallet)
            fill = int(strategy["fill"])
            unit = 10 ** ins[int(strategy["legs"][0]["instrument"])].base_decimals
            found, signer = self._item_problems(
                digest,
                strategy["sig"],
                signatures,
                wallet,
                block,
                timestamp,
                signed_strategy.deadline,
                closing,
                tuple(leg.instrument for leg in signed_strategy.legs),
                signed_strategy.amount * abs(signed_strategy.limit_net_price) // unit,
            )
            item_problems += found
            args = closing["args"]
            if int(args["fill"]) != fill or int(args["net_quote"]) != net:
                item_problems.append("StrategyFilled differs from the calldata's fill or quotes")
            if net * unit > fill * signed_strategy.limit_net_price:
                item_problems.append(
                    f"net quote {net} for {fill} units is beyond the signed net limit "
                    f"{signed_strategy.limit_net_price}"
                )
            item_problems += _total_problems(filled, wallet, digest, fill, signed_strategy.amount)
            for event, leg, leg_problems in leg_events:
                if bytes(event["args"]["digest"]) != digest:
                    leg_problems.append("the leg's digest is not the strategy's EIP-712 digest")
                out.append(
                    _audited(
                        tx,
                        event,
                        closing,
                        batch_id,
                        leg,
                        "strategy_leg",
                        leg_problems + item_problems,
                        signer,
                    )
                )
        for name, event in queue:
            problems.append(
                f"{where}: {name} log {event['logIndex']} matches nothing in the calldata"
            )
            if name == "Fill":
                out.append(_bare(tx, event, batch_id, ["matches nothing in the settle() calldata"]))
        return out, problems, 1

    def _item_problems(
        self,
        digest: bytes,
        sig: dict[str, Any],
        signatures: Sequence[bytes],
        wallet: str,
        block: int,
        timestamp: int,
        deadline: int,
        event: Any,
        instruments: Sequence[bytes],
        notional: int,
    ) -> tuple[list[str], SignerCheck]:
        found: list[str] = []
        if bytes(event["args"]["digest"]) != digest:
            found.append("the event's digest is not the EIP-712 digest of the signed order")
        try:
            signature, contract = item_signature(sig, signatures)
        except ValueError as error:
            signer = SignerCheck("", "", (f"no signature in the batch: {error}",))
        else:
            signer = self.check_signer(
                digest,
                signature,
                wallet,
                block,
                contract_signature=contract,
                instruments=instruments,
                notional=notional,
            )
        found += signer.problems
        if timestamp > deadline:
            found.append(f"settled at {timestamp}, after the signed deadline {deadline}")
        return found, signer


def _leg_problems(event: Any, amount: int, quote: int) -> list[str]:
    # the event's wallet, instrument and side are its digest's, checked against the calldata's
    # signed order in _item_problems
    args = event["args"]
    found = []
    if int(args["amount"]) != amount or int(args["quote"]) != quote:
        found.append("the event's amount or quote differs from the calldata")
    return found


def _total_problems(
    filled: dict[tuple[str, bytes], int], wallet: str, digest: bytes, fill: int, amount: int
) -> list[str]:
    key = (wallet.lower(), digest)
    filled[key] += fill
    if filled[key] > amount:
        return [f"filled {filled[key]} in total, over the signed amount {amount}"]
    return []


def _traded_fills(event: Any) -> list[dict[str, Any]]:
    """A ``Traded`` log (one paired trade) as the ``Fill`` of each of its orders, buy then
    sell, both at its log index: the order in which ``settle_pairs`` applies them."""
    args = event["args"]
    return [
        {
            "event": "Fill",
            "logIndex": event["logIndex"],
            "args": {"digest": args[side], "amount": args["amount"], "quote": args["quote"]},
        }
        for side in ("buy", "sell")
    ]


def _pair_batch_as_batch(batch: Any) -> dict[str, Any]:
    """A decoded ``settle_pairs`` batch as the ``settle`` batch of the same orders."""
    return {
        "batch_id": batch["batch_id"],
        "instruments": batch["instruments"],
        "orders": pair_batch_orders(batch["pairs"]),
        "strategies": [],
        "swaps": [],
        "signatures": batch["signatures"],
    }


@dataclass(frozen=True)
class _Leg:
    """What the calldata says of a ``Fill`` (the event itself logs only its digest and
    amounts): the wallet, the instrument id and the side; empty when nothing matched it."""

    wallet: str = ""
    instrument: str = ""
    side: str = ""


def _audited(
    tx: _Tx,
    event: Any,
    item_event: Any,
    batch_id: int,
    leg: _Leg,
    kind: str,
    problems: Sequence[str],
    signer: SignerCheck | None = None,
) -> AuditedFill:
    args = event["args"]
    return AuditedFill(
        tx.tx_hash,
        tx.block_number,
        int(event["logIndex"]),
        int(item_event["logIndex"]),
        batch_id,
        leg.wallet and Web3.to_checksum_address(leg.wallet),
        Web3.to_hex(args["digest"]),
        leg.instrument,
        leg.side,
        int(args["amount"]),
        int(args["quote"]),
        kind,
        tuple(dict.fromkeys(problems)),
        signer=signer.signer if signer is not None else "",
        signed_by=signer.signed_by if signer is not None else "",
    )


def _bare(tx: _Tx, event: Any, batch_id: int, problems: Iterable[str]) -> AuditedFill:
    return _audited(tx, event, event, batch_id, _Leg(), "unknown", tuple(problems))
