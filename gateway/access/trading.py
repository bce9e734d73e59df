"""What a caller may do with an account's orders, whatever entry point carried the request
(HTTP, the stream, FIX): the rules take the authenticated `Principal` and `AccessControl`,
so every entry point enforces them the same way."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.access.control import AccessControl, AccessDenied
from gateway.access.principal import Principal
from gateway.domain.orders import OrderSpec

UNSIGNED = "unsigned"  # an API key scope: orders without the owner's signature


@dataclass(frozen=True, slots=True)
class Caller:
    principal: Principal
    access: AccessControl

    async def can_see(self, account: str) -> bool:
        return await self.access.can_see(self.principal, account)

    async def ensure_account(self, account: str) -> None:
        """Refused unless the caller may act for `account` (named by the caller: nothing
        leaks)."""
        if not await self.can_see(account):
            raise AccessDenied(f"{account} is not one of your accounts", field="account")

    async def ensure_may_trade(self, spec: OrderSpec, chain: bool) -> None:
        """The caller acts for the order's account; an API key, a trading key and a Safe
        owner only ever pass on signed orders, checkable on the chain (`chain`): the
        signature is what the wallet checks (the key's scope, the Safe's threshold), so
        nothing unsigned may bypass it."""
        await self.ensure_account(spec.account)
        principal = self.principal
        if principal.role == "protocol":
            if UNSIGNED in principal.scopes and principal.accounts is not None:
                return  # granted by the operator for the key's own accounts (they never settle)
            who = "an API key"
        elif await self.access.acts_as_delegate(principal, spec.account):
            who = "a trading key or a Safe owner"
        else:
            return
        if spec.signed is None:
            raise AccessDenied(
                f"{who} trades only orders carrying a signature the wallet accepts (EIP-712)",
                field="signature",
                code="signature_required",
            )
        if not chain:
            raise AccessDenied(
                "no chain is configured to check the owner's signature",
                field="signature",
                code="signature_required",
            )

    async def ensure_not_delegate(self, account: str, what: str) -> None:
        """Refuse a trading key or a Safe owner what it could only do unsigned for `account`
        (an algo's children, an amendment the signature does not cover)."""
        if await self.access.acts_as_delegate(self.principal, account):
            raise AccessDenied(
                f"a trading key or a Safe owner cannot {what}: only signed orders",
                field="account",
                code="signature_required",
            )
