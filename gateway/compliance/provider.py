"""Where KYC records come from: a pluggable provider; the file-backed one serves the devnet."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from gateway.compliance.files import KycRecords, load_kyc
from gateway.compliance.rules import KycLevels, KycRecord, address_key


class KycProvider(Protocol):
    async def record(self, addresses: Sequence[str]) -> KycRecord | None:
        """The record of the first address known (the wallet, then its owner), else the
        provider's default for unknown accounts, else None."""
        ...

    async def reload(self, levels: KycLevels) -> int:
        """Read the records again (all or nothing); returns how many addresses it knows.
        Records naming a level not in `levels` are refused."""
        ...


class FileKycProvider:
    """Records from one TOML/JSON file (format in `gateway.compliance.files`), read at
    `reload` only, so a half-written file never shows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._records = KycRecords({}, None)

    async def record(self, addresses: Sequence[str]) -> KycRecord | None:
        for address in addresses:
            found = self._records.by_address.get(address_key(address))
            if found is not None:
                return found
        return self._records.default

    async def reload(self, levels: KycLevels) -> int:
        self._records = await asyncio.to_thread(load_kyc, self.path, levels)
        return len(self._records.by_address)
