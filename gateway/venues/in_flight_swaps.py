"""Pool swaps that are recorded as fills but not yet in the pool's on-chain reserves.

A pool leg of a signed order is not sent as a swap of its own: it is a fill whose swap runs
inside the settlement transaction. Until that transaction is mined the pair's reserves do not
show it, so every later quote on the pair must: the reserves a quote uses are the chain's at
some block plus every swap not yet included at or before that block. Otherwise a second pool
fill would be priced on reserves the first has already used and its swap would revert.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from web3 import Web3

from gateway.domain.amm import PoolSwap


class InFlightSwaps:
    """The swaps recorded but not yet on chain, by the fill they settle (thread-safe: quotes
    run in worker threads)."""

    def __init__(self) -> None:
        self._swaps: dict[str, PoolSwap] = {}
        self._included_at: dict[str, int] = {}  # fill id -> block that mined its swap
        self._lock = threading.Lock()
        self.version = 0  # moves on every add or drop: the pool's book must be republished

    def add(self, fill_id: str, swap: PoolSwap) -> None:
        with self._lock:
            self._swaps[fill_id] = swap
            self._included_at.pop(fill_id, None)
            self.version += 1

    def included(self, fill_ids: Iterable[str], block_number: int) -> None:
        """The swaps of `fill_ids` were mined in `block_number`: reserves read at that block
        or later already hold them."""
        with self._lock:
            for fill_id in fill_ids:
                if fill_id in self._swaps:
                    self._included_at[fill_id] = block_number

    def drop(self, fill_ids: Iterable[str]) -> None:
        """They will never settle (refused)."""
        with self._lock:
            for fill_id in fill_ids:
                self._swaps.pop(fill_id, None)
                self._included_at.pop(fill_id, None)
            self.version += 1

    def pending(self) -> dict[str, PoolSwap]:
        with self._lock:
            return {f: s for f, s in self._swaps.items() if f not in self._included_at}

    def reserves(self, pair: str, on_chain: Mapping[str, int], block_number: int) -> dict[str, int]:
        """`on_chain` (token -> reserve at `block_number`) moved by the swaps that block does
        not hold yet. Swaps mined at or before it are forgotten: no later read needs them."""
        pair = Web3.to_checksum_address(pair)
        moved: dict[str, int] = {Web3.to_checksum_address(t): r for t, r in on_chain.items()}
        with self._lock:
            for fill_id, swap in list(self._swaps.items()):
                included = self._included_at.get(fill_id)
                if included is not None and included <= block_number:
                    del self._swaps[fill_id]
                    del self._included_at[fill_id]
                    continue
                if Web3.to_checksum_address(swap.pair) != pair:
                    continue
                moved[Web3.to_checksum_address(swap.token_in)] += swap.amount_in
                moved[Web3.to_checksum_address(swap.token_out)] -= swap.amount_out
        return moved
