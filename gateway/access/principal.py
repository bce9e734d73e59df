"""Who is calling: the authenticated principal every request carries in `request.state`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from eth_utils import to_checksum_address

Role = Literal["operator", "trader", "protocol", "auditor"]
ROLES: tuple[Role, ...] = ("operator", "trader", "protocol", "auditor")

# What an API key may be granted; traders and the operator get them implicitly.
SCOPES: tuple[str, ...] = ("quote", "trade", "read")


@dataclass(frozen=True, slots=True)
class Principal:
    """`accounts` holds EIP-55 checksum addresses (as the store does); None means every
    account may be seen (operator, auditor, an API key not bound to accounts)."""

    role: Role
    subject: str
    scopes: frozenset[str]
    accounts: frozenset[str] | None

    def may_see(self, account: str) -> bool:
        """Known to be visible; a trader's wallet not learned yet is resolved by
        `gateway.api.access.can_see`, which asks the chain."""
        if self.accounts is None or account in self.accounts:
            return True
        try:
            return to_checksum_address(account) in self.accounts
        except ValueError:
            return False

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    def to_json(self) -> str:
        """For a replica passing a request on to the holder of the roles (on behalf of)."""
        accounts = None if self.accounts is None else sorted(self.accounts)
        return json.dumps(
            {
                "role": self.role,
                "subject": self.subject,
                "scopes": sorted(self.scopes),
                "accounts": accounts,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Principal:
        data = json.loads(text)
        role = data["role"]
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        accounts = data["accounts"]
        return cls(
            role,
            str(data["subject"]),
            frozenset(str(s) for s in data["scopes"]),
            None if accounts is None else frozenset(str(a) for a in accounts),
        )


OPERATOR = Principal(role="operator", subject="operator", scopes=frozenset(SCOPES), accounts=None)
