"""Fixtures for the contract tests: one deployed world (tokens, oracle, settlement, factory,
wallets, a real Uniswap v2 pair), rolled back after every test with ``boa.env.anchor()``."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boa
import pytest
from eth_abi import encode as abi_encode
from eth_keys import keys
from eth_utils import keccak, to_checksum_address

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
UNISWAP = ROOT / "node_modules" / "@uniswap" / "v2-core" / "build"

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
USDC = 10**6
WETH = 10**18
DAY = 86_400
NO_LIMIT = (1 << 94) - 1
ADMIN_DELAY = 2 * DAY  # queued admin changes wait this long
EXPIRY_GRACE = DAY  # after expiry: fallback price / unwind
NO_KEY_LIMIT = (1 << 128) - 1


def load(name: str, *args: Any, **kwargs: Any) -> Any:
    return boa.load(str(CONTRACTS / name), *args, **kwargs)


# ---------------------------------------------------------------------------- signing


class Key:
    """A trader's secp256k1 key."""

    def __init__(self, seed: int) -> None:
        self.private = keys.PrivateKey(keccak(text=f"isthmus-test-{seed}"))
        self.address = to_checksum_address(self.private.public_key.to_canonical_address())

    def sign(self, digest: bytes) -> bytes:
        """65 bytes r || s || v with low s (EIP-2)."""
        sig = self.private.sign_msg_hash(digest)
        r, s, rec = sig.r, sig.s, sig.v
        if s > N // 2:
            s, rec = N - s, rec ^ 1
        return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([27 + rec])


def high_s(signature: bytes) -> bytes:
    """The malleable twin of a low-s signature (same signer for raw ecrecover)."""
    r = signature[:32]
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    return r + (N - s).to_bytes(32, "big") + bytes([55 - v])


ORDER_TYPEHASH = keccak(
    text="Order(bytes32 instrument,bool is_buy,uint256 amount,uint256 limit_price,"
    "uint256 nonce,uint64 deadline)"
)
DOMAIN_TYPEHASH = keccak(
    text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)


def order_digest(order: tuple, chain_id: int, wallet: str) -> bytes:
    """The EIP-712 digest computed in Python (independently of the contract)."""
    domain = keccak(
        abi_encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [DOMAIN_TYPEHASH, keccak(text="Isthmus"), keccak(text="1"), chain_id, wallet],
        )
    )
    struct = keccak(
        abi_encode(
            ["bytes32", "bytes32", "bool", "uint256", "uint256", "uint256", "uint64"],
            [ORDER_TYPEHASH, *order],
        )
    )
    return keccak(b"\x19\x01" + domain + struct)


def events(contract: Any, name: str) -> list[dict[str, Any]]:
    """Decoded logs of `name` emitted by `contract` in the last call."""
    out = []
    for log in contract.get_logs():
        if type(log).__name__ == name:
            out.append(
                {k: getattr(log, k) for k in log._fields} if hasattr(log, "_fields") else vars(log)
            )
    return out


def instrument(
    kind: int, base: str, quote: str, strike: int = 0, expiry: int = 0, is_call: bool = False
) -> tuple:
    return (kind, base, quote, strike, expiry, is_call)


def instrument_id(ins: tuple) -> bytes:
    kind, base, quote, strike, expiry, is_call = ins
    return keccak(
        abi_encode(
            ["uint8", "address", "address", "uint256", "uint64", "bool"],
            [kind, base, quote, strike, expiry, is_call],
        )
    )


@dataclass
class Trader:
    key: Key
    wallet: Any
    nonce: int = 0

    @property
    def address(self) -> str:
        return self.key.address

    def next_nonce(self) -> int:
        self.nonce += 1
        return self.nonce

    def order(
        self,
        ins: tuple,
        is_buy: bool,
        amount: int,
        limit_price: int,
        *,
        nonce: int | None = None,
        deadline: int | None = None,
    ) -> tuple:
        if nonce is None:
            nonce = self.next_nonce()
        if deadline is None:
            deadline = boa.env.evm.patch.timestamp + DAY
        return (instrument_id(ins), is_buy, amount, limit_price, nonce, deadline)

    def strategy(
        self,
        legs: list[tuple[tuple, bool, int]],
        amount: int,
        limit_net_price: int,
        *,
        nonce: int | None = None,
        deadline: int | None = None,
    ) -> tuple:
        if nonce is None:
            nonce = self.next_nonce()
        if deadline is None:
            deadline = boa.env.evm.patch.timestamp + DAY
        return (
            [(instrument_id(ins), is_buy, ratio) for ins, is_buy, ratio in legs],
            amount,
            limit_net_price,
            nonce,
            deadline,
        )

    def sign_order(self, order: tuple) -> bytes:
        return self.key.sign(bytes(self.wallet.hash_order(order)))

    def sign_strategy(self, strategy: tuple) -> bytes:
        return self.key.sign(bytes(self.wallet.hash_strategy(strategy)))


