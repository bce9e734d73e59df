"""The state machines that fuzz wallets + settlement (hypothesis RuleBasedStateMachine);
test_fuzz.py runs both briefly, test_fuzz_long.py and test_fuzz_keys_long.py at length (files
of their own, so that the two long runs can take CI's two workers side by side).

A Python model predicts, from the chain's balances and an independent mirror of the margin
rule, whether each operation must succeed; the contracts must agree exactly. Invariants:
no token created or lost, no order filled beyond its signed size, every wallet within margin
after every step, the central counterparty flat on every option, and operator-submitted
unsigned / altered / replayed / over-filled / over-limit legs always revert. Trading keys
are authorised, used within and beyond their scope, and revoked; the admin queues a hostile
feed for the underlying (applying it early always reverts, and once applied it never
reaches the series, which settles at its bound feed's round at expiry: no admin action
changes a payout or blocks the withdrawal of free collateral).
"""

from __future__ import annotations

from collections import Counter

import boa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from gateway.risk.margin import OptionPosition, series_requirement
from tests.contracts.conftest import (
    ADMIN_DELAY,
    DAY,
    NO_KEY_LIMIT,
    USDC,
    WETH,
    Key,
    Trader,
    World,
    batch,
    build_world,
    instrument_id,
    load,
    order_item,
    strategy_item,
)

_WORLD: dict[str, object] = {}
# (has strategy, has option order, settles) -> count, to check both outcomes are exercised
OUTCOMES: Counter[object] = Counter()
N_TRADERS = 4
STRIKES = [(2800, False), (3000, False), (3000, True), (3200, True)]


def shared_world() -> tuple[World, list[Trader], Trader, list[tuple]]:
    if not _WORLD:
        world = build_world()
        traders = [
            world.new_trader(500 + i, usdc=4_000 * USDC, weth=WETH) for i in range(N_TRADERS)
        ]
        mm = world.new_trader(600, usdc=500_000 * USDC, weth=50 * WETH)
        options = [world.list_option(k, c) for k, c in STRIKES]
        _WORLD.update(world=world, traders=traders, mm=mm, options=options)
    return _WORLD["world"], _WORLD["traders"], _WORLD["mm"], _WORLD["options"]  # type: ignore[return-value]


def mirror_margin(positions: dict[tuple, int], usdc: int, weth: int) -> bool:
    """Whether a wallet with these balances meets the margin rule, by the Python mirror
    (gateway.risk.margin), which the contract math must equal (one series)."""
    legs = [OptionPosition(ins[3], ins[5], size) for ins, size in positions.items() if size != 0]
    requirement = series_requirement(legs, WETH)
    return weth >= requirement.underlying_cover and usdc >= requirement.quote_required


