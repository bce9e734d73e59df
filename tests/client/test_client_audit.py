"""The client's auditor (`isthmus_client.audit.verify`, nothing but an RPC URL and the
Settlement address) against real settled trades on anvil: it agrees with the gateway's own
chain auditor fill for fill, over orders signed by an owner EOA, by a scoped trading key and by
a Safe (EIP-1271), and over a two-leg option strategy; and it finds what is wrong, both in a
fill that really settled on chain (a wallet contract the factory never made, whose order a
stranger signed) and in tampered copies of real transactions (a signature by a key that is
not the owner's, a trading key over its maximum, a Safe signature with too few owners,
amounts that differ from the calldata, a limit price exceeded, an order filled twice)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import pytest
import vyper
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from isthmus_client.audit import (
    AuditedFill,
    Auditor,
    AuditReport,
    ChainEvent,
    SettledTransaction,
    SignedBy,
    verify,
)
from web3 import Web3

from gateway.chain import settlement_abi as abi
from gateway.chain import tokens
from gateway.chain.anvil import Anvil
from gateway.chain.artifacts import ContractArtifact
from gateway.chain.deploy import (
    Deployment,
    create_wallet,
    deploy_all,
    register_option,
    settlement_contract,
    wallet_contract,
)
from gateway.chain.safe import create_safe, safe_message_hash, sign_safe_message
from gateway.chain.transactions import Sender
from gateway.settlement import eip712
from gateway.settlement.auditor import verify as server_verify
from gateway.settlement.eip712 import Leg, Order, Strategy
from tests.chain.conftest import anvil_node, deployer, fresh_chain, w3  # noqa: F401

pytestmark = pytest.mark.chain

USDC, WETH, DAY = 10**6, 10**18, 86_400
PRICE = 3_000 * USDC
KEY_MAX_NOTIONAL = 10_000 * USDC


@dataclass
class Trades:
    """Four settled batches on one deployment (batch ids 1 to 4)."""

    w3: Web3
    rpc_url: str
    operator: Sender
    d: Deployment
    buyer: LocalAccount
    seller: LocalAccount
    key: LocalAccount  # the seller's trading key
    safe_owners: list[LocalAccount]  # 2 of 3 sign for the Safe
    stranger: LocalAccount
    buyer_wallet: str
    seller_wallet: str
    safe_wallet: str
    tx_hashes: list[str]  # one per batch, in order


def _deadline(chain: Web3) -> int:
    return int(chain.eth.get_block("latest")["timestamp"]) + 3600


def _settle(env: tuple[Web3, Sender, Deployment], batch: tuple[Any, ...]) -> str:
    chain, operator, d = env
    receipt = operator.transact(settlement_contract(chain, d).functions.settle(batch))
    assert receipt["status"] == 1
    return Web3.to_hex(receipt["transactionHash"])


@pytest.fixture(scope="module")
def trades(w3: Web3, deployer: Sender, anvil_node: Anvil) -> Iterator[Trades]:  # noqa: F811
    """Settles, on a chain reverted after the module:
    1. the buyer buys 1 WETH from the seller, both orders signed by their owners;
    2. the buyer's order for 2 WETH is half filled against a sell signed by the seller's
       trading key (scoped to the spot instrument, at most 10,000 USDC of notional);
    3. the other half against a sell of a wallet owned by a 2-of-3 Safe (EIP-1271);
    4. the buyer buys a call spread as one strategy from the writer's two orders."""
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    try:
        yield _settle_trades(w3, deployer, anvil_node)
    finally:
        w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]
        deployer.reset_nonce()