def split_sig(signature: bytes) -> tuple[int, bytes, bytes]:
    """65 bytes r || s || v as the (v, r, s) tuple of the batch ABI."""
    return (signature[64], signature[:32], signature[32:64])


class ContractSig(bytes):
    """A contract owner's EIP-1271 signature: travels in `Batch.signatures`, the item's
    (v, r, s) is (0, index, 0)."""


def order_item(
    trader: Trader, ins: tuple, order: tuple, fill: int, quote: int, signature: bytes | None = None
) -> dict[str, Any]:
    """An order fill, before `batch` lays out the instruments."""
    if signature is None:
        signature = trader.sign_order(order)
    return {
        "wallet": trader.wallet.address,
        "ins": ins,
        "order": order,
        "sig": signature,
        "fill": fill,
        "quote": quote,
    }


def strategy_item(
    trader: Trader,
    instruments: list[tuple],
    strategy: tuple,
    fill: int,
    quotes: list[int],
    signature: bytes | None = None,
) -> dict[str, Any]:
    """A strategy fill; `instruments` are the legs' preimages in leg order."""
    if signature is None:
        signature = trader.sign_strategy(strategy)
    return {
        "wallet": trader.wallet.address,
        "instruments": instruments,
        "strategy": strategy,
        "sig": signature,
        "fill": fill,
        "quotes": quotes,
    }


def batch(orders=(), strategies=(), swaps=(), batch_id: int = 1) -> tuple:
    """The `Settlement.settle` argument: (batch_id, instruments, orders, strategies, swaps,
    signatures)."""
    instruments: list[tuple] = []
    signatures: list[bytes] = []

    def sig(signature: bytes) -> tuple[int, bytes, bytes]:
        if isinstance(signature, ContractSig):
            signatures.append(bytes(signature))
            return (0, (len(signatures) - 1).to_bytes(32, "big"), bytes(32))
        return split_sig(signature)

    def index(ins: tuple) -> int:
        if ins not in instruments:
            instruments.append(ins)
        return instruments.index(ins)

    order_items = []
    for item in orders:
        _, is_buy, amount, limit_price, nonce, deadline = item["order"]
        order_items.append(
            (
                item["wallet"],
                index(item["ins"]),
                is_buy,
                amount,
                limit_price,
                nonce,
                deadline,
                sig(item["sig"]),
                item["fill"],
                item["quote"],
            )
        )
    strategy_items = []
    for item in strategies:
        legs, amount, limit, nonce, deadline = item["strategy"]
        leg_items = [
            (index(ins), leg[1], leg[2], quote)
            for ins, leg, quote in zip(item["instruments"], legs, item["quotes"], strict=True)
        ]
        strategy_items.append(
            (
                item["wallet"],
                leg_items,
                amount,
                limit,
                nonce,
                deadline,
                sig(item["sig"]),
                item["fill"],
            )
        )
    return (batch_id, instruments, order_items, strategy_items, list(swaps), signatures)


def pair_batch(orders: Sequence[dict[str, Any]], batch_id: int = 1) -> tuple:
    """The `Settlement.settle_pairs` argument for order items laid out as pairs (items 2k and
    2k + 1 are one trade's two sides, in either order): (batch_id, instruments, pairs,
    signatures), each pair (instrument, fill, quote, buy side, sell side) with the fill and
    quote of its first item."""
    batch_id, instruments, items, _, _, signatures = batch(orders, batch_id=batch_id)

    def side(item: tuple) -> tuple:
        return (item[0], *item[3:8])  # wallet, amount, limit_price, nonce, deadline, sig

    pairs = []
    for a, b in zip(items[0::2], items[1::2], strict=True):
        buy, sell = (a, b) if a[2] else (b, a)
        pairs.append((a[1], a[8], a[9], side(buy), side(sell)))
    return (batch_id, instruments, pairs, signatures)


# ---------------------------------------------------------------------------- world