class Machine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world, self.traders, self.mm, self.options = shared_world()
        self.everyone = [*self.traders, self.mm]
        self._anchor = boa.env.anchor()
        self._anchor.__enter__()
        self._timestamp = boa.env.evm.patch.timestamp
        self._world_traders = list(self.world.traders)
        self.nonces = {t.address: t.nonce for t in self.everyone}
        self.expected_usdc = self.world.token_total(self.world.usdc)
        self.expected_weth = self.world.token_total(self.world.weth)
        self.positions: dict[str, dict[tuple, int]] = {t.address: {} for t in self.everyone}
        self.open_orders: list[dict] = []  # partially filled spot orders
        self.done_items: list[tuple] = []  # settled (order item, trader) for replay attempts
        self.expired = False
        self.batch_id = 1000
        # trading keys: trader address -> (key, spot allowed, max notional) while authorised
        self.keys: dict[str, tuple[Key, bool, int]] = {}
        self.revoked: dict[str, Key] = {}
        self.feed_change: str | None = None  # "queued" / "applied"

    def teardown(self) -> None:
        self._anchor.__exit__(None, None, None)
        boa.env.evm.patch.timestamp = self._timestamp
        self.world.traders[:] = self._world_traders
        for t in self.everyone:
            t.nonce = self.nonces[t.address]

    # ------------------------------------------------------------------ helpers
    def bal(self, t: Trader) -> tuple[int, int]:
        w = t.wallet.address
        return self.world.usdc.balanceOf(w), self.world.weth.balanceOf(w)

    def next_batch(self) -> int:
        self.batch_id += 1
        return self.batch_id

    def predict(
        self, deltas: dict[str, list[int]], pos_deltas: dict[str, dict[tuple, int]]
    ) -> bool:
        """Whether the batch must succeed: balances cover outflows and margin holds after."""
        for t in self.everyone:
            d = deltas.get(t.address)
            pd = pos_deltas.get(t.address, {})
            if d is None and not pd:
                continue
            d = d or [0, 0]
            usdc, weth = self.bal(t)
            if (d[0] < 0 and usdc < -d[0]) or (d[1] < 0 and weth < -d[1]):
                return False
            pos = dict(self.positions[t.address])
            for ins, size in pd.items():
                pos[ins] = pos.get(ins, 0) + size
            if not mirror_margin(pos, usdc + d[0], weth + d[1]):
                return False
        return True

    def run(self, b: tuple, ok: bool) -> bool:
        OUTCOMES[(len(b[3]) > 0, any(b[1][o[1]][0] == 1 for o in b[2]), ok)] += 1
        before = {t.address: self.bal(t) for t in self.everyone}
        if ok:
            self.world.settle(b)
            return True
        with boa.reverts():
            self.world.settle(b)
        assert {t.address: self.bal(t) for t in self.everyone} == before
        return False

    def apply_positions(self, pos_deltas: dict[str, dict[tuple, int]]) -> None:
        for addr, pd in pos_deltas.items():
            for ins, size in pd.items():
                self.positions[addr][ins] = self.positions[addr].get(ins, 0) + size

    # ------------------------------------------------------------------ rules
    @rule(i=st.integers(0, N_TRADERS), usdc=st.integers(0, 5_000), weth=st.integers(0, 3))
    def deposit(self, i: int, usdc: int, weth: int) -> None:
        t = self.everyone[i]
        self.world.fund(t, usdc=usdc * USDC, weth=weth * WETH)
        self.expected_usdc += usdc * USDC
        self.expected_weth += weth * WETH

    @rule(
        b=st.integers(0, N_TRADERS),
        s=st.integers(0, N_TRADERS),
        amount=st.one_of(
            st.integers(1, 4 * WETH), st.integers(1, 400).map(lambda c: c * WETH // 100)
        ),
        price=st.integers(2_500, 3_500),
        frac=st.sampled_from([1, 2, 3, 4]),
    )
    def spot_trade(self, b: int, s: int, amount: int, price: int, frac: int) -> None:
        if b == s:
            return
        buyer, seller = self.everyone[b], self.everyone[s]
        price *= USDC
        fill = amount if frac == 1 else amount * (frac - 1) // frac
        if fill == 0:
            return
        quote = fill * price // WETH
        ob = buyer.order(self.world.spot, True, amount, price)
        os_ = seller.order(self.world.spot, False, fill, price)
        items = [
            order_item(buyer, self.world.spot, ob, fill, quote),
            order_item(seller, self.world.spot, os_, fill, quote),
        ]
        ok = self.predict({buyer.address: [-quote, fill], seller.address: [quote, -fill]}, {})
        if self.run(batch(items, batch_id=self.next_batch()), ok):
            self.done_items += [(items[1], seller)]
            if fill < amount:
                self.open_orders.append(
                    {
                        "trader": buyer,
                        "order": ob,
                        "digest": bytes(buyer.wallet.hash_order(ob)),
                        "filled": fill,
                        "cancelled": False,
                    }
                )
            else:
                self.done_items.append((items[0], buyer))

    @precondition(lambda self: self.open_orders)
    @rule(data=st.data(), s=st.integers(0, N_TRADERS), extra=st.integers(0, 2 * WETH))
    def fill_more(self, data: st.DataObject, s: int, extra: int) -> None:
        entry = data.draw(st.sampled_from(self.open_orders))
        buyer: Trader = entry["trader"]
        seller = self.everyone[s]
        if seller is buyer:
            return
        ob = entry["order"]
        remaining = ob[2] - entry["filled"]
        fill = data.draw(st.integers(1, remaining + extra))
        price = ob[3]
        quote = fill * price // WETH
        os_ = seller.order(self.world.spot, False, fill, price)
        items = [
            order_item(buyer, self.world.spot, ob, fill, quote),
            order_item(seller, self.world.spot, os_, fill, quote),
        ]
        ok = (
            not entry["cancelled"]
            and fill <= remaining
            and boa.env.evm.patch.timestamp <= ob[5]
            and self.predict({buyer.address: [-quote, fill], seller.address: [quote, -fill]}, {})
        )
        if self.run(batch(items, batch_id=self.next_batch()), ok):
            entry["filled"] += fill

    @precondition(lambda self: self.open_orders)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        entry = data.draw(st.sampled_from(self.open_orders))
        t: Trader = entry["trader"]
        with boa.env.prank(t.address):
            t.wallet.cancel(entry["digest"])
        entry["cancelled"] = True

    @precondition(lambda self: not self.expired)
    @rule(
        lo=st.integers(0, N_TRADERS),
        s=st.integers(0, N_TRADERS),
        k=st.integers(0, len(STRIKES) - 1),
        amount=st.one_of(
            st.integers(1, 3 * WETH), st.integers(1, 300).map(lambda c: c * WETH // 100)
        ),
        premium=st.integers(0, 400),
    )
    def option_trade(self, lo: int, s: int, k: int, amount: int, premium: int) -> None:
        if lo == s:
            return
        long, short = self.everyone[lo], self.everyone[s]
        ins = self.options[k]
        premium *= USDC
        quote = amount * premium // WETH
        ob = long.order(ins, True, amount, premium)
        os_ = short.order(ins, False, amount, premium)
        items = [
            order_item(long, ins, ob, amount, quote),
            order_item(short, ins, os_, amount, quote),
        ]
        pd = {long.address: {ins: amount}, short.address: {ins: -amount}}
        ok = self.predict({long.address: [-quote, 0], short.address: [quote, 0]}, pd)
        if self.run(batch(items, batch_id=self.next_batch()), ok):
            self.apply_positions(pd)

    @precondition(lambda self: not self.expired)
    @rule(
        i=st.integers(0, N_TRADERS - 1),
        kind=st.sampled_from(["straddle", "condor"]),
        short=st.booleans(),
        units=st.one_of(
            st.integers(1, 2 * WETH), st.integers(1, 200).map(lambda c: c * WETH // 100)
        ),
        prices=st.lists(st.integers(1, 200), min_size=4, max_size=4),
    )
    def strategy_trade(self, i: int, kind: str, short: bool, units: int, prices: list[int]) -> None:
        t, mm = self.traders[i], self.mm
        if kind == "straddle":
            legs = [(self.options[2], not short, 1), (self.options[1], not short, 1)]
        else:
            p28, p30, c30, c32 = self.options
            # iron condor on 2800/3000 puts and 3000/3200 calls (short: sell the inner strikes)
            legs = [(p28, short, 1), (p30, not short, 1), (c30, not short, 1), (c32, short, 1)]
        quotes = [units * prices[j] * USDC // WETH for j in range(len(legs))]
        net = sum(q if is_buy else -q for q, (_, is_buy, _) in zip(quotes, legs, strict=False))
        # the limit: exactly the net per unit, rounded in the signer's favour where needed
        limit = -(-net * WETH // units)
        strat = t.strategy(legs, units, limit)
        mm_items = []
        deltas = {t.address: [-net, 0], mm.address: [net, 0]}
        pd: dict[str, dict[tuple, int]] = {t.address: {}, mm.address: {}}
        for (ins, is_buy, ratio), q in zip(legs, quotes, strict=False):
            a = units * ratio
            # the mm's own limit, exactly met by q (floor when it sells, ceil when it buys)
            mm_limit = q * WETH // a if is_buy else -(-q * WETH // a)
            o = mm.order(ins, not is_buy, a, mm_limit)
            mm_items.append(order_item(mm, ins, o, a, q))
            pd[t.address][ins] = pd[t.address].get(ins, 0) + (a if is_buy else -a)
            pd[mm.address][ins] = pd[mm.address].get(ins, 0) + (-a if is_buy else a)
        ok = self.predict(deltas, pd)
        b = batch(
            mm_items,
            [strategy_item(t, [ins for ins, _, _ in legs], strat, units, quotes)],
            batch_id=self.next_batch(),
        )
        if self.run(b, ok):
            self.apply_positions(pd)

    @rule(
        i=st.integers(0, N_TRADERS),
        token=st.sampled_from(["usdc", "weth"]),
        amount=st.integers(1, 30_000),
    )
    def withdraw(self, i: int, token: str, amount: int) -> None:
        t = self.everyone[i]
        usdc, weth = self.bal(t)
        if token == "usdc":
            amount *= USDC // 10
            ok = amount <= usdc and mirror_margin(self.positions[t.address], usdc - amount, weth)
            contract = self.world.usdc
        else:
            amount *= WETH // 10_000
            ok = amount <= weth and mirror_margin(self.positions[t.address], usdc, weth - amount)
            contract = self.world.weth
        with boa.env.prank(t.address):
            if ok:
                t.wallet.withdraw(contract.address, amount)
                if token == "usdc":
                    self.expected_usdc -= amount
                else:
                    self.expected_weth -= amount
            else:
                with boa.reverts():
                    t.wallet.withdraw(contract.address, amount)

    @rule(
        attack=st.sampled_from(
            ["unsigned", "wrong_key", "altered", "replay", "overfill", "limit", "paused"]
        ),
        b=st.integers(0, N_TRADERS - 1),
    )
    def hostile_operator(self, attack: str, b: int) -> None:
        buyer = self.traders[b]
        seller = self.mm
        price = 3_000 * USDC
        ob = buyer.order(self.world.spot, True, WETH // 10, price)
        os_ = seller.order(self.world.spot, False, WETH // 10, price)
        quote = WETH // 10 * price // WETH
        items = [
            order_item(buyer, self.world.spot, ob, WETH // 10, quote),
            order_item(seller, self.world.spot, os_, WETH // 10, quote),
        ]
        if attack == "unsigned":
            items[0] = order_item(
                buyer, self.world.spot, ob, WETH // 10, quote, signature=b"\x00" * 65
            )
        elif attack == "wrong_key":
            items[0] = order_item(
                buyer,
                self.world.spot,
                ob,
                WETH // 10,
                quote,
                signature=Key(31337).sign(bytes(buyer.wallet.hash_order(ob))),
            )
        elif attack == "altered":
            altered = (ob[0], ob[1], ob[2] * 10, ob[3], ob[4], ob[5])
            items[0] = order_item(
                buyer, self.world.spot, altered, WETH, 10 * quote, signature=buyer.sign_order(ob)
            )
            items[1] = order_item(
                seller,
                self.world.spot,
                seller.order(self.world.spot, False, WETH, price),
                WETH,
                10 * quote,
            )
        elif attack == "replay":
            if not self.done_items:
                return
            item, _ = self.done_items[-1]
            items = [item, item]
        elif attack == "overfill":
            items[0] = order_item(buyer, self.world.spot, ob, WETH // 5, 2 * quote)
            items[1] = order_item(
                seller,
                self.world.spot,
                seller.order(self.world.spot, False, WETH // 5, price),
                WETH // 5,
                2 * quote,
            )
        elif attack == "limit":
            items[0] = order_item(buyer, self.world.spot, ob, WETH // 10, quote + 1)
            items[1] = order_item(seller, self.world.spot, os_, WETH // 10, quote + 1)
        elif attack == "paused":
            with boa.env.prank(buyer.address):
                buyer.wallet.pause()
        self.run(batch(items, batch_id=self.next_batch()), ok=False)
        if attack == "paused":
            with boa.env.prank(buyer.address):
                buyer.wallet.unpause()

    @precondition(lambda self: not self.expired and self.batch_id >= 1005)
    @rule(
        price=st.integers(2_000, 4_000),
        cents=st.integers(0, 99),
        early=st.integers(2_000, 4_000),
        later=st.integers(2_000, 4_000),
    )
    def expire(self, price: int, cents: int, early: int, later: int) -> None:
        world = self.world
        sid = world.settlement.series_id(world.weth.address, world.usdc.address, world.expiry)
        assert world.settlement.series(sid).feed == world.feed.address  # bound at listing
        boa.env.time_travel(seconds=world.expiry - boa.env.evm.patch.timestamp - 5)
        world.feed.set_answer(early * 10**8)
        round_before = world.feed.latest_round()
        boa.env.time_travel(seconds=10)
        p = price * USDC + cents * USDC // 100
        world.feed.set_answer(p * 100)
        round_at_expiry = world.feed.latest_round()
        world.feed.set_answer(later * 10**8)
        # nobody picks a later answer, nor an earlier one while the round at expiry exists
        with boa.reverts("settlement: not the round at expiry"):
            world.settlement.settle_expiry(sid, round_at_expiry + 1)
        with boa.reverts("settlement: grace period not over"):
            world.settlement.settle_expiry(sid, round_before)
        before = {t.address: self.bal(t) for t in self.everyone}
        world.settlement.settle_expiry(sid, round_at_expiry)
        self.expired = True
        OUTCOMES["expired"] += 1
        for t in self.everyone:
            x = 0
            for ins, size in self.positions[t.address].items():
                k, is_call = ins[3], ins[5]
                x += size * (max(p - k, 0) if is_call else max(k - p, 0))
            du = self.bal(t)[0] - before[t.address][0]
            dw = self.bal(t)[1] - before[t.address][1]
            value = du * WETH + dw * p  # in quote * 1e18
            assert x - WETH - p <= value <= x + WETH + p, (x, du, dw, self.feed_change)
            if x < 0:
                assert value <= x  # debtors pay at least what they owe
            else:
                assert value <= x  # creditors never receive more than they are owed
            self.positions[t.address] = {}
            assert t.wallet.open_positions() == []

    # ------------------------------------------------------------------ invariants
    @invariant()
    def tokens_conserved_margin_and_positions(self) -> None:
        # each balance read once for both checks: these reads are most of a step's time
        world = self.world
        held = {t.wallet.address: self.bal(t) for t in world.traders}
        for other in (world.settlement.address, world.pair.address):
            held[other] = (world.usdc.balanceOf(other), world.weth.balanceOf(other))
        assert sum(usdc for usdc, _ in held.values()) == self.expected_usdc
        assert sum(weth for _, weth in held.values()) == self.expected_weth
        totals: dict[bytes, int] = {}
        for t in self.everyone:
            _required, _available, ok = t.wallet.margin_status()
            assert ok
            usdc, weth = held[t.wallet.address]
            assert mirror_margin(self.positions[t.address], usdc, weth)
            for ins, size in self.positions[t.address].items():
                assert t.wallet.position(instrument_id(ins)) == size
                totals[instrument_id(ins)] = totals.get(instrument_id(ins), 0) + size
        assert all(v == 0 for v in totals.values())  # the CCP is flat

    @invariant()
    def fills_within_signed_size(self) -> None:
        for entry in self.open_orders:
            t: Trader = entry["trader"]
            assert t.wallet.filled(entry["digest"]) == entry["filled"] <= entry["order"][2]
            assert t.wallet.is_cancelled(entry["digest"]) == entry["cancelled"]


class KeysAndAdminMachine(Machine):
    """The same world and rules, plus trading keys (authorised, used within and beyond
    their scope, revoked) and the admin swapping the underlying's feed."""

    @initialize()
    def a_key_for_the_market_maker(self) -> None:
        # one key with room to trade from the start, so in-scope sales are common
        self.authorise_key(N_TRADERS, True, NO_KEY_LIMIT)

    @rule(
        i=st.integers(0, N_TRADERS),
        spot=st.booleans(),
        limit=st.one_of(st.just(NO_KEY_LIMIT), st.integers(1, 20_000).map(lambda u: u * USDC)),
    )
    def authorise_key(self, i: int, spot: bool, limit: int) -> None:
        t = self.everyone[i]
        key = self.keys.get(t.address, (Key(7_000 + i), False, 0))[0]
        allowed = [instrument_id(self.world.spot)] if spot else [b"\x01" * 32]
        with boa.env.prank(t.address):
            t.wallet.authorise_key(key.address, 2**63, False, limit, allowed)
            if not spot:  # re-scoping: drop the spot pair if an earlier scope had it
                t.wallet.set_key_instrument(key.address, instrument_id(self.world.spot), False)
        self.keys[t.address] = (key, spot, limit)
        self.revoked.pop(t.address, None)

    @precondition(lambda self: self.keys)
    @rule(data=st.data())
    def revoke_key(self, data: st.DataObject) -> None:
        addr = data.draw(st.sampled_from(sorted(self.keys)))
        t = next(t for t in self.everyone if t.address == addr)
        key = self.keys.pop(addr)[0]
        with boa.env.prank(t.address):
            t.wallet.revoke_key(key.address)
        self.revoked[addr] = key
        # the revoked key can do nothing for the wallet any more
        with boa.env.prank(key.address), boa.reverts():
            t.wallet.cancel(b"\x05" * 32)

    @precondition(lambda self: self.keys or self.revoked)
    @rule(
        data=st.data(),
        b=st.integers(0, N_TRADERS),
        amount=st.integers(1, 100).map(lambda c: c * WETH // 100),
        price=st.integers(2_500, 3_500),
    )
    def key_signed_sale(self, data: st.DataObject, b: int, amount: int, price: int) -> None:
        addr = data.draw(st.sampled_from(sorted({*self.keys, *self.revoked})))
        seller = next(t for t in self.everyone if t.address == addr)
        buyer = self.everyone[b]
        if buyer is seller:
            return
        key = self.keys[addr][0] if addr in self.keys else self.revoked[addr]
        price *= USDC
        quote = amount * price // WETH
        os_ = seller.order(self.world.spot, False, amount, price)
        ob = buyer.order(self.world.spot, True, amount, price)
        items = [
            order_item(
                seller,
                self.world.spot,
                os_,
                amount,
                quote,
                signature=key.sign(bytes(seller.wallet.hash_order(os_))),
            ),
            order_item(buyer, self.world.spot, ob, amount, quote),
        ]
        in_scope = addr in self.keys and self.keys[addr][1] and quote <= self.keys[addr][2]
        ok = in_scope and self.predict(
            {buyer.address: [-quote, amount], seller.address: [quote, -amount]}, {}
        )
        OUTCOMES[("key", ok)] += 1
        if self.run(batch(items, batch_id=self.next_batch()), ok):
            self.done_items.append((items[0], seller))
        if addr in self.keys:
            with boa.env.prank(key.address), boa.reverts("wallet: not owner"):
                seller.wallet.withdraw(self.world.weth.address, 1)

    @precondition(lambda self: self.feed_change is None and not self.expired)
    @rule(hostile_price=st.integers(1, 10_000))
    def admin_swaps_the_feed(self, hostile_price: int) -> None:
        world = self.world
        hostile = load("test/TestAggregator.vy", 8, hostile_price * 10**8)
        args = (world.weth.address, hostile.address, 3_600, 0)
        with boa.env.prank(world.admin):
            world.oracle.queue_feed(*args)
            with boa.reverts("timelock: delay not over"):
                world.oracle.set_feed(*args)
        self.feed_change = "queued"
        # apply it only where the wait does not run into the expiry (it would end the
        # options' trading life, which the model does not follow)
        if boa.env.evm.patch.timestamp + ADMIN_DELAY + DAY < world.expiry:
            boa.env.time_travel(seconds=ADMIN_DELAY)
            with boa.env.prank(world.admin):
                world.oracle.set_feed(*args)
            self.feed_change = "applied"
            OUTCOMES["feed applied"] += 1
            assert world.oracle.feeds(world.weth.address).aggregator == hostile.address


FAST = settings(
    max_examples=25,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
SLOW = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def fresh_world() -> None:
    # built outside the hypothesis examples: boa's pytest plugin rolls every example back
    _WORLD.clear()
    shared_world()
