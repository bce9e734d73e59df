"""Read a deployed ``MarginWallet``'s margin inputs into a :class:`WalletState`.

Everything is read at one block through the views the contracts expose:

- wallet: ``settlement()``, ``option_quote()`` (the Settlement's ``option_quote()`` for a
  wallet that never held an option: the first option fill sets it), ``open_positions()``
  (the open list, in its order), ``position(id)``;
- the instrument behind each open id: ``Settlement.instruments(id)`` (the registry of listed
  instruments; the wallet keeps ``_option_meta`` / ``_option_strike`` private and has no view of
  them). A wallet only holds instruments its Settlement listed (``settle`` refuses unlisted
  ones, and the Settlement cannot change while positions are open), so the registry always
  has them; the preimage is re-hashed and must give the id;
- ``Settlement.collateral_tokens()``, ``haircut_bps(token)``, ``oracle()`` and
  ``PriceOracle.price(token)`` (``None`` when that read reverts, e.g. a stale feed:
  ``margin_status`` then raises exactly where the contract reverts);
- ERC-20 ``balanceOf(wallet)`` and ``decimals()`` of the option quote, every underlying, every
  collateral token and any ``extra_tokens`` (e.g. the underlying of an order about to trade).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from web3 import Web3
from web3.exceptions import ContractLogicError
from web3.types import BlockIdentifier

from gateway.chain.artifacts import compile_contract
from gateway.chain.transactions import bind
from gateway.risk.wallet_margin import CollateralToken, SeriesPosition, WalletState
from gateway.settlement.eip712 import KIND_OPTION, instrument_id

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
    """The wallet's state cannot be read consistently (e.g. an open instrument the
    Settlement's registry does not know)."""


def read_wallet_state(
    w3: Web3,
    wallet_address: str,
    settlement_address: str | None = None,
    *,
    extra_tokens: Iterable[str] = (),
    block_identifier: BlockIdentifier | None = None,
) -> WalletState:
    """The margin inputs of ``wallet_address`` at one block (default: the latest).

    ``settlement_address`` defaults to the wallet's own ``settlement()``; when given it must
    be that one (the margin rule uses the wallet's settlement for collateral).
    """
    block: BlockIdentifier = (
        block_identifier if block_identifier is not None else w3.eth.block_number
    )
    wallet = bind(w3, compile_contract("MarginWallet"), wallet_address)
    own_settlement = Web3.to_checksum_address(
        wallet.functions.settlement().call(block_identifier=block)
    )
    if settlement_address is not None and (
        Web3.to_checksum_address(settlement_address) != own_settlement
    ):
        raise WalletStateError(
            f"wallet {wallet_address} trades through {own_settlement}, not {settlement_address}"
        )
    settlement = bind(w3, compile_contract("Settlement"), own_settlement)
    option_quote = Web3.to_checksum_address(
        wallet.functions.option_quote().call(block_identifier=block)
    )
    if int(option_quote, 16) == 0:
        # never traded an option: the first option fill sets the Settlement's option quote
        option_quote = Web3.to_checksum_address(
            settlement.functions.option_quote().call(block_identifier=block)
        )

    positions: list[SeriesPosition] = []
    ids: list[bytes] = wallet.functions.open_positions().call(block_identifier=block)
    for raw_id in ids:
        ins_id = bytes(raw_id)
        size: int = wallet.functions.position(ins_id).call(block_identifier=block)
        kind, base, quote, strike, expiry, is_call = settlement.functions.instruments(ins_id).call(
            block_identifier=block
        )
        if kind != KIND_OPTION or instrument_id(kind, base, quote, strike, expiry, is_call) != (
            ins_id
        ):
            raise WalletStateError(
                f"open instrument 0x{ins_id.hex()} of {wallet_address} is not an option listed "
                f"in {own_settlement}; MarginWallet has no view of its stored option metadata"
            )
        positions.append(SeriesPosition(base, int(expiry), int(strike), bool(is_call), int(size)))

    collateral_addresses = [
        Web3.to_checksum_address(t)
        for t in settlement.functions.collateral_tokens().call(block_identifier=block)
    ]
    tokens: list[str] = [option_quote]
    for t in [
        *(p.underlying for p in positions),
        *collateral_addresses,
        *(Web3.to_checksum_address(x) for x in extra_tokens),
    ]:
        checksum = Web3.to_checksum_address(t)
        if checksum not in tokens:
            tokens.append(checksum)

    balances: dict[str, int] = {}
    decimals: dict[str, int] = {}
    for token in tokens:
        erc20 = w3.eth.contract(address=Web3.to_checksum_address(token), abi=_ERC20_ABI)
        balances[token] = int(
            erc20.functions.balanceOf(wallet.address).call(block_identifier=block)
        )
        decimals[token] = int(erc20.functions.decimals().call(block_identifier=block))

    collateral: list[CollateralToken] = []
    if collateral_addresses:
        oracle = bind(
            w3,
            compile_contract("PriceOracle"),
            settlement.functions.oracle().call(block_identifier=block),
        )
        for token in collateral_addresses:
            haircut = int(settlement.functions.haircut_bps(token).call(block_identifier=block))
            price: int | None
            try:
                price = int(oracle.functions.price(token).call(block_identifier=block))
            except ContractLogicError:
                price = None
            collateral.append(CollateralToken(token, price, 10 ** decimals[token], haircut))

    return WalletState(
        option_quote=option_quote,
        balances=balances,
        decimals=decimals,
        positions=tuple(positions),
        collateral=tuple(collateral),
    )


def read_margin_status(
    w3: Web3, wallet_address: str, *, block_identifier: BlockIdentifier | None = None
) -> tuple[int, int, bool]:
    """The contract's own ``margin_status()`` (for reconciling the mirror)."""
    wallet = bind(w3, compile_contract("MarginWallet"), wallet_address)
    required, available, ok = wallet.functions.margin_status().call(
        block_identifier=block_identifier if block_identifier is not None else "latest"
    )
    return int(required), int(available), bool(ok)