def _settle_trades(w3: Web3, deployer: Sender, node: Anvil) -> Trades:  # noqa: F811
    accounts = node.dev_accounts()
    buyer, seller, writer, key = accounts[1:5]
    safe_owners, stranger = accounts[5:8], accounts[9]
    d = deploy_all(deployer)
    chain_id = w3.eth.chain_id
    spot = abi.Instrument.spot(d.weth, d.usdc)
    buyer_wallet = create_wallet(deployer, d, buyer.address)
    seller_wallet = create_wallet(deployer, d, seller.address)
    writer_wallet = create_wallet(deployer, d, writer.address)
    assert d.safe is not None
    safe = create_safe(deployer, d.safe, [o.address for o in safe_owners], threshold=2)
    safe_wallet = create_wallet(deployer, d, safe)
    tokens.mint(deployer, d.usdc, buyer_wallet, 100_000 * USDC)
    tokens.mint(deployer, d.weth, seller_wallet, 10 * WETH)
    tokens.mint(deployer, d.weth, safe_wallet, 2 * WETH)
    tokens.mint(deployer, d.weth, writer_wallet, 2 * WETH)
    tokens.mint(deployer, d.usdc, writer_wallet, 500 * USDC)
    expiry = _deadline(w3)
    Sender(w3, seller).transact(
        wallet_contract(w3, seller_wallet).functions.authorise_key(
            key.address, expiry + DAY, False, KEY_MAX_NOTIONAL, [spot.id]
        )
    )
    env = (w3, deployer, d)
    hashes: list[str] = []

    def sign(order: Order | Strategy, account: LocalAccount, wallet: str) -> bytes:
        if isinstance(order, Order):
            return eip712.sign_order(order, account.key, chain_id, wallet)
        return eip712.sign_strategy(order, account.key, chain_id, wallet)

    # 1. owner EOAs on both sides
    deadline = _deadline(w3)
    buy = Order(spot.id, True, WETH, PRICE, 1, deadline)
    sell = Order(spot.id, False, WETH, PRICE, 1, deadline)
    hashes.append(
        _settle(
            env,
            abi.BatchBuilder(1)
            .add_order(buyer_wallet, spot, buy, sign(buy, buyer, buyer_wallet), WETH, PRICE)
            .add_order(seller_wallet, spot, sell, sign(sell, seller, seller_wallet), WETH, PRICE)
            .build(),
        )
    )
    # 2. a trading key sells half of the buyer's 2 WETH bid
    bid = Order(spot.id, True, 2 * WETH, PRICE, 2, deadline)
    bid_sig = sign(bid, buyer, buyer_wallet)
    keyed = Order(spot.id, False, WETH, PRICE, 2, deadline)
    hashes.append(
        _settle(
            env,
            abi.BatchBuilder(2)
            .add_order(buyer_wallet, spot, bid, bid_sig, WETH, PRICE)
            .add_order(seller_wallet, spot, keyed, sign(keyed, key, seller_wallet), WETH, PRICE)
            .build(),
        )
    )
    # 3. the Safe's wallet sells the other half; two of its three owners sign (130 bytes)
    safe_sell = Order(spot.id, False, WETH, PRICE, 1, deadline)
    safe_digest = eip712.order_digest(safe_sell, chain_id, safe_wallet)
    safe_sig = sign_safe_message(
        [bytes(o.key) for o in safe_owners[:2]], safe_message_hash(chain_id, safe, safe_digest)
    )
    hashes.append(
        _settle(
            env,
            abi.BatchBuilder(3)
            .add_order(buyer_wallet, spot, bid, bid_sig, WETH, PRICE)
            .add_order(safe_wallet, spot, safe_sell, safe_sig, WETH, PRICE)
            .build(),
        )
    )
    # 4. a call spread: the buyer's strategy against the writer's two orders
    series = expiry + 30 * DAY
    low, high = 3_000 * USDC, 3_200 * USDC
    register_option(deployer, d, low, series, True)
    register_option(deployer, d, high, series, True)
    low_call = abi.Instrument.option(d.weth, d.usdc, low, series, True)
    high_call = abi.Instrument.option(d.weth, d.usdc, high, series, True)
    premiums = (150 * USDC, 50 * USDC)
    spread = Strategy(
        (Leg(low_call.id, True, 1), Leg(high_call.id, False, 1)), WETH, 120 * USDC, 3, deadline
    )
    write_low = Order(low_call.id, False, WETH, premiums[0], 1, deadline)
    buy_high = Order(high_call.id, True, WETH, premiums[1], 2, deadline)
    hashes.append(
        _settle(
            env,
            abi.BatchBuilder(4)
            .add_order(
                writer_wallet,
                low_call,
                write_low,
                sign(write_low, writer, writer_wallet),
                WETH,
                premiums[0],
            )
            .add_order(
                writer_wallet,
                high_call,
                buy_high,
                sign(buy_high, writer, writer_wallet),
                WETH,
                premiums[1],
            )
            .add_strategy(
                buyer_wallet,
                [low_call, high_call],
                spread,
                sign(spread, buyer, buyer_wallet),
                WETH,
                list(premiums),
            )
            .build(),
        )
    )
    return Trades(
        w3,
        node.rpc_url,
        deployer,
        d,
        buyer,
        seller,
        key,
        safe_owners,
        stranger,
        buyer_wallet,
        seller_wallet,
        safe_wallet,
        hashes,
    )


