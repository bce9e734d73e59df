"""Who is calling: the authenticated principal every request carries in `request.state`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["operator", "trader", "protocol", "auditor"]
ROLES: tuple[Role, ...] = ("operator", "trader", "protocol", "auditor")

# What an API key may be granted; traders and the operator get them implicitly.
SCOPES: tuple[str, ...] = ("quote", "trade", "read")


@dataclass(frozen=True, slots=True)
class Principal:
    """`accounts` None means every account may be seen (operator, auditor, unrestricted key)."""

    role: Role
    subject: str
    scopes: frozenset[str]
    accounts: frozenset[str] | None

    def may_see(self, account: str) -> bool:
        return self.accounts is None or account.lower() in self.accounts

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"


OPERATOR = Principal(role="operator", subject="operator", scopes=frozenset(SCOPES), accounts=None)