@dataclass
class World:
    admin: str
    operator: str
    usdc: Any
    weth: Any
    feed: Any
    oracle: Any
    settlement: Any
    factory: Any
    wallet_blueprint: Any
    uni_factory: Any
    pair: Any
    spot: tuple
    expiry: int
    traders: list[Trader] = field(default_factory=list)
    wallet_deployer: Any = None

    def option(self, strike: int, is_call: bool, expiry: int | None = None) -> tuple:
        return instrument(
            1, self.weth.address, self.usdc.address, strike * USDC, expiry or self.expiry, is_call
        )

    def list_option(self, strike: int, is_call: bool, expiry: int | None = None) -> tuple:
        ins = self.option(strike, is_call, expiry)
        with boa.env.prank(self.admin):
            self.settlement.register_option(*ins[1:])
        return ins

    def new_trader(self, seed: int, usdc: int = 0, weth: int = 0) -> Trader:
        key = Key(seed)
        wallet_address = self.factory.create_wallet_for(key.address)
        wallet = self.wallet_deployer.at(wallet_address)
        trader = Trader(key, wallet)
        self.fund(trader, usdc, weth)
        self.traders.append(trader)
        return trader

    def fund(self, trader: Trader, usdc: int = 0, weth: int = 0) -> None:
        with boa.env.prank(self.admin):
            if usdc:
                self.usdc.mint(trader.wallet.address, usdc)
            if weth:
                self.weth.mint(trader.wallet.address, weth)

    def settle(self, b: tuple, sender: str | None = None) -> Any:
        with boa.env.prank(sender or self.operator):
            return self.settlement.settle(b)

    def settle_pairs(self, b: tuple, sender: str | None = None) -> Any:
        with boa.env.prank(sender or self.operator):
            return self.settlement.settle_pairs(b)

    def replace_feed(self, asset: str, aggregator: str, staleness: int, deviation: int) -> None:
        """Queue a feed replacement, wait out the admin delay, apply it."""
        with boa.env.prank(self.admin):
            self.oracle.queue_feed(asset, aggregator, staleness, deviation)
            boa.env.time_travel(seconds=ADMIN_DELAY)
            self.oracle.set_feed(asset, aggregator, staleness, deviation)

    def set_price(self, usd: int | float) -> None:
        self.feed.set_answer(int(usd * 10**8))

    def token_total(self, token: Any) -> int:
        holders = [t.wallet.address for t in self.traders]
        holders += [self.settlement.address, self.pair.address]
        return sum(token.balanceOf(h) for h in holders)


def deploy_uniswap(admin: str, token_a: Any, token_b: Any) -> tuple[Any, Any]:
    factory_json = json.loads((UNISWAP / "UniswapV2Factory.json").read_text())
    pair_json = json.loads((UNISWAP / "UniswapV2Pair.json").read_text())
    init = bytes.fromhex(factory_json["bytecode"].removeprefix("0x")) + abi_encode(
        ["address"], [admin]
    )
    address, _ = boa.env.deploy_code(bytecode=init)
    uni_factory = boa.loads_abi(json.dumps(factory_json["abi"]), name="UniswapV2Factory").at(
        address
    )
    uni_factory.createPair(token_a.address, token_b.address)
    pair_address = uni_factory.getPair(token_a.address, token_b.address)
    pair = boa.loads_abi(json.dumps(pair_json["abi"]), name="UniswapV2Pair").at(pair_address)
    return uni_factory, pair


def build_world() -> World:
    admin = boa.env.generate_address("admin")
    operator = boa.env.generate_address("operator")
    boa.env.evm.patch.timestamp = 1_800_000_000
    with boa.env.prank(admin):
        usdc = load("test/TestUSDC.vy")
        weth = load("test/TestWETH.vy")
        feed = load("test/TestAggregator.vy", 8, 3000 * 10**8)
        oracle = load("PriceOracle.vy", 6, ADMIN_DELAY)
        oracle.set_feed(weth.address, feed.address, 3600, 0)
        settlement = load("Settlement.vy", oracle.address, usdc.address, ADMIN_DELAY, EXPIRY_GRACE)
        blueprint = boa.load_partial(str(CONTRACTS / "MarginWallet.vy")).deploy_as_blueprint()
        factory = load("WalletFactory.vy", blueprint.address, settlement.address)
        settlement.set_factory(factory.address)
        settlement.set_operator(operator, True)
        settlement.register_spot(weth.address, usdc.address)
        uni_factory, pair = deploy_uniswap(admin, weth, usdc)
        settlement.register_pool(pair.address)
        # seed the pool: 100 WETH / 300,000 USDC
        weth.mint(pair.address, 100 * WETH)
        usdc.mint(pair.address, 300_000 * USDC)
        pair.mint(admin)
    expiry = boa.env.evm.patch.timestamp + 7 * DAY
    return World(
        admin=admin,
        operator=operator,
        usdc=usdc,
        weth=weth,
        feed=feed,
        oracle=oracle,
        settlement=settlement,
        factory=factory,
        wallet_blueprint=blueprint,
        uni_factory=uni_factory,
        pair=pair,
        spot=instrument(0, weth.address, usdc.address),
        expiry=expiry,
        wallet_deployer=boa.load_partial(str(CONTRACTS / "MarginWallet.vy")),
    )


@pytest.fixture(scope="session")
def _world() -> World:
    return build_world()


@pytest.fixture
def world(_world: World) -> Iterator[World]:
    traders = list(_world.traders)
    with boa.env.anchor():
        yield _world
    _world.traders[:] = traders
