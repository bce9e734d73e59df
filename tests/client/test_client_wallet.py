"""`isthmus_client.wallet.WalletOps` against real chains: the session's devnet gateway (its
`/v1/chain`, its anvil) for the owner's everyday operations, each test with a fresh key the
devnet faucet funds; and a separate anvil (the tests/chain fixtures) for what needs option
positions or time travel past an expiry (margin refusals, the expiry escape hatch), which the
shared devnet must not see."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from isthmus_client.credentials import Signer
from isthmus_client.errors import ChainError
from isthmus_client.models import ChainInfo
from isthmus_client.signing import (
    KIND_SPOT,
    OrderMessage,
    Token,
    digest,
    instrument_id,
    typed_data,
)
from isthmus_client.wallet import KeyView, TxResult, WalletOps
from web3 import Web3
from web3.exceptions import ContractLogicError

from gateway.chain import tokens as chain_tokens
from gateway.chain.anvil import Anvil
from gateway.chain.deploy import aggregator_contract, settlement_contract
from gateway.chain.expiry import round_at_expiry
from gateway.chain.transactions import event_logs
from gateway.devnet.faucet import fund
from gateway.settlement.eip712 import series_id
from tests.chain.conftest import anvil_node, deployer, fresh_chain, w3  # noqa: F401
from tests.chain.option_world import USDC, WETH, World, option, trade, world  # noqa: F401
from tests.client.devnet_gateway import DevnetGateway

pytestmark = pytest.mark.chain

FEED = 10**8  # the test aggregator's 8 decimals
MADE_UP_ID = bytes.fromhex("ab" * 32)


# --------------------------------------------------------------------------- the devnet


@pytest.fixture(scope="module")
def chain(devnet: DevnetGateway) -> ChainInfo:
    info = ChainInfo.from_json(devnet.chain())
    assert info.rpc_url is not None
    return info


def funded_signer(devnet: DevnetGateway, chain: ChainInfo) -> Signer:
    """A fresh key with gas money, WETH and USDC from the devnet faucet."""
    assert chain.rpc_url is not None
    account = Account.create()
    fund(chain.rpc_url, devnet.state / "deployment.json", account.address)
    return Signer(account)


def ops_for(signer: Signer, chain: ChainInfo, messages: list[str] | None = None) -> WalletOps:
    assert chain.rpc_url is not None
    return WalletOps(
        chain.rpc_url,
        signer,
        chain,
        progress=None if messages is None else messages.append,
    )


def words(amount: Decimal) -> str:
    """An amount as the explanations write it (no exponent, no trailing zeros)."""
    return format(amount.normalize(), "f")


def token_balance(ops: WalletOps, symbol: str, holder: str) -> int:
    return chain_tokens.balance_of(ops.w3, ops.chain.token(symbol).address, holder)


def chain_now(ops: WalletOps) -> int:
    return int(ops.w3.eth.get_block("latest")["timestamp"])


def spot_id(chain: ChainInfo) -> bytes:
    return instrument_id(KIND_SPOT, chain.token("WETH").address, chain.token("USDC").address)


def spot_order(ops: WalletOps, nonce: int) -> OrderMessage:
    return OrderMessage(
        spot_id(ops.chain),
        True,
        10**18,
        3_000 * 10**6,
        nonce,
        chain_now(ops) + 3_600,
    )


@pytest.fixture
def owner(devnet: DevnetGateway, chain: ChainInfo) -> WalletOps:
    """A fresh owner with a wallet holding 1,000 USDC and 2.5 WETH."""
    ops = ops_for(funded_signer(devnet, chain), chain)
    ops.create()
    ops.deposit("USDC", Decimal(1_000))
    ops.deposit("WETH", Decimal("2.5"))
    return ops


def test_create_makes_one_wallet_per_owner_and_binds_the_signer(
    devnet: DevnetGateway, chain: ChainInfo
) -> None:
    signer = funded_signer(devnet, chain)
    messages: list[str] = []
    ops = ops_for(signer, chain, messages)
    with pytest.raises(ChainError, match="has no wallet on this chain yet"):
        _ = ops.wallet

    wallet = ops.create()
    assert Web3.is_checksum_address(wallet)
    assert ops.wallet == wallet and ops.signer.wallet == wallet
    assert ops.signer.address == signer.address
    sent = [m for m in messages if " sent 0x" in m]
    assert len(sent) == 1 and sent[0].endswith("waiting for receipt")
    assert any("confirmed in block" in m for m in messages)

    # again: the same wallet, nothing sent
    nonce = ops.w3.eth.get_transaction_count(signer.account.address)
    assert ops.create() == wallet
    assert ops.w3.eth.get_transaction_count(signer.account.address) == nonce
    assert any("has a wallet already" in m for m in messages)
    # a key bound to someone else's wallet does not create one of its own by mistake
    other = funded_signer(devnet, chain).for_wallet(wallet)
    with pytest.raises(ChainError, match="which it does not own"):
        ops_for(other, chain).create()
    # a new session of the same key finds it without creating
    assert ops_for(signer, chain).wallet == wallet
    assert ops_for(signer, chain).create() == wallet
    view = ops.show()
    assert (view.owner, view.wallet, view.settlement) == (
        signer.address,
        wallet,
        Web3.to_checksum_address(chain.settlement),
    )


def test_deposit_show_and_withdraw_move_exactly_the_amounts(
    devnet: DevnetGateway, chain: ChainInfo
) -> None:
    ops = ops_for(funded_signer(devnet, chain), chain)
    wallet = ops.create()
    owner = ops.signer.address
    start = ops.show().balances  # a new wallet may hold a seed unit of each token
    held_usdc = token_balance(ops, "USDC", owner)

    result = ops.deposit("USDC", Decimal("1234.567891"))
    assert isinstance(result, TxResult)
    receipt = ops.w3.eth.get_transaction_receipt(HexStr(result.tx_hash))
    assert (receipt["status"], receipt["blockNumber"], receipt["gasUsed"]) == (
        1,
        result.block_number,
        result.gas_used,
    )
    ops.deposit("WETH", Decimal("1.5"))

    view = ops.show()
    assert view.balances["USDC"] - start["USDC"] == Decimal("1234.567891")
    assert view.balances["WETH"] - start["WETH"] == Decimal("1.5")
    assert token_balance(ops, "USDC", owner) == held_usdc - 1_234_567_891
    assert view.balances["USDC"] == ops.balance("USDC")
    assert (view.paused, view.restrict_instruments, view.max_notional) == (False, False, None)
    assert (view.min_nonce, view.positions) == (0, ())
    status = view.margin_status
    assert (status.required, status.available, status.ok) == (Decimal(0), Decimal(0), True)
    assert status.quote == "USDC"
    # with no option open everything is free
    assert ops.withdrawable("USDC") == view.balances["USDC"]
    assert ops.withdrawable("WETH") == view.balances["WETH"]

    ops.withdraw("USDC", Decimal("234.5"))
    ops.withdraw("WETH", Decimal("0.25"))
    after = ops.show().balances
    assert after["USDC"] == view.balances["USDC"] - Decimal("234.5")
    assert after["WETH"] == view.balances["WETH"] - Decimal("0.25")
    assert token_balance(ops, "USDC", owner) == held_usdc - 1_234_567_891 + 234_500_000
    assert token_balance(ops, "USDC", wallet) * 10**-6 == pytest.approx(float(after["USDC"]))


def test_an_amount_finer_than_the_token_is_refused_before_anything_is_sent(
    owner: WalletOps,
) -> None:
    nonce = owner.w3.eth.get_transaction_count(owner.signer.account.address)
    with pytest.raises(ValueError, match="finer than the token's 6 decimals"):
        owner.deposit("USDC", Decimal("0.0000001"))
    with pytest.raises(ValueError, match="finer than the token's 18 decimals"):
        owner.withdraw("WETH", Decimal("1e-19"))
    with pytest.raises(TypeError, match="not float"):
        owner.deposit("USDC", 1.5)  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="no token 'DOGE'"):
        owner.deposit("DOGE", Decimal(1))
    assert owner.w3.eth.get_transaction_count(owner.signer.account.address) == nonce


def test_withdrawing_more_than_is_free_is_explained_and_moves_nothing(owner: WalletOps) -> None:
    address = owner.signer.account.address
    before = owner.show().balances
    held = token_balance(owner, "USDC", address)
    nonce = owner.w3.eth.get_transaction_count(address)

    with pytest.raises(ChainError) as refused:
        owner.withdraw("USDC", Decimal(5_000))
    error = refused.value
    free = words(before["USDC"])
    assert error.reason == (
        f"cannot withdraw 5000 USDC: the wallet holds only {free} USDC: at most {free} USDC is free"
    )
    assert error.revert == "erc20: transfer amount exceeds balance"
    assert error.tx_hash is None  # refused at estimation: never sent
    assert owner.show().balances == before
    assert token_balance(owner, "USDC", address) == held
    assert owner.w3.eth.get_transaction_count(address) == nonce

    # a deposit beyond what the owner holds is explained from the owner's side
    with pytest.raises(ChainError, match=r"holds only [0-9.]+ WETH") as short:
        owner.deposit("WETH", Decimal(1_000_000))
    assert short.value.revert == "erc20: transfer amount exceeds balance"


def test_a_non_owner_is_told_who_the_owner_is(
    devnet: DevnetGateway, chain: ChainInfo, owner: WalletOps
) -> None:
    stranger = ops_for(funded_signer(devnet, chain).for_wallet(owner.wallet), chain)
    who = f"only the wallet's owner ({owner.signer.address}) can do this"
    attempts: list[Callable[[], TxResult]] = [
        lambda: stranger.set_max_notional(Decimal(1)),
        lambda: stranger.withdraw("USDC", Decimal(1)),
        lambda: stranger.pause(),
        lambda: stranger.cancel_below(5),
        lambda: stranger.add_key(stranger.signer.address, expires_at=chain_now(stranger) + 60),
    ]
    for attempt in attempts:
        with pytest.raises(ChainError) as refused:
            attempt()
        assert who in refused.value.reason
        assert f"and {stranger.signer.address} is not" in refused.value.reason
        assert refused.value.revert == "wallet: not owner"
    with pytest.raises(ChainError, match=r"or one of its active trading keys") as cancel:
        stranger.cancel(MADE_UP_ID)
    assert cancel.value.revert == "wallet: not owner or key"
    # but anyone may deposit
    stranger.deposit("USDC", Decimal(10))
    assert owner.show().balances["USDC"] >= Decimal(1_010)


def test_the_owners_limits_are_set_and_read_back(owner: WalletOps) -> None:
    spot = spot_id(owner.chain)
    assert owner.show().max_notional is None
    owner.set_max_notional(Decimal("25000.5"))
    assert owner.show().max_notional == Decimal("25000.5")
    owner.set_max_notional(0)
    assert owner.show().max_notional == 0
    owner.set_max_notional(None)
    assert owner.show().max_notional is None

    owner.set_restrict_instruments(True)
    owner.allow_instrument(spot, True)
    view = owner.show()
    assert view.restrict_instruments
    assert owner.instrument_allowed(spot) and not owner.instrument_allowed(MADE_UP_ID)
    owner.allow_instrument(spot, False)
    owner.set_restrict_instruments(False)
    assert not owner.instrument_allowed(spot) and not owner.show().restrict_instruments

    owner.pause()
    assert owner.show().paused
    owner.withdraw("USDC", Decimal(1))  # the owner always gets out, paused or not
    owner.unpause()
    assert not owner.show().paused


def test_trading_keys_are_added_scoped_and_revoked(
    devnet: DevnetGateway, chain: ChainInfo, owner: WalletOps
) -> None:
    key_signer = funded_signer(devnet, chain)
    key = key_signer.address
    spot = spot_id(chain)
    expires = datetime.fromtimestamp(chain_now(owner) + 86_400, UTC)
    assert owner.key(key) == KeyView(key, None, False, None, False, {})

    owner.add_key(
        key,
        expires_at=expires,
        all_instruments=False,
        max_notional=Decimal(5_000),
        instruments=[spot],
    )
    view = owner.key(key, [spot, MADE_UP_ID])
    assert view == KeyView(
        key, expires, False, Decimal(5_000), True, {spot: True, MADE_UP_ID: False}
    )
    assert view.exists

    # re-scoped: every instrument, no notional limit
    owner.add_key(key, expires_at=int(expires.timestamp()) + 60)
    view = owner.key(key)
    assert (view.all_instruments, view.max_notional, view.active) == (True, None, True)
    assert view.expires_at == expires + timedelta(seconds=60)

    # an active key may cancel the wallet's orders (never withdraw)
    as_key = ops_for(key_signer.for_wallet(owner.wallet), chain)
    order = typed_data(spot_order(owner, 41), chain.chain_id, owner.wallet)
    as_key.cancel(digest(order))
    assert owner.is_cancelled(digest(order))
    with pytest.raises(ChainError, match="only the wallet's owner"):
        as_key.withdraw("USDC", Decimal(1))

    owner.revoke_key(key)
    revoked = owner.key(key)
    assert not revoked.active and not revoked.exists
    with pytest.raises(ChainError, match="or one of its active trading keys") as refused:
        as_key.cancel(MADE_UP_ID)
    assert refused.value.revert == "wallet: not owner or key"

    with pytest.raises(ChainError, match="expiry must be in the future") as past:
        owner.add_key(key, expires_at=chain_now(owner) - 10)
    assert past.value.revert == "wallet: key expiry in the past"
    with pytest.raises(ChainError, match="other than the wallet's owner") as itself:
        owner.add_key(owner.signer.address, expires_at=chain_now(owner) + 60)
    assert itself.value.revert == "wallet: bad key"
    with pytest.raises(ValueError, match="time zone"):
        owner.add_key(key, expires_at=datetime(2100, 1, 1))


def test_cancels_show_in_the_wallets_views(owner: WalletOps) -> None:
    chain = owner.chain
    first = spot_order(owner, 5)
    first_digest = digest(typed_data(first, chain.chain_id, owner.wallet))
    assert owner.remaining(first) == first.amount
    assert not owner.is_cancelled(first_digest)

    owner.cancel(first_digest)
    assert owner.is_cancelled(first_digest)
    assert owner.remaining(first) == 0

    below, above = spot_order(owner, 7), spot_order(owner, 12)
    assert owner.remaining(below) == below.amount
    owner.cancel_below(10)
    assert owner.min_nonce() == 10 and owner.show().min_nonce == 10
    assert owner.remaining(below) == 0
    assert owner.remaining(above) == above.amount
    assert not owner.nonce_used(12) and not owner.nonce_used(7)

    with pytest.raises(ChainError) as refused:
        owner.cancel_below(3)
    assert refused.value.reason == (
        "cannot cancel every order below nonce 3: the wallet's minimum nonce can only go up: "
        "it is 10 already"
    )
    assert refused.value.revert == "wallet: nonce decreases"
    assert owner.min_nonce() == 10


def test_check_instrument_knows_what_the_settlement_lists(owner: WalletOps) -> None:
    chain = owner.chain
    assert owner.check_instrument(spot_id(chain))
    assert not owner.check_instrument(MADE_UP_ID)
    # the same pair the other way round is another instrument, not listed
    reversed_pair = instrument_id(
        KIND_SPOT, chain.token("USDC").address, chain.token("WETH").address
    )
    assert not owner.check_instrument(reversed_pair)
    with pytest.raises(ValueError, match="32 bytes"):
        owner.check_instrument(b"\x01")


# --------------------------------------------------------------------------- a separate anvil


def world_chain(options: World, node: Anvil) -> ChainInfo:
    d = options.d
    return ChainInfo(
        chain_id=options.w3.eth.chain_id,
        settlement=d.settlement,
        wallet_factory=d.wallet_factory,
        tokens={"WETH": Token("WETH", d.weth, 18), "USDC": Token("USDC", d.usdc, 6)},
        rpc_url=node.rpc_url,
    )


def world_ops(options: World, node: Anvil, account: LocalAccount, wallet: str | None) -> WalletOps:
    return WalletOps(node.rpc_url, Signer(account, wallet), world_chain(options, node))


def advance_to(web3: Web3, timestamp: int) -> None:
    """Mine a block at `timestamp` or later (anvil's clock only moves forward)."""
    ahead = timestamp - int(web3.eth.get_block("latest")["timestamp"])
    if ahead > 0:
        web3.provider.make_request("evm_increaseTime", [ahead])  # type: ignore[arg-type]
    web3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def set_answer(options: World, answer: int, updated_at: int | None = None) -> int:
    """A new round of the WETH feed (the one every series binds); returns its id."""
    feed = aggregator_contract(options.w3, options.d)
    if updated_at is None:
        options.operator.transact(feed.functions.set_answer(answer))
    else:
        options.operator.transact(feed.functions.set_answer_at(answer, updated_at))
    return int(feed.functions.latest_round().call())


def test_a_withdrawal_the_margin_needs_is_refused_with_what_is_free(
    world: World,  # noqa: F811
    anvil_node: Anvil,  # noqa: F811
) -> None:
    """The writer of a put struck at 3,000 must keep 3,000 USDC of margin: 550 USDC and WETH
    counted at 80% of 3,000 cover it. Withdrawing all the WETH is refused, the refusal names
    the most that is free, and exactly that much (not one unit more) can go."""
    settlement = settlement_contract(world.w3, world.d)
    put = option(world, 3_000 * USDC, False)
    world.operator.transact(settlement.functions.settle(trade(world, put, WETH, 50 * USDC, 1)[2]))
    writer = world_ops(world, anvil_node, world.writer, world.writer_wallet)

    view = writer.show()
    [position] = view.positions
    assert (position.instrument_id, position.underlying, position.quote) == (put.id, "WETH", "USDC")
    assert (position.strike, position.size) == (Decimal(3_000), Decimal(-1))
    assert not position.is_call
    assert position.expiry == datetime.fromtimestamp(world.expiry, UTC)
    assert view.margin_status.required == 3_000 and view.margin_status.ok
    weth = view.balances["WETH"]
    free = writer.withdrawable("WETH")
    assert 0 < free < weth

    with pytest.raises(ChainError) as refused:
        writer.withdraw("WETH", weth)
    assert refused.value.revert == "wallet: margin"
    assert refused.value.reason.startswith(
        f"cannot withdraw {words(weth)} WETH: the wallet would not cover its margin after "
        f"this withdrawal: at most {words(free)} WETH is free"
    )
    assert writer.show().balances == view.balances

    writer.withdraw("WETH", free)
    assert writer.withdrawable("WETH") == 0
    with pytest.raises(ChainError, match="at most 0 WETH is free"):
        writer.withdraw("WETH", Decimal("1e-18"))
    assert writer.show().margin_status.ok

    # the quote counts one for one: what is free of it is the margin's surplus, exactly
    status = writer.margin_status()
    usdc_free = writer.withdrawable("USDC")
    assert usdc_free == min(writer.balance("USDC"), status.free)
    with pytest.raises(ChainError, match=f"at most {words(usdc_free)} USDC is free"):
        writer.withdraw("USDC", usdc_free + Decimal("0.000001"))


def test_settle_expiry_names_the_round_at_expiry(
    world: World,  # noqa: F811
    anvil_node: Anvil,  # noqa: F811
) -> None:
    """Anyone settles a series after expiry without the operator: at the bound feed's round
    at expiry, not a later more convenient one; the long call is paid 100 USDC."""
    web3, d = world.w3, world.d
    settlement = settlement_contract(web3, d)
    call = option(world, 3_000 * USDC, True)
    world.operator.transact(settlement.functions.settle(trade(world, call, WETH, 50 * USDC, 1)[2]))
    anyone = world_ops(world, anvil_node, anvil_node.dev_accounts()[6], None)
    buyer = world_ops(world, anvil_node, world.buyer, world.buyer_wallet)
    assert buyer.positions()[0].size == 1

    with pytest.raises(ChainError, match="cannot settle before it expires"):
        anyone.settle_expiry("WETH", "USDC", world.expiry)
    set_answer(world, 2_950 * FEED)
    advance_to(web3, world.expiry + 10)
    at = set_answer(world, 3_100 * FEED)
    set_answer(world, 3_400 * FEED)
    set_answer(world, 3_500 * FEED)
    paid_before = buyer.balance("USDC")

    messages: list[str] = []
    anyone.progress = messages.append
    result = anyone.settle_expiry("WETH", "USDC", datetime.fromtimestamp(world.expiry, UTC))
    receipt = web3.eth.get_transaction_receipt(HexStr(result.tx_hash))
    [settled] = event_logs(settlement, "ExpirySettled", receipt)
    assert settled["args"]["round_id"] == at and settled["args"]["price"] == 3_100 * USDC
    assert any(f"at round {at} (the round at expiry)" in m for m in messages)
    # the gateway's own walk names the same round
    bound = round_at_expiry(web3, d.eth_usd_aggregator, world.expiry)
    assert bound.round_id == at
    sid = series_id(d.weth, d.usdc, world.expiry)
    assert settlement.functions.series_settled(sid).call()
    assert buyer.balance("USDC") - paid_before == 100
    assert buyer.positions() == ()

    with pytest.raises(ChainError, match="is settled already, at 3100 USDC"):
        anyone.settle_expiry("WETH", "USDC", world.expiry)
    with pytest.raises(ChainError, match="is not listed on this Settlement"):
        anyone.settle_expiry("WETH", "USDC", world.expiry + 1)


def test_settle_expiry_falls_back_to_the_round_before_expiry_after_the_grace(
    world: World,  # noqa: F811
    anvil_node: Anvil,  # noqa: F811
) -> None:
    """A missing round between the last round before expiry and the first after it: the
    contract refuses the round after the gap as the round at expiry, so nothing settles the
    series until the grace is over; then the last round before expiry does."""
    web3, d = world.w3, world.d
    settlement = settlement_contract(web3, d)
    option(world, 3_000 * USDC, True)
    grace = int(settlement.functions.EXPIRY_GRACE().call())
    anyone = world_ops(world, anvil_node, anvil_node.dev_accounts()[6], None)
    sid = series_id(d.weth, d.usdc, world.expiry)

    before = set_answer(world, 2_900 * FEED)
    advance_to(web3, world.expiry + 5)
    set_answer(world, 3_000 * FEED, 0)  # a round that does not exist for the contract
    after_gap = set_answer(world, 3_100 * FEED)
    with pytest.raises(ContractLogicError, match="not the round at expiry"):
        settlement.functions.settle_expiry(sid, after_gap).call()
    with pytest.raises(ChainError, match="no usable round at expiry yet; after the grace"):
        anyone.settle_expiry("WETH", "USDC", world.expiry)

    advance_to(web3, world.expiry + grace)
    result = anyone.settle_expiry("WETH", "USDC", world.expiry)
    [settled] = event_logs(
        settlement, "ExpirySettled", web3.eth.get_transaction_receipt(HexStr(result.tx_hash))
    )
    assert (settled["args"]["round_id"], settled["args"]["price"]) == (before, 2_900 * USDC)


def test_settle_expiry_unwinds_a_series_whose_feed_died(
    world: World,  # noqa: F811
    anvil_node: Anvil,  # noqa: F811
) -> None:
    web3, d = world.w3, world.d
    settlement = settlement_contract(web3, d)
    option(world, 3_000 * USDC, False)
    grace = int(settlement.functions.EXPIRY_GRACE().call())
    anyone = world_ops(world, anvil_node, anvil_node.dev_accounts()[6], None)
    set_answer(world, 0)
    advance_to(web3, world.expiry + 1)
    set_answer(world, -1)
    advance_to(web3, world.expiry + grace)
    with pytest.raises(ChainError, match="it unwinds at no payoff from"):
        anyone.settle_expiry("WETH", "USDC", world.expiry)

    advance_to(web3, world.expiry + 2 * grace)
    result = anyone.settle_expiry("WETH", "USDC", world.expiry)
    [settled] = event_logs(
        settlement, "ExpirySettled", web3.eth.get_transaction_receipt(HexStr(result.tx_hash))
    )
    assert (settled["args"]["round_id"], settled["args"]["price"]) == (0, 0)
    assert settlement.functions.series_settled(series_id(d.weth, d.usdc, world.expiry)).call()