def _row(fill: Any) -> tuple[Any, ...]:
    """What both auditors report of a fill, in the same shape."""
    return (
        fill.tx_hash,
        fill.block_number,
        fill.log_index,
        fill.batch_id,
        fill.wallet,
        fill.digest,
        fill.instrument,
        fill.side,
        fill.amount,
        fill.quote,
        fill.kind,
        fill.signer,
        fill.signed_by,
        fill.ok,
    )


def _plain(value: Any) -> Any:
    """A decoded web3 value as plain, mutable dicts and lists."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _transaction(trades: Trades, batch_id: int) -> tuple[Auditor, SettledTransaction]:
    auditor = Auditor(trades.w3, trades.d.settlement)
    found = auditor.transactions(0, trades.w3.eth.block_number)
    [tx] = [t for t in found if t.tx_hash == trades.tx_hashes[batch_id - 1]]
    return auditor, tx


def _tampered(
    tx: SettledTransaction,
    batch: dict[str, Any] | None = None,
    fill_args: Mapping[int, Mapping[str, Any]] | None = None,
) -> SettledTransaction:
    """`tx` with its calldata replaced and the n-th Fill event's arguments updated."""
    fill_args = fill_args or {}
    events = []
    n = 0
    for event in tx.events:
        if event.name == "Fill":
            event = ChainEvent(event.name, event.log_index, {**event.args, **fill_args.get(n, {})})
            n += 1
        events.append(event)
    return replace(tx, events=tuple(events), batch=batch if batch is not None else tx.batch)


def _sig(signature: bytes) -> dict[str, Any]:
    v, r, s = abi.signature_struct(signature)
    return {"v": v, "r": r, "s": s}


# -- agreement with the gateway's auditor -----------------------------------------------------


def test_the_client_agrees_with_the_server_auditor_fill_for_fill(trades: Trades) -> None:
    client = verify(trades.rpc_url, trades.d.settlement)
    server = server_verify(trades.w3, trades.d.settlement)

    assert client.problems == [] and server.problems == ()
    assert client.ok and server.ok
    assert client.batches == server.chain.batches == 4
    assert [_row(f) for f in client.fills] == [_row(f) for f in server.fills]
    assert len(client.fills) == 10  # 2 + 2 + 2 orders, 2 orders and 2 strategy legs
    assert {f.tx_hash for f in client.fills} == set(trades.tx_hashes)

    by_wallet = {(f.wallet, f.batch_id): f for f in client.fills if f.kind == "order"}
    assert by_wallet[trades.seller_wallet, 1].signed_by == SignedBy.OWNER
    assert by_wallet[trades.seller_wallet, 1].signer == trades.seller.address
    assert by_wallet[trades.seller_wallet, 2].signed_by == SignedBy.TRADING_KEY
    assert by_wallet[trades.seller_wallet, 2].signer == trades.key.address
    assert by_wallet[trades.safe_wallet, 3].signed_by == SignedBy.CONTRACT_OWNER
    legs = [f for f in client.fills if f.kind == "strategy_leg"]
    assert [(f.wallet, f.side, f.quote) for f in legs] == [
        (trades.buyer_wallet, "buy", 150 * USDC),
        (trades.buyer_wallet, "sell", 50 * USDC),
    ]
    assert legs[0].digest == legs[1].digest
    assert {f.signer for f in legs} == {trades.buyer.address}

    as_json = json.loads(json.dumps(client.to_json()))
    assert as_json["ok"] is True
    assert as_json["counts"] == {
        "batches": 4,
        "fills": 10,
        "fills_ok": 10,
        "fills_with_problems": 0,
        "problems": 0,
    }
    assert as_json["fills"][0]["amount"] == str(WETH)
    assert as_json["settlement"] == trades.d.settlement


