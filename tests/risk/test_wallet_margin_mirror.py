"""`gateway.risk.wallet_margin.margin_status` equals the compiled `MarginWallet.margin_status()`.

Two sources of portfolios, both checked against the real contracts in titanoboa:

- storage-written (3,200 seeded portfolios, in chunks): one factory wallet whose open list,
  positions, option metadata, option quote and open count are written directly into its
  storage (a function injected with boa's `inject_function`, compiled against the wallet's own
  storage layout), balances minted, oracle prices and haircuts set; then the real
  `margin_status()` is called. Balances are chosen around the thresholds (cover just below /
  at / above, quote at required - 1 / required / + 1, haircut collateral aimed at the
  shortfall +- a few units), with stale feeds and overflowing sizes now and then (both sides
  must revert);
- settled (48 seeded portfolios): a trader builds its portfolio by real signed batches against
  a market maker through `Settlement.settle`; before each batch `apply_fills` predicts every
  touched wallet's state and whether the batch passes (margin, position cap, balances); the
  batch must succeed or revert as predicted, and after it the chain's open list (order
  included), balances and `margin_status()` must equal the prediction.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import boa
import pytest

from gateway.risk.margin import OptionPosition, series_requirement
from gateway.risk.wallet_margin import (
    BPS,
    MAX_OPEN,
    CollateralToken,
    FillRejected,
    MarginReverts,
    MarginStatus,
    OptionFill,
    SeriesPosition,
    WalletState,
    apply_fills,
    margin_status,
    series_requirement_checked,
)
from gateway.settlement.eip712 import option_instrument_id
from tests.contracts.conftest import (
    DAY,
    USDC,
    Trader,
    World,
    batch,
    build_world,
    load,
    order_item,
)

STORAGE_CHUNKS = 8
STORAGE_PER_CHUNK = 400  # 3,200 storage-written portfolios
SETTLED_PORTFOLIOS = 48

# the wallet keeps positions in its `positions` module and the packed config in `core`
SET_OPEN = """
@external
def __set_open(i: uint256, id: bytes32, size: int256, meta: uint256, strike: uint256):
    positions._open[i] = id
    positions.position[id] = size
    positions._option_meta[id] = meta
    positions._option_strike[id] = strike
"""
SET_CONFIG = """
@external
def __set_config(quote: address, count: uint256):
    positions.option_quote = quote
    core.config = (core.config & ~core.OPEN_MASK) | (count << core.OPEN_SHIFT)
"""
# a haircut change waits out the Settlement's timelock; the mirror only needs the value
SET_HAIRCUT = """
@external
def __set_haircut(token: address, bps: uint256):
    self.haircut_bps[token] = bps
