"""Order nonces, per wallet: single use on chain, handed out in order (the wallet keeps the
newest 64 in one storage slot, so nonces used roughly in order settle cheapest).

`NonceStore` keeps the next nonce of each (chain, wallet) in a small JSON file, under a file
lock, so that two processes of the same trader never hand out the same nonce; the first use
starts from the wallet's on-chain floor (`min_nonce`) when the client can read the chain.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

from eth_utils import to_checksum_address

DEFAULT_DIRECTORY = Path(os.environ.get("ISTHMUS_CLIENT_HOME", Path.home() / ".isthmus-client"))


class NonceStore:
    """The next nonce of each wallet, kept in `directory/nonces.json` (or in memory with
    `directory=None`, for one process's life)."""

    def __init__(self, directory: Path | None = DEFAULT_DIRECTORY) -> None:
        self.path = None if directory is None else Path(directory) / "nonces.json"
        self._memory: dict[str, int] = {}
        self._lock = threading.Lock()  # threads of this process (`take` runs in one)

    @staticmethod
    def _key(chain_id: int, wallet: str) -> str:
        return f"{chain_id}:{to_checksum_address(wallet)}"

    def _update(self, change: Callable[[dict[str, int]], int]) -> int:
        """Apply `change` to the stored counters atomically (file lock across processes)."""
        with self._lock:
            if self.path is None:
                return change(self._memory)
            return self._update_file(self.path, change)

    @staticmethod
    def _update_file(path: Path, change: Callable[[dict[str, int]], int]) -> int:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            text = handle.read()
            stored: dict[str, int] = json.loads(text) if text.strip() else {}
            result = change(stored)
            handle.seek(0)
            handle.truncate()
            json.dump(stored, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        return result

    def take(self, chain_id: int, wallet: str, floor: Callable[[], int] | None = None) -> int:
        """A nonce for a new order of `wallet`, never handed out before by this store;
        `floor()` (the wallet's `min_nonce` on chain) is asked on a wallet's first use."""
        key = self._key(chain_id, wallet)

        def next_nonce(stored: dict[str, int]) -> int:
            if key not in stored:
                stored[key] = max(1, floor() if floor else 1)
            nonce = int(stored[key])
            stored[key] = nonce + 1
            return nonce

        return self._update(next_nonce)

    def knows(self, chain_id: int, wallet: str) -> bool:
        """Whether the store hands out nonces of `wallet` already (its first use is done)."""
        key = self._key(chain_id, wallet)
        return self._update(lambda stored: int(key in stored)) == 1

    def skip_to(self, chain_id: int, wallet: str, nonce: int) -> None:
        """Never hand out a nonce below `nonce` again (after `cancel_below`, for one)."""
        key = self._key(chain_id, wallet)

        def raise_floor(stored: dict[str, int]) -> int:
            stored[key] = max(int(stored.get(key, 1)), nonce)
            return stored[key]

        self._update(raise_floor)