def test_a_block_range_audits_only_its_batches(trades: Trades) -> None:
    blocks = [
        int(trades.w3.eth.get_transaction(HexBytes(h))["blockNumber"]) for h in trades.tx_hashes
    ]
    middle = verify(trades.rpc_url, trades.d.settlement, from_block=blocks[1], to_block=blocks[2])
    assert (middle.from_block, middle.to_block, middle.batches) == (blocks[1], blocks[2], 2)
    assert {f.batch_id for f in middle.fills} == {2, 3}
    assert middle.ok  # the 2 WETH bid, filled across both, is within its signed amount
    nothing = verify(trades.rpc_url, trades.d.settlement, to_block=blocks[0] - 1)
    assert nothing == AuditReport(
        True, 0, blocks[0] - 1, 0, [], [], int(trades.w3.eth.chain_id), trades.d.settlement
    )


# -- problems in tampered copies of real transactions -----------------------------------------


def _problems(fill: AuditedFill) -> str:
    return " | ".join(fill.problems)


def test_an_order_signed_by_a_key_that_is_not_the_owners_is_found(trades: Trades) -> None:
    auditor, tx = _transaction(trades, 1)
    assert all(f.ok for f in auditor.audit_transaction(tx).fills)
    batch = _plain(tx.batch)
    order = batch["orders"][0]  # the buyer's
    assert order["wallet"] == trades.buyer_wallet
    signed = Order(
        abi.Instrument.spot(trades.d.weth, trades.d.usdc).id,
        True,
        order["amount"],
        order["limit_price"],
        order["nonce"],
        order["deadline"],
    )
    stranger_sig = eip712.sign_order(
        signed, trades.stranger.key, trades.w3.eth.chain_id, trades.buyer_wallet
    )
    order["sig"] = _sig(stranger_sig)

    found = auditor.audit_transaction(_tampered(tx, batch))
    bad, good = found.fills
    assert not bad.ok and good.ok
    assert bad.signer == trades.stranger.address and bad.signed_by == ""
    assert f"recovers to {trades.stranger.address}, neither the wallet owner" in _problems(bad)
    assert found.problems == []


def test_a_trading_key_over_its_maximum_notional_is_found(trades: Trades) -> None:
    auditor, tx = _transaction(trades, 2)
    batch = _plain(tx.batch)
    order = batch["orders"][1]  # the key's sell
    spot = abi.Instrument.spot(trades.d.weth, trades.d.usdc)
    order["amount"] = 5 * WETH  # 15,000 USDC of notional, over the key's 10,000
    signed = Order(
        spot.id, False, order["amount"], order["limit_price"], order["nonce"], order["deadline"]
    )
    order["sig"] = _sig(
        eip712.sign_order(signed, trades.key.key, trades.w3.eth.chain_id, trades.seller_wallet)
    )
    [_, bad] = auditor.audit_transaction(_tampered(tx, batch)).fills
    assert bad.signed_by == SignedBy.TRADING_KEY and bad.signer == trades.key.address
    assert f"over trading key {trades.key.address}'s maximum {KEY_MAX_NOTIONAL}" in _problems(bad)
    # the event still carries the digest of the order that was really signed
    assert "the event's digest is not the EIP-712 digest" in _problems(bad)