"""


@dataclass
class Token:
    contract: Any
    decimals: int
    feed: Any | None = None

    @property
    def address(self) -> str:
        return str(self.contract.address)

    @property
    def unit(self) -> int:
        return int(10**self.decimals)


@dataclass
class Lab:
    world: World
    usdc: Token
    underlyings: list[Token]  # WETH (18, collateral), U6 (6, collateral), W2 (18, not)
    collateral: list[Token]  # the Settlement's collateral_tokens() order
    tokens: list[Token]  # every token a wallet may hold
    expiries: list[int]
    harness: Any  # a factory wallet with the storage writers injected
    mm: Trader
    listed: list[tuple[Any, ...]]  # option instrument preimages listed in the Settlement


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    timestamp = boa.env.evm.patch.timestamp
    with boa.env.anchor():
        world = build_world()
        admin = world.admin
        with boa.env.prank(admin):
            u6 = load("test/TestUSDC.vy")
            w2 = load("test/TestWETH.vy")
            cx = load("test/TestWETH.vy")
        weth = Token(world.weth, 18, world.feed)
        u6t, w2t, cxt = Token(u6, 6), Token(w2, 18), Token(cx, 18)
        with boa.env.prank(admin):
            for token, answer in ((u6t, 2 * 10**8), (w2t, 50_000 * 10**8), (cxt, 10**8)):
                token.feed = load("test/TestAggregator.vy", 8, answer)
                world.oracle.set_feed(token.address, token.feed.address, 3600, 0)
            for token in (weth, cxt, u6t):
                world.settlement.set_collateral(token.address, 2_000)
        expiries = [world.expiry, world.expiry + 7 * DAY, world.expiry + 30 * DAY]
        usdc = Token(world.usdc, 6)
        harness_trader = world.new_trader(90_001)
        harness = harness_trader.wallet
        harness.inject_function(SET_OPEN)
        harness.inject_function(SET_CONFIG)
        world.settlement.inject_function(SET_HAIRCUT)
        mm = world.new_trader(90_002)
        listed = []
        with boa.env.prank(admin):
            for underlying, strikes in (
                (weth, [2_500, 3_000, 3_500]),
                (u6t, [1, 2, 3]),
                (w2t, [45_000, 50_000]),
            ):
                for expiry in expiries[:2]:
                    for strike in strikes:
                        for is_call in (True, False):
                            args = (underlying.address, usdc.address, strike * USDC, expiry)
                            world.settlement.register_option(*args, is_call)
                            listed.append((1, *args, is_call))
        assert len(world.settlement.collateral_tokens()) == 3
        yield Lab(
            world=world,
            usdc=usdc,
            underlyings=[weth, u6t, w2t],
            collateral=[weth, cxt, u6t],
            tokens=[usdc, weth, u6t, w2t, cxt],
            expiries=expiries,
            harness=harness,
            mm=mm,
            listed=listed,
        )
    boa.env.evm.patch.timestamp = timestamp


# ---------------------------------------------------------------------------- helpers


def mint(lab: Lab, token: Token, to: str, amount: int) -> None:
    if amount > 0:
        with boa.env.prank(lab.world.admin):
            token.contract.mint(to, amount)


def set_haircut(lab: Lab, token: Token, bps: int) -> None:
    getattr(lab.world.settlement.inject, "__set_haircut")(token.address, bps)


def oracle_price(lab: Lab, token: Token) -> int | None:
    try:
        return int(lab.world.oracle.price(token.address))
    except boa.BoaError:
        return None


def chain_status(wallet: Any) -> MarginStatus | str:
    try:
        required, available, ok = wallet.margin_status()
    except boa.BoaError:
        return "revert"
    return MarginStatus(required, available, ok)


def mirror_status(state: WalletState) -> MarginStatus | str:
    try:
        return margin_status(state)
    except MarginReverts:
        return "revert"


def boa_state(lab: Lab, wallet: Any) -> WalletState:
    """What `gateway.chain.wallet_state.read_wallet_state` reads (`Settlement.margin_inputs`
    plus each token's decimals, every lab token as an extra token), read through boa."""
    _, quote, raw_positions, balances, tokens, raw_collateral = lab.world.settlement.margin_inputs(
        wallet.address
    )
    positions = [
        SeriesPosition(underlying, expiry, strike, is_call, size)
        for _, underlying, expiry, strike, is_call, size in raw_positions
    ]
    held = {str(t): int(b) for t, b in zip(tokens, balances, strict=True)}
    if int(str(quote), 16) == 0:
        quote = lab.usdc.address
    for t in lab.tokens:  # read_wallet_state's extra_tokens: every token a fill may touch
        held.setdefault(t.address, t.contract.balanceOf(wallet.address))
    collateral = []
    for address, unit, haircut, price in raw_collateral:
        token = next(t for t in lab.tokens if t.address == address)
        assert unit == token.unit
        assert price == (oracle_price(lab, token) or 0)  # 0: the oracle refuses one
        collateral.append(
            CollateralToken(address, price or oracle_price(lab, token), unit, haircut)
        )
    return WalletState(
        option_quote=str(quote),
        balances=held,
        decimals={t.address: t.decimals for t in lab.tokens},
        positions=tuple(positions),
        collateral=tuple(collateral),
    )


def covers(state: WalletState) -> dict[str, int]:
    """Underlying cover per underlying (lower-case address), by the per-series mirror."""
    groups: dict[tuple[str, int], list[OptionPosition]] = {}
    for p in state.positions:
        groups.setdefault(p.series, []).append(OptionPosition(p.strike, p.is_call, p.size))
    out: dict[str, int] = {}
    for (underlying, _), legs in groups.items():
        need = series_requirement(legs, state.unit(underlying)).underlying_cover
        if need:
            out[underlying] = out.get(underlying, 0) + need
    return out


# ---------------------------------------------------------------------------- generator


def random_size(rng: random.Random, unit: int) -> int:
    kind = rng.random()
    if kind < 0.15:
        magnitude = rng.randint(1, 1_000)  # a few base units: rounding
    elif kind < 0.45:
        magnitude = rng.randint(1, unit)
    elif kind < 0.95:
        magnitude = rng.randint(1, 50) * unit + rng.choice([0, rng.randint(0, unit)])
    else:
        magnitude = rng.randint(1, 10**6) * unit
    return magnitude if rng.random() < 0.4 else -magnitude


def random_strike(rng: random.Random, underlying: int) -> int:
    if rng.random() < 0.15:
        return rng.randint(1, 10**12)
    center = [3_000, 2, 50_000][underlying]
    return max(1, center * USDC * rng.randint(40, 160) // 100 + rng.choice([0, 0, 1, 7_777]))


def random_positions(rng: random.Random, lab: Lab) -> list[SeriesPosition]:
    n = rng.choice([0, 1, 1, 2, 3, 4, 6, 8, 12, MAX_OPEN, MAX_OPEN, rng.randint(1, MAX_OPEN)])
    n_underlyings = rng.choice([1, 1, 2, 3])
    pool = rng.sample(range(3), n_underlyings)
    expiries = rng.sample(lab.expiries, rng.randint(1, 3))
    if rng.random() < 0.05:
        expiries.append(rng.randint(1, 2**64 - 1))
    strikes_per: dict[int, list[int]] = {
        u: [random_strike(rng, u) for _ in range(rng.randint(1, 6))] for u in pool
    }
    out: dict[tuple[str, int, int, bool], SeriesPosition] = {}
    while len(out) < n:
        u = rng.choice(pool)
        token = lab.underlyings[u]
        p = SeriesPosition(
            token.address,
            rng.choice(expiries),
            rng.choice(strikes_per[u]) if rng.random() < 0.8 else random_strike(rng, u),
            rng.random() < 0.5,
            random_size(rng, token.unit),
        )
        out.setdefault(p.key, p)
    if out and rng.random() < 0.01:  # overflow: the contract reverts, so must the mirror
        key = rng.choice(list(out))
        huge = rng.choice([-1, 1]) * 2 ** rng.randint(200, 254)
        out[key] = replace(out[key], size=huge)
    return list(out.values())


def around(rng: random.Random, target: int) -> int:
    """A balance straddling `target`."""
    mode = rng.random()
    if mode < 0.2:
        return max(0, target - 1)
    if mode < 0.4:
        return target
    if mode < 0.5:
        return target + 1
    if mode < 0.7:
        return rng.randint(0, target)
    if mode < 0.8:
        return 0
    return target + rng.randint(0, max(1, target))


def write_portfolio(lab: Lab, quote: str, positions: list[SeriesPosition]) -> None:
    set_open = getattr(lab.harness.inject, "__set_open")
    for i, p in enumerate(positions):
        ins_id = option_instrument_id(p.underlying, quote, p.strike, p.expiry, p.is_call)
        meta = int(p.underlying, 16) | (p.expiry << 160) | (int(p.is_call) << 224)
        set_open(i, ins_id, p.size, meta, p.strike)
    getattr(lab.harness.inject, "__set_config")(quote, len(positions))


def storage_example(lab: Lab, rng: random.Random, outcomes: Counter[str]) -> None:
    world, wallet = lab.world, lab.harness
    quote = lab.usdc if rng.random() < 0.9 else lab.collateral[2]  # U6: a collateral token
    positions = random_positions(rng, lab)
    write_portfolio(lab, quote.address, positions)
    assert [bytes(i) for i in wallet.open_positions()] == [
        option_instrument_id(p.underlying, quote.address, p.strike, p.expiry, p.is_call)
        for p in positions
    ]
    # prices (8-decimal feeds), now and then a stale one; haircuts
    for token in lab.underlyings + lab.collateral:
        assert token.feed is not None
        answer = rng.choice([rng.randint(1, 10**6), rng.randint(10**6, 10**13), 3_000 * 10**8])
        if rng.random() < 0.03:
            token.feed.set_answer_at(answer, boa.env.evm.patch.timestamp - 2 * 3600)
        else:
            token.feed.set_answer(answer)
    for token in lab.collateral:
        haircut = rng.choice([0, 1, 2_000, 5_000, 9_999, BPS, rng.randint(0, BPS)])
        set_haircut(lab, token, haircut)
    prices = {t.address: oracle_price(lab, t) for t in lab.tokens if t.feed is not None}
    collateral = tuple(
        CollateralToken(
            t.address, prices[t.address], t.unit, world.settlement.haircut_bps(t.address)
        )
        for t in lab.collateral
    )
    decimals = {t.address: t.decimals for t in lab.tokens}
    zero_balances = {t.address: 0 for t in lab.tokens}
    zero = WalletState(quote.address, zero_balances, decimals, tuple(positions), collateral)
    try:
        need = covers(zero)
        required = margin_status(zero).required
    except MarginReverts:
        need, required = {}, 0
    balances = {t.address.lower(): 0 for t in lab.tokens}
    for underlying, cover in need.items():
        balances[underlying] = around(rng, cover) if rng.random() < 0.3 else cover
    for t in lab.tokens:
        if t.address.lower() not in need and rng.random() < 0.3:
            balances[t.address.lower()] = rng.randint(0, 100 * t.unit)
    q = quote.address.lower()
    balances[q] = around(rng, required) if quote is lab.usdc or q not in need else balances[q]
    shortfall = required - balances[q]
    if shortfall > 0 and rng.random() < 0.7:
        # aim one collateral token's haircut value at the shortfall, +- a few base units
        c = rng.choice(collateral)
        price = c.price or 0
        keep = BPS - c.haircut_bps
        if c.token != q and price > 0 and keep > 0:
            amount = -(-shortfall * BPS // keep) * c.unit // price
            amount += rng.choice([-2, -1, 0, 0, 1, 2, rng.randint(0, c.unit)])
            balances[c.token] = need.get(c.token, 0) + max(0, amount)
    if required > 0 and q not in need and rng.random() < 0.25:
        # quote topping the collateral up to exactly required (and +- 1)
        try:
            from_collateral = margin_status(
                WalletState(
                    quote.address, {**balances, q: 0}, decimals, tuple(positions), collateral
                )
            ).available
        except MarginReverts:
            from_collateral = required
        if from_collateral < required:
            balances[q] = required - from_collateral + rng.choice([-1, 0, 0, 1])
    for t in lab.tokens:
        mint(lab, t, wallet.address, balances[t.address.lower()])
    state = WalletState(quote.address, balances, decimals, tuple(positions), collateral)
    ours, theirs = mirror_status(state), chain_status(wallet)
    assert ours == theirs, (state, ours, theirs)
    if isinstance(ours, str):
        outcomes["revert"] += 1
    elif not positions:
        outcomes["empty"] += 1
    elif not ours.ok and ours.available == 0 and any(balances[u] < c for u, c in need.items()):
        outcomes["cover short"] += 1
    elif ours.available == balances[q] and ours.ok:
        outcomes["quote alone"] += 1
    else:
        outcomes["collateral " + ("pass" if ours.ok else "fail")] += 1
        outcomes["exact"] += ours.available == ours.required


@pytest.mark.slow
@pytest.mark.parametrize("chunk", range(STORAGE_CHUNKS))
def test_storage_written_portfolios_match_the_contract(lab: Lab, chunk: int) -> None:
    rng = random.Random(7_000 + chunk)
    outcomes: Counter[str] = Counter()
    for _ in range(STORAGE_PER_CHUNK):
        with boa.env.anchor():
            storage_example(lab, rng, outcomes)
    # every branch of the rule is exercised in every chunk
    for branch in ("empty", "cover short", "quote alone", "collateral pass", "collateral fail"):
        assert outcomes[branch] >= 5, outcomes
    assert outcomes["exact"] >= 5 and outcomes["revert"] >= 1, outcomes


# ---------------------------------------------------------------------------- settled


def preimage_fill(
    lab: Lab, ins: tuple[Any, ...], is_buy: bool, amount: int, quote: int
) -> OptionFill:
    _, underlying, quote_token, strike, expiry, is_call = ins
    return OptionFill(underlying, expiry, strike, is_call, is_buy, amount, quote, quote_token)


def settled_portfolio(lab: Lab, rng: random.Random, seed: int, outcomes: Counter[str]) -> None:
    world, mm = lab.world, lab.mm
    big = {t.address: 10**9 * t.unit for t in lab.tokens}
    for t in lab.tokens:
        mint(lab, t, mm.wallet.address, big[t.address])
    trader = world.new_trader(seed)
    mint(lab, lab.usdc, trader.wallet.address, rng.choice([0, 1, 10, 100, 1_000]) * 30 * USDC)
    for t in lab.tokens[1:]:
        if rng.random() < 0.7:
            mint(lab, t, trader.wallet.address, rng.randint(0, 20 * t.unit))
    for batch_no in range(rng.randint(1, 8)):
        n_orders = rng.randint(1, 6)
        items = []
        fills: dict[str, list[OptionFill]] = {trader.wallet.address: [], mm.wallet.address: []}
        for _ in range(n_orders):
            ins = rng.choice(lab.listed)
            unit = next(t for t in lab.underlyings if t.address == ins[1]).unit
            amount = rng.randint(1, 40) * unit // 10 + rng.choice([0, 0, rng.randint(1, unit)])
            premium = rng.randint(1, 400) * USDC if unit != USDC else rng.randint(1, 10**5)
            quote = amount * premium // unit
            trader_buys = rng.random() < 0.45
            o_t = trader.order(ins, trader_buys, amount, premium)
            o_m = mm.order(ins, not trader_buys, amount, premium)
            items += [
                order_item(trader, ins, o_t, amount, quote),
                order_item(mm, ins, o_m, amount, quote),
            ]
            fills[trader.wallet.address].append(preimage_fill(lab, ins, trader_buys, amount, quote))
            fills[mm.wallet.address].append(preimage_fill(lab, ins, not trader_buys, amount, quote))
        predicted: dict[str, WalletState] = {}
        expect_ok, reason = True, ""
        for who in (trader, mm):
            before = boa_state(lab, who.wallet)
            try:
                after = apply_fills(before, fills[who.wallet.address])
            except FillRejected as exc:
                expect_ok, reason = False, str(exc)
                continue
            predicted[who.wallet.address] = after
            status = margin_status(after)
            if not status.ok:
                expect_ok, reason = False, reason or "wallet: margin"
        b = batch(items, batch_id=seed * 100 + batch_no)
        if expect_ok:
            world.settle(b)
            outcomes["settled"] += 1
            for who in (trader, mm):
                actual = boa_state(lab, who.wallet)
                expected = predicted[who.wallet.address]
                assert actual.positions == expected.positions
                assert actual.balances == expected.balances
                assert actual.option_quote == expected.option_quote
                ours = margin_status(actual)
                assert ours == chain_status(who.wallet)
                assert ours == margin_status(expected)
        else:
            outcomes["refused: " + reason.split(" (")[0]] += 1
            if reason == "wallet: margin":
                with boa.reverts("wallet: margin"):
                    world.settle(b)
            else:
                with boa.reverts():
                    world.settle(b)
    state = boa_state(lab, trader.wallet)
    assert margin_status(state) == chain_status(trader.wallet)
    outcomes[f"open {len(state.positions)}"] += 1


def test_settled_portfolios_match_the_contract(lab: Lab) -> None:
    rng = random.Random(4_242)
    outcomes: Counter[str] = Counter()
    traders = list(lab.world.traders)
    for i in range(SETTLED_PORTFOLIOS):
        with boa.env.anchor():
            settled_portfolio(lab, rng, 91_000 + i, outcomes)
        lab.world.traders[:] = traders
    assert outcomes["settled"] >= 30, outcomes
    assert outcomes["refused: wallet: margin"] >= 10, outcomes


# ---------------------------------------------------------------------------- fixed cases


def test_reference_wallets_and_early_returns(lab: Lab) -> None:
    usdc, weth = lab.usdc, lab.underlyings[0]
    k = USDC
    short_straddle = [
        SeriesPosition(weth.address, lab.expiries[0], 3_000 * k, True, -weth.unit),
        SeriesPosition(weth.address, lab.expiries[0], 3_000 * k, False, -weth.unit),
    ]
    collateral = tuple(CollateralToken(t.address, 3_000 * k, t.unit, 2_000) for t in lab.collateral)
    decimals = {t.address: t.decimals for t in lab.tokens}

    def state(usdc_balance: int, weth_balance: int) -> WalletState:
        balances = {t.address: 0 for t in lab.tokens}
        balances[usdc.address] = usdc_balance
        balances[weth.address] = weth_balance
        return WalletState(usdc.address, balances, decimals, tuple(short_straddle), collateral)

    # the call's cover missing: (required, 0, False) whatever the quote balance
    assert margin_status(state(10**12, weth.unit - 1)) == (3_000 * k, 0, False)
    # quote alone suffices: available is the quote balance only (WETH not counted)
    assert margin_status(state(3_000 * k, 5 * weth.unit)) == (3_000 * k, 3_000 * k, True)
    # short of quote: the WETH beyond the cover counts at 80% of 3,000
    assert margin_status(state(0, 2 * weth.unit)) == (3_000 * k, 2_400 * k, False)
    assert margin_status(state(600 * k, 2 * weth.unit)) == (3_000 * k, 3_000 * k, True)
    assert margin_status(WalletState(usdc.address, {}, {})) == (0, 0, True)
    # the contract agrees on each
    for usdc_balance, weth_balance in ((10**12, weth.unit - 1), (600 * k, 2 * weth.unit)):
        with boa.env.anchor():
            lab.world.feed.set_answer(3_000 * 10**8)
            for t in lab.collateral:
                set_haircut(lab, t, 2_000)
                assert t.feed is not None
                t.feed.set_answer(3_000 * 10**8)
            write_portfolio(lab, usdc.address, short_straddle)
            mint(lab, usdc, lab.harness.address, usdc_balance)
            mint(lab, weth, lab.harness.address, weth_balance)
            assert chain_status(lab.harness) == margin_status(state(usdc_balance, weth_balance))


def test_overflow_reverts_like_the_contract(lab: Lab) -> None:
    weth = lab.underlyings[0]
    cases = [
        [SeriesPosition(weth.address, lab.expiries[0], 3_000 * USDC, False, -(2**254))],
        [SeriesPosition(weth.address, lab.expiries[0], 2**250, True, -(2**10))],
        [
            SeriesPosition(weth.address, lab.expiries[0], 1, True, -(2**254)),
            SeriesPosition(weth.address, lab.expiries[0], 2, True, -(2**254)),
        ],
        [SeriesPosition(weth.address, lab.expiries[0], 2**200, False, -(2**54))],
    ]
    decimals = {t.address: t.decimals for t in lab.tokens}
    for positions in cases:
        with boa.env.anchor():
            write_portfolio(lab, lab.usdc.address, positions)
            state = WalletState(
                lab.usdc.address, {t.address: 0 for t in lab.tokens}, decimals, tuple(positions)
            )
            assert mirror_status(state) == chain_status(lab.harness)
    with pytest.raises(MarginReverts):
        series_requirement_checked([OptionPosition(1, True, -(2**254))] * 2, 10**18)


def test_fills_follow_the_open_list_rules(lab: Lab) -> None:
    usdc, weth = lab.usdc.address, lab.underlyings[0].address
    e = lab.expiries[0]
    state = WalletState(usdc, {usdc: 1_000, weth: 0}, {weth: 18, usdc: 6})
    a = OptionFill(weth, e, 1, True, True, 5, 100)
    b = OptionFill(weth, e, 2, False, False, 7, 30)
    c = OptionFill(weth, e, 3, True, True, 1, 0)
    s = apply_fills(state, [a, b, c])
    assert [p.strike for p in s.positions] == [1, 2, 3]
    assert s.balance(usdc) == 930
    # closing the first moves the last into its slot (MarginWallet._remove_open)
    s2 = s.after_fill(weth, e, 1, True, False, 5, 10)
    assert [p.strike for p in s2.positions] == [3, 2]
    assert s2.balance(usdc) == 940
    with pytest.raises(FillRejected, match="transfer failed"):
        state.after_fill(weth, e, 1, True, True, 1, 1_001)
    with pytest.raises(FillRejected, match="one option quote"):
        apply_fills(s, [OptionFill(weth, e, 9, True, True, 1, 0, quote=weth)])
    many = apply_fills(state, [OptionFill(weth, e, k, True, True, 1, 0) for k in range(1, 17)])
    with pytest.raises(FillRejected, match="too many positions"):
        many.after_fill(weth, e, 99, True, True, 1, 0)
    # netting within a batch: paying more than held is fine if the batch also brings it in
    assert apply_fills(state, [b, a, a]).balance(usdc) == 830
