"""Read a deployed ``MarginWallet``'s margin inputs into a :class:`WalletState`.

Everything is read at one block, from one view: ``Settlement.margin_inputs(wallet)`` returns
the wallet's settlement and option quote, its open positions with their option metadata in
open-list order, its balances of the option quote, of every underlying and of every
collateral token, and the Settlement's collateral tokens with unit, haircut and oracle price
(0 where the oracle refuses one). One call cannot straddle two blocks, and it is what the
contract's margin rule reads, so the mirror's inputs cannot drift from the rule's.

Added around it, at the same block: ``decimals()`` of each token (the view does not return
them), balances of any ``extra_tokens`` (e.g. the underlying of an order about to trade), the
Settlement's ``option_quote()`` for a wallet that never held an option (its first option fill
sets it), and ``PriceOracle.price(token)`` for a collateral price of 0 (a revert, which makes
``margin_status`` revert, or a real 0, which values the token at nothing).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from web3 import Web3
from web3.exceptions import ContractLogicError, Web3Exception
from web3.types import BlockIdentifier

from gateway.chain.artifacts import compile_contract
from gateway.chain.transactions import bind
from gateway.risk.wallet_margin import CollateralToken, SeriesPosition, WalletState

_ERC20_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "balanceOf",
        "stateMutability": "view",
        "inputs": [{"name": "owner", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    },
    {
        "type": "function",
        "name": "decimals",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "uint8"}],
    },
]


class WalletStateError(RuntimeError):
    """The wallet's state cannot be read (not a wallet of that Settlement)."""


def read_wallet_state(
    w3: Web3,
    wallet_address: str,
    settlement_address: str | None = None,
    *,
    extra_tokens: Iterable[str] = (),
    block_identifier: BlockIdentifier | None = None,
    known_decimals: dict[str, int] | None = None,
) -> WalletState:
    """The margin inputs of ``wallet_address`` at one block (default: the latest).

    ``settlement_address`` defaults to the wallet's own ``settlement()``; when given it must
    be that one (the margin rule uses the wallet's settlement for collateral).
    ``known_decimals`` (token: decimals) is read from and added to: a token's decimals are
    read once.
    """
    block: BlockIdentifier = (
        block_identifier if block_identifier is not None else w3.eth.block_number
    )
    wallet_address = Web3.to_checksum_address(wallet_address)
    if settlement_address is None:
        wallet = bind(w3, compile_contract("MarginWallet"), wallet_address)
        settlement_address = str(wallet.functions.settlement().call(block_identifier=block))
    settlement = bind(w3, compile_contract("Settlement"), settlement_address)
    try:
        inputs = settlement.functions.margin_inputs(wallet_address).call(block_identifier=block)
    except (Web3Exception, ValueError) as error:
        raise WalletStateError(
            f"{wallet_address} has no margin inputs in {settlement.address}: {error}"
        ) from error
    own_settlement, option_quote, raw_positions, raw_balances, raw_tokens, raw_collateral = inputs
    if Web3.to_checksum_address(own_settlement) != settlement.address:
        raise WalletStateError(
            f"wallet {wallet_address} trades through {own_settlement}, not {settlement.address}"
        )

    balances: dict[str, int] = {
        Web3.to_checksum_address(token): int(balance)
        for token, balance in zip(raw_tokens, raw_balances, strict=True)
    }
    if int(option_quote, 16) == 0:
        # never traded an option: the first option fill sets the Settlement's option quote
        option_quote = settlement.functions.option_quote().call(block_identifier=block)
    option_quote = Web3.to_checksum_address(option_quote)

    def erc20(token: str) -> Any:
        return w3.eth.contract(address=Web3.to_checksum_address(token), abi=_ERC20_ABI)

    for token in [option_quote, *(Web3.to_checksum_address(t) for t in extra_tokens)]:
        if token not in balances:
            balances[token] = int(
                erc20(token).functions.balanceOf(wallet_address).call(block_identifier=block)
            )
    known = {} if known_decimals is None else known_decimals
    for held in balances:
        if held not in known:
            known[held] = int(erc20(held).functions.decimals().call(block_identifier=block))
    decimals = {held: known[held] for held in balances}

    positions = tuple(
        SeriesPosition(underlying, int(expiry), int(strike), bool(is_call), int(size))
        for _id, underlying, expiry, strike, is_call, size in raw_positions
    )
    collateral: list[CollateralToken] = []
    for token, unit, haircut, price in raw_collateral:
        collateral.append(
            CollateralToken(
                token,
                int(price) if price else _oracle_price(w3, settlement, token, block),
                int(unit),
                int(haircut),
            )
        )
    return WalletState(
        option_quote=option_quote,
        balances=balances,
        decimals=decimals,
        positions=positions,
        collateral=tuple(collateral),
    )


def _oracle_price(w3: Web3, settlement: Any, token: str, block: BlockIdentifier) -> int | None:
    """``margin_inputs`` reports 0 both for an oracle that reverts and for a price of 0; the
    margin rule reverts on the first and values the token at 0 on the second."""
    oracle = bind(
        w3,
        compile_contract("PriceOracle"),
        settlement.functions.oracle().call(block_identifier=block),
    )
    try:
        return int(oracle.functions.price(token).call(block_identifier=block))
    except ContractLogicError:
        return None


def read_margin_status(
    w3: Web3, wallet_address: str, *, block_identifier: BlockIdentifier | None = None
) -> tuple[int, int, bool]:
    """The contract's own ``margin_status()`` (for reconciling the mirror)."""
    wallet = bind(w3, compile_contract("MarginWallet"), wallet_address)
    required, available, ok = wallet.functions.margin_status().call(
        block_identifier=block_identifier if block_identifier is not None else "latest"
    )
    return int(required), int(available), bool(ok)