def test_a_safe_signature_with_too_few_owners_is_found(trades: Trades) -> None:
    auditor, tx = _transaction(trades, 3)
    batch = _plain(tx.batch)
    [full] = batch["signatures"]
    assert len(full) == 130
    batch["signatures"] = [full[:65]]  # one owner of a 2-of-3 Safe
    [good, bad] = auditor.audit_transaction(_tampered(tx, batch)).fills
    assert good.ok and bad.wallet == trades.safe_wallet
    assert "does not accept the signature (EIP-1271)" in _problems(bad)
    assert bad.signed_by == ""


def test_amounts_limits_and_totals_are_checked(trades: Trades) -> None:
    auditor, tx = _transaction(trades, 1)
    # an event that says more than the calldata settled
    [bad, _] = auditor.audit_transaction(_tampered(tx, fill_args={0: {"amount": 2 * WETH}})).fills
    assert "the event's amount or quote differs from the calldata" in _problems(bad)
    # the buyer paying over its signed limit (calldata and event alike)
    batch = _plain(tx.batch)
    batch["orders"][0]["quote"] = PRICE + 1
    paid = _tampered(tx, batch, {0: {"quote": PRICE + 1}})
    [bad, _] = auditor.audit_transaction(paid).fills
    assert f"pays {PRICE + 1} quote units, over the signed limit ({PRICE})" in _problems(bad)
    # the same transaction counted twice fills each order twice its signed amount
    filled: dict[tuple[str, bytes], int] = {}
    assert all(f.ok for f in auditor.audit_transaction(tx, filled).fills)
    again = auditor.audit_transaction(tx, filled).fills
    assert all(
        f"filled {2 * WETH} in total, over the signed amount {WETH}" in f.problems for f in again
    )


def test_a_strategy_beyond_its_net_limit_is_found(trades: Trades) -> None:
    auditor, tx = _transaction(trades, 4)
    batch = _plain(tx.batch)
    strategy = batch["strategies"][0]
    strategy["legs"][1]["quote"] = 0  # net 150 USDC, over the signed 120
    found = auditor.audit_transaction(_tampered(tx, batch, {3: {"quote": 0}}))
    legs = [f for f in found.fills if f.kind == "strategy_leg"]
    assert len(legs) == 2 and all(not f.ok for f in legs)
    for leg in legs:
        assert f"net quote {150 * USDC} for {WETH} units is beyond the signed net limit" in (
            _problems(leg)
        )
        assert "StrategyFilled differs from the calldata's fill or quotes" in _problems(leg)
    assert all(f.ok for f in found.fills if f.kind == "order")


def test_events_the_calldata_does_not_account_for_are_found(trades: Trades) -> None:
    auditor, tx = _transaction(trades, 1)
    batch = _plain(tx.batch)
    batch["orders"] = batch["orders"][:1]
    found = auditor.audit_transaction(_tampered(tx, batch))
    assert [f.kind for f in found.fills] == ["order", "unknown"]
    assert not found.fills[1].ok
    assert any("BatchSettled counts differ from the calldata" in p for p in found.problems)
    assert any("matches nothing in the calldata" in p for p in found.problems)
    last_fill = [e for e in tx.events if e.name == "Fill"][-1]
    missing = auditor.audit_transaction(
        replace(tx, events=tuple(e for e in tx.events if e is not last_fill))
    )
    assert len(missing.fills) == 1 and missing.fills[0].ok
    assert missing.problems == [f"tx {tx.tx_hash}: an order of the calldata has no Fill event"]
    unreadable = auditor.audit_transaction(replace(tx, batch=None))
    assert [f.kind for f in unreadable.fills] == ["unknown", "unknown"]
    assert "not a direct settle() call" in unreadable.problems[0]


