"""Accounts' MarginWallets on chain, as the risk engine sees them.

An account is a wallet address. Its state is read with `read_wallet_state` (one block, every
margin input) in a worker thread and kept as the last known state, which the pre-trade
margin projection uses without waiting for the chain. Addresses that are not wallets (no
code, or code that is not a MarginWallet) are remembered as such for a while so that every
report does not probe them again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal
from typing import Any, NamedTuple

from web3 import Web3

from gateway.chain.artifacts import compile_contract
from gateway.chain.transactions import bind
from gateway.chain.wallet_state import read_wallet_state
from gateway.risk.liquidation import CollateralHolding
from gateway.risk.wallet_margin import MarginReverts, MarginStatus, WalletState, margin_status

log = logging.getLogger("gateway.chain")

_SYMBOL_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "symbol",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "string"}],
    }
]


class _Read(NamedTuple):
    """A wallet's state as last read: when it was last checked, and the hash of the block
    it was read at (the state is a function of that block)."""

    checked_at: float
    head: bytes
    state: WalletState


class ChainWallets:
    def __init__(
        self,
        w3: Web3,
        settlement: str,
        *,
        fresh_for_seconds: float = 0.5,
        not_a_wallet_for_seconds: float = 30.0,
    ) -> None:
        self.w3 = w3
        self.settlement = Web3.to_checksum_address(settlement)
        self.fresh_for = fresh_for_seconds
        self.not_a_wallet_for = not_a_wallet_for_seconds
        self._states: dict[str, _Read] = {}
        self._decimals: dict[str, int] = {}  # token: its decimals, read once
        self._not_wallets: dict[str, float] = {}
        self._symbols: dict[str, str] = {}  # lower-case token address: symbol
        self._addresses: dict[str, str] = {}  # symbol: checksum address

    # -- tokens ---------------------------------------------------------------------------

    def _load_tokens(self) -> None:
        if self._symbols:
            return
        settlement = bind(self.w3, compile_contract("Settlement"), self.settlement)
        tokens = [settlement.functions.option_quote().call()]
        tokens += settlement.functions.collateral_tokens().call()
        for token in tokens:
            address = Web3.to_checksum_address(token)
            symbol = str(
                self.w3.eth.contract(address=address, abi=_SYMBOL_ABI).functions.symbol().call()
            )
            self._symbols[address.lower()] = symbol
            self._addresses[symbol] = address

    def token(self, symbol: str) -> str | None:
        return self._addresses.get(symbol)

    def symbol(self, token: str) -> str:
        return self._symbols.get(token.lower(), token)

    # -- state ----------------------------------------------------------------------------

    def cached_state(self, account: str) -> WalletState | None:
        found = self._states.get(account)
        return None if found is None else found.state

    def _read(self, account: str) -> WalletState | None:
        now = time.monotonic()
        rejected = self._not_wallets.get(account)
        if rejected is not None and now - rejected < self.not_a_wallet_for:
            return None
        self._load_tokens()
        # a wallet's state is a function of the block: on a quiet chain, one head query
        # instead of every margin input again (the risk monitor asks each second)
        number, head = self._head()
        found = self._states.get(account)
        if found is not None and found.head == head:
            self._states[account] = found._replace(checked_at=now)
            return found.state
        try:
            state = read_wallet_state(
                self.w3,
                account,
                self.settlement,
                block_identifier=number,
                known_decimals=self._decimals,
            )
        except Exception as error:  # an EOA, another contract, or another settlement
            log.debug("%s is not a wallet of %s: %s", account, self.settlement, error)
            self._not_wallets[account] = now
            self._states.pop(account, None)
            return None
        self._not_wallets.pop(account, None)
        self._states[account] = _Read(now, head, state)
        return state

    def _head(self) -> tuple[int, bytes]:
        """The chain's head (number, hash). The hash, not the number: a chain reverted to a
        snapshot reuses numbers."""
        block = self.w3.eth.get_block("latest")
        return int(block["number"]), bytes(block["hash"])

    async def state(self, account: str) -> WalletState | None:
        """The wallet's state, read again unless the last read is fresh enough."""
        found = self._states.get(account)
        if found is not None and time.monotonic() - found.checked_at < self.fresh_for:
            return found.state
        return await asyncio.to_thread(self._read, account)

    async def collateral(self, account: str) -> list[CollateralHolding]:
        """The wallet's balances of the option quote (at face value) and of every collateral
        token (valued at its underlying's price less the Settlement's haircut)."""
        state = await self.state(account)
        if state is None:
            return []
        held: list[CollateralHolding] = []
        quote = state.option_quote
        held.append(
            CollateralHolding(
                self.symbol(quote),
                Decimal(state.balance(quote)).scaleb(-state.decimals[quote]),
            )
        )
        for token in state.collateral:
            if token.token == quote:
                continue
            symbol = self.symbol(token.token)
            amount = Decimal(state.balance(token.token)).scaleb(-state.decimals[token.token])
            held.append(CollateralHolding(symbol, amount, symbol, token.haircut_bps))
        return held

    async def margin_status(self, account: str) -> MarginStatus | None:
        """The contract's margin rule on the wallet's state (the mirror gives the same
        integers as `margin_status()` on chain); None for a non-wallet or where the contract
        would revert (e.g. a stale oracle)."""
        state = await self.state(account)
        if state is None:
            return None
        try:
            return margin_status(state)
        except MarginReverts:
            return None