# -- a problem that really settled on chain ---------------------------------------------------

# A contract that answers the Settlement as a MarginWallet would, but checks nothing: it pays
# whatever the batch asks and returns the digest it was told. The Settlement does not ask the
# wallet registry for spot legs (the batch must still balance), so its fill settles.
FAKE_WALLET = """
# pragma version ~=0.4.3
from ethereum.ercs import IERC20

struct Order:
    instrument: bytes32
    is_buy: bool
    amount: uint256
    limit_price: uint256
    nonce: uint256
    deadline: uint64

struct Signature:
    v: uint8
    r: bytes32
    s: bytes32

struct OrderFill:
    order: Order
    sig: Signature
    fill: uint256
    quote: uint256

struct Instrument:
    kind: uint8
    base: address
    quote: address
    strike: uint256
    expiry: uint64
    is_call: bool

owner: public(address)
digest: public(bytes32)

@deploy
def __init__(owner_: address):
    self.owner = owner_

@external
def set_digest(digest_: bytes32):
    self.digest = digest_

@external
def apply_order(f: OrderFill, ins: Instrument, last: bool, pay_to: address) -> (bytes32, bool):
    to: address = msg.sender
    if pay_to != empty(address):
        to = pay_to
    if f.order.is_buy:
        assert extcall IERC20(ins.quote).transfer(to, f.quote)
    else:
        assert extcall IERC20(ins.base).transfer(to, f.fill)
    return self.digest, False

@external
def finish():
    pass
"""


def test_a_fill_of_a_wallet_the_factory_never_made_is_found_by_both_auditors(
    trades: Trades,
    fresh_chain: Web3,  # noqa: F811
) -> None:
    chain, d = trades.w3, trades.d
    out = vyper.compile_code(FAKE_WALLET, output_formats=["abi", "bytecode"])
    artifact = ContractArtifact("FakeWallet", out["abi"], Web3.to_bytes(hexstr=out["bytecode"]))
    owner = trades.buyer  # it names the buyer as its owner, but a stranger signs its order
    fake = trades.operator.deploy(artifact, owner.address)
    tokens.mint(trades.operator, d.usdc, fake.address, 10_000 * USDC)
    spot = abi.Instrument.spot(d.weth, d.usdc)
    deadline = _deadline(chain)
    chain_id = chain.eth.chain_id
    buy = Order(spot.id, True, WETH, PRICE, 7, deadline)
    trades.operator.transact(
        fake.functions.set_digest(eip712.order_digest(buy, chain_id, fake.address))
    )
    sell = Order(spot.id, False, WETH, PRICE, 7, deadline)
    tx_hash = _settle(
        (chain, trades.operator, d),
        abi.BatchBuilder(5)
        .add_order(
            fake.address,
            spot,
            buy,
            eip712.sign_order(buy, trades.stranger.key, chain_id, fake.address),
            WETH,
            PRICE,
        )
        .add_order(
            trades.seller_wallet,
            spot,
            sell,
            eip712.sign_order(sell, trades.seller.key, chain_id, trades.seller_wallet),
            WETH,
            PRICE,
        )
        .build(),
    )

    client = verify(trades.rpc_url, d.settlement)
    server = server_verify(chain, d.settlement)
    assert not client.ok and not server.ok
    assert [_row(f) for f in client.fills] == [_row(f) for f in server.fills]
    assert client.batches == server.chain.batches == 5
    [bad] = [f for f in client.fills if not f.ok]
    assert (bad.tx_hash, bad.wallet, bad.batch_id) == (tx_hash, fake.address, 5)
    assert bad.problems == (f"wallet {fake.address} was not deployed by the Settlement's factory",)
    [server_bad] = [f for f in server.fills if not f.ok]
    assert server_bad.problems == bad.problems
    assert [f.ok for f in client.fills if f.tx_hash == tx_hash] == [False, True]
    assert client.problems == []
