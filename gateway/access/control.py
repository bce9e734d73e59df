"""Authentication and its state: operator token, trader sessions (Sign-In with Ethereum),
HMAC-signed API key requests, replay memory, rate limits, and which wallets a trader acts for.

A trader signed in with an address acts for that address and for the MarginWallets it
relates to on chain (`Relation`): those it owns, those it is an active trading key of, and
those owned by a Safe that lists it as an owner. Ownership never changes, so an owned wallet
is remembered; a key can be revoked and a Safe's owners changed at any time, so those
relations are checked on chain again on every request.

API key secrets are never stored. A key's secret is HMAC-SHA256(server key secret,
key id + salt), so the server can re-derive it to check a request's HMAC, while the database
holds only the salt and sha256(secret): a stolen database alone neither yields secrets nor
lets anyone sign. The server key secret is `ISTHMUS_API_KEY_SECRET` (else derived from the
operator token).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from eth_utils import to_checksum_address
from sqlalchemy import Connection, Engine

from gateway.access.credential_cache import CredentialCache
from gateway.access.principal import OPERATOR, SCOPES, Principal, Role
from gateway.access.request_signing import request_signature
from gateway.access.siwe import InvalidSiweMessage, parse_siwe, siwe_signer
from gateway.config import Settings
from gateway.domain.clock import Clock
from gateway.domain.errors import DomainError
from gateway.oms.group_commit import CommandResult, GroupCommitter
from gateway.oms.order_signatures import InvalidSignature, OrderSignatures
from gateway.store import access_limits as limits
from gateway.store import access_repository as store
from gateway.store.audit_log import AuditEntry

log = logging.getLogger("gateway.access")
T = TypeVar("T")
DEVNET_CHAIN_ID = 31337


class AuthenticationFailed(DomainError):
    """401: `unauthenticated`, `bad_signature`, `stale_request` or `replayed_request`."""

    code = "unauthenticated"


class AccessDenied(DomainError):
    """403: `forbidden` (role, scope or account) or `signature_required`."""

    code = "forbidden"


class ApiKeysUnavailable(DomainError):
    code = "api_keys_unavailable"


class ApiKeyNotFound(DomainError):
    code = "api_key_not_found"


class SignInRefused(DomainError):
    """401 from `POST /v1/auth/siwe`; the code says which check failed."""

    code = "sign_in_refused"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class RateLimiter:
    """A token bucket per subject on the runtime's clock."""

    def __init__(self, per_second: float, burst: int) -> None:
        self.per_second = per_second
        self.burst = burst
        self._buckets: dict[str, tuple[float, datetime]] = {}

    def take(self, subject: str, now: datetime) -> int | None:
        """None when allowed; else the whole seconds to wait before one request fits."""
        tokens, last = self._buckets.get(subject, (float(self.burst), now))
        elapsed = max((now - last).total_seconds(), 0.0)
        tokens = min(float(self.burst), tokens + elapsed * self.per_second)
        if tokens >= 1.0:
            self._buckets[subject] = (tokens - 1.0, now)
            return None
        self._buckets[subject] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / self.per_second))


class ReplayMemory:
    """Signatures seen within the request window; the oldest are forgotten past `size`."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._seen: OrderedDict[str, int] = OrderedDict()  # signature -> forget after (ms)

    def first_sight(self, signature: str, now_ms: int, forget_at_ms: int) -> bool:
        while self._seen:
            oldest, until = next(iter(self._seen.items()))
            if until > now_ms and len(self._seen) < self.size:
                break
            del self._seen[oldest]
        if signature in self._seen:
            return False
        self._seen[signature] = forget_at_ms
        return True


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    address: str
    expires_at: datetime


class Relation(StrEnum):
    """How a signed-in address relates to a wallet it acts for."""

    OWNER = "owner"
    TRADING_KEY = "trading_key"  # an active trading key of the wallet
    SAFE_OWNER = "safe_owner"  # an owner of the Safe (contract) that owns the wallet


class AccessControl:
    def __init__(
        self,
        settings: Settings,
        read_engine: Engine,
        writer: GroupCommitter,
        clock: Clock,
        signatures: OrderSignatures | None = None,
    ) -> None:
        self.settings = settings
        self._read_engine = read_engine
        self._writer = writer
        self.clock = clock
        self.signatures = signatures
        self.rate = RateLimiter(float(settings.rate_limit_per_second), settings.rate_limit_burst)
        self.replays = ReplayMemory(settings.replay_memory_size)
        # replicas: replay memory and rate buckets live in the database, so a failover (or a
        # request sent to two replicas) forgets nothing
        self.shared: Engine | None = writer.engine if settings.replica else None
        # trader address -> wallets learned (from the chain) to be owned by it
        self._wallets: dict[str, set[str]] = {}
        # trader address -> wallets it acted for as a trading key or a Safe owner; each is
        # checked on chain again whenever the trader calls, and dropped once it fails
        self._delegated: dict[str, set[str]] = {}
        token = settings.operator_token
        self._operator_digest = None if token is None else _sha256(token.get_secret_value())
        # token digest -> (trader, session end); key id -> key: read once per TTL, not per request
        ttl = settings.credential_cache_seconds
        self._sessions: CredentialCache[tuple[str, datetime]] = CredentialCache(ttl)
        self._api_keys: CredentialCache[store.StoredApiKey] = CredentialCache(ttl)

    # --- credentials -------------------------------------------------------------------

    async def bearer(self, token: str) -> Principal:
        # compare digests: equal length, so the comparison time says nothing about the token
        if self._operator_digest is not None and hmac.compare_digest(
            _sha256(token), self._operator_digest
        ):
            return OPERATOR
        now = self.clock.now()
        digest = _sha256(token)
        session = await self._sessions.get_or_read(
            digest, now, lambda: self._read(lambda c: store.live_session(c, digest, now))
        )
        if session is None or now >= session[1]:
            raise AuthenticationFailed("the bearer token is unknown or expired")
        return await self.trader(session[0])

    async def trader(self, address: str) -> Principal:
        """The trader's principal now: its address, the wallets it owns, and the wallets it
        acts for as a key or a Safe owner that still hold on chain (a revoked key's wallet
        is no longer listed, nor served)."""
        owned = self._wallets.get(address, set())
        delegated = self._delegated.get(address, set())
        for wallet in sorted(delegated):
            if await self._delegation(address, wallet) is None:
                delegated.discard(wallet)
        return Principal(
            "trader", address, frozenset(SCOPES), frozenset({address, *owned, *delegated})
        )

    async def signed_request(
        self,
        key_id: str,
        timestamp: str,
        signature: str,
        method: str,
        path_with_query: str,
        body: bytes,
    ) -> Principal:
        now_ms = int(self.clock.now().timestamp() * 1000)
        window_ms = self.settings.request_window_seconds * 1000
        if not timestamp.isdigit() or len(timestamp) > 16:
            raise AuthenticationFailed("X-Isthmus-Timestamp is unix milliseconds")
        if abs(now_ms - int(timestamp)) > window_ms:
            raise AuthenticationFailed(
                f"the request timestamp is more than {self.settings.request_window_seconds} s "
                "from the server's clock",
                code="stale_request",
            )
        key = await self._api_keys.get_or_read(
            key_id,
            self.clock.now(),
            lambda: self._read(lambda c: store.get_api_key(c, key_id)),
            keep=lambda found: found.revoked_at is None,
        )
        if key is None or key.revoked_at is not None:
            raise AuthenticationFailed("unknown or revoked API key")
        secret = self._secret(key.key_id, key.salt)
        if secret is None or not hmac.compare_digest(_sha256(secret), key.secret_hash):
            log.warning("API key %s does not match the server's key secret", key_id)
            raise AuthenticationFailed("unknown or revoked API key")
        expected = request_signature(secret, int(timestamp), method, path_with_query, body)
        if not hmac.compare_digest(expected, signature.lower()):
            raise AuthenticationFailed(
                "X-Isthmus-Signature is not the HMAC of this request", code="bad_signature"
            )
        # after the HMAC check, so forged signatures cannot fill the memory
        if not await self._first_sight(expected, now_ms, int(timestamp) + window_ms + 1):
            raise AuthenticationFailed(
                "this signed request was already received", code="replayed_request"
            )
        role: Role = "auditor" if key.role == "auditor" else "protocol"
        scopes = frozenset({"read"}) if role == "auditor" else key.scopes
        return Principal(role, key.key_id, scopes, frozenset(key.accounts) or None)

    async def limit(self, principal: Principal) -> int | None:
        """Seconds to wait when the caller is over its rate; the operator is not limited."""
        if principal.role == "operator":
            return None
        subject = f"{principal.role}:{principal.subject}"
        shared = self.shared
        if shared is None:
            return self.rate.take(subject, self.clock.now())

        def take() -> int | None:
            with shared.begin() as connection:
                return limits.take(connection, subject, self.rate.per_second, self.rate.burst)

        return await asyncio.to_thread(take)

    async def _first_sight(self, signature: str, now_ms: int, forget_at_ms: int) -> bool:
        shared = self.shared
        if shared is None:
            return self.replays.first_sight(signature, now_ms, forget_at_ms)

        def record() -> bool:
            with shared.begin() as connection:
                if now_ms % 64 == 0:  # now and then, the whole window's leftovers
                    limits.forget_before(connection, now_ms)
                return limits.first_sight(connection, signature, now_ms, forget_at_ms)

        return await asyncio.to_thread(record)

    # --- accounts ----------------------------------------------------------------------

    async def can_see(self, principal: Principal, account: str) -> bool:
        if principal.may_see(account):
            return True
        if principal.role != "trader":
            return False
        relation = await self.relation(principal.subject, account)
        if relation is None:
            return False
        known = self._wallets if relation is Relation.OWNER else self._delegated
        known.setdefault(principal.subject, set()).add(to_checksum_address(account))
        return True

    async def relation(self, address: str, wallet: str) -> Relation | None:
        """How `address` relates to `wallet` on chain now; None: not at all, or not a
        wallet (only the trader's own address is then its account)."""
        if self.signatures is None:
            return None
        try:
            owner = await self.signatures.owner(wallet)
        except InvalidSignature:
            return None
        if owner.lower() == address.lower():
            return Relation.OWNER
        return await self._delegation(address, wallet)

    async def _delegation(self, address: str, wallet: str) -> Relation | None:
        assert self.signatures is not None  # only asked of wallets seen through it
        if (await self.signatures.trading_key(wallet, address)).active:
            return Relation.TRADING_KEY
        if await self.signatures.is_safe_owner(wallet, address):
            return Relation.SAFE_OWNER
        return None

    async def acts_as_delegate(self, principal: Principal, account: str) -> bool:
        """Whether a trader acts for `account` only as a trading key or a Safe owner, not as
        the address itself or its owner (asked once the account is known to be visible)."""
        if principal.role != "trader" or self.signatures is None:
            return False
        if account.lower() == principal.subject.lower():
            return False
        try:
            owner = await self.signatures.owner(account)
        except InvalidSignature:
            return False
        return owner.lower() != principal.subject.lower()

    # --- API keys ----------------------------------------------------------------------

    def _master(self) -> bytes | None:
        if self.settings.api_key_secret is not None:
            return self.settings.api_key_secret.get_secret_value().encode()
        if self.settings.operator_token is not None:
            token = self.settings.operator_token.get_secret_value()
            return hashlib.sha256(b"isthmus api keys|" + token.encode()).digest()
        return None

    def _secret(self, key_id: str, salt: str) -> str | None:
        master = self._master()
        if master is None:
            return None
        return hmac.new(master, f"{key_id}|{salt}".encode(), hashlib.sha256).hexdigest()

    async def create_api_key(
        self, role: str, scopes: frozenset[str], accounts: tuple[str, ...], label: str | None
    ) -> tuple[store.StoredApiKey, str]:
        key_id = "key_" + secrets.token_hex(8)
        salt = secrets.token_hex(16)
        secret = self._secret(key_id, salt)
        if secret is None:
            raise ApiKeysUnavailable(
                "set ISTHMUS_API_KEY_SECRET (or ISTHMUS_OPERATOR_TOKEN) to issue API keys"
            )
        if role == "auditor":
            scopes = frozenset({"read"})
        key = store.StoredApiKey(
            key_id, role, scopes, accounts, label, salt, _sha256(secret), self.clock.now()
        )

        def command(connection: Connection, now: datetime) -> CommandResult[store.StoredApiKey]:
            stored = replace(key, created_at=now)
            store.insert_api_key(connection, stored)
            facts = {
                "role": role,
                "scopes": sorted(scopes),
                "accounts": list(accounts),
                "label": label,
            }
            return CommandResult(stored, [AuditEntry("api_key.created", key_id, facts)])

        created: store.StoredApiKey = await self._writer.execute(command)
        return created, secret

    async def revoke_api_key(self, key_id: str) -> store.StoredApiKey:
        def command(connection: Connection, now: datetime) -> CommandResult[bool]:
            revoked = store.revoke_api_key(connection, key_id, now)
            audit = [AuditEntry("api_key.revoked", key_id, {})] if revoked else []
            return CommandResult(revoked, audit)

        await self._writer.execute(command)
        self._api_keys.forget(key_id)  # reads begun before this are not kept either
        key = await self._read(lambda c: store.get_api_key(c, key_id))
        if key is None:
            raise ApiKeyNotFound(f"no API key {key_id}", field="key_id")
        return key

    async def api_keys(self) -> list[store.StoredApiKey]:
        return await self._read(store.list_api_keys)

    # --- Sign-In with Ethereum ---------------------------------------------------------

    async def issue_nonce(self) -> tuple[str, datetime]:
        nonce = secrets.token_hex(12)
        ttl = timedelta(seconds=self.settings.siwe_nonce_ttl_seconds)

        def command(connection: Connection, now: datetime) -> CommandResult[datetime]:
            store.insert_nonce(connection, nonce, now, now + ttl)
            return CommandResult(now + ttl)

        expires_at: datetime = await self._writer.execute(command)
        return nonce, expires_at

    async def chain_id(self) -> int:
        if self.settings.siwe_chain_id is not None:
            return self.settings.siwe_chain_id
        if self.signatures is not None:
            return await self.signatures.chain_id()
        return DEVNET_CHAIN_ID

    async def sign_in(self, text: str, signature: str, host: str | None) -> Session:
        try:
            message = parse_siwe(text)
        except InvalidSiweMessage as error:
            raise SignInRefused(error.message, field="message", code=error.code) from None
        domain = self.settings.siwe_domain or host
        if domain is None or message.domain != domain:
            raise SignInRefused(
                f"the message is for {message.domain}, not {domain}",
                field="message",
                code="siwe_wrong_domain",
            )
        if message.chain_id != await self.chain_id():
            raise SignInRefused(
                f"the message is for chain {message.chain_id}",
                field="message",
                code="siwe_wrong_chain",
            )
        now = self.clock.now()
        if message.expiration_time is not None and message.expiration_time <= now:
            raise SignInRefused("the message has expired", field="message", code="siwe_expired")
        if message.not_before is not None and message.not_before > now:
            raise SignInRefused("the message is not valid yet", field="message", code="siwe_early")
        if siwe_signer(text, signature) != message.address:
            raise SignInRefused(
                "the signature is not the address's", field="signature", code="siwe_bad_signature"
            )
        token = "ist_" + secrets.token_urlsafe(32)
        lifetime = timedelta(seconds=self.settings.session_ttl_seconds)
        until = now + lifetime
        if message.expiration_time is not None:
            until = min(until, message.expiration_time)

        def command(connection: Connection, now: datetime) -> CommandResult[bool]:
            # the nonce is spent in the same transaction that opens the session
            if not store.spend_nonce(connection, message.nonce, now):
                return CommandResult(False)
            store.insert_session(connection, _sha256(token), message.address, now, until)
            return CommandResult(True)

        if not await self._writer.execute(command):
            raise SignInRefused(
                "the nonce is unknown, used or expired", field="message", code="siwe_bad_nonce"
            )
        return Session(token, message.address, until)

    async def sign_out(self, token: str) -> None:
        digest = _sha256(token)

        def command(connection: Connection, now: datetime) -> CommandResult[bool]:
            return CommandResult(store.delete_session(connection, digest))

        await self._writer.execute(command)
        self._sessions.forget(digest)  # reads begun before this are not kept either

    async def _read(self, query: Callable[[Connection], T]) -> T:
        def run() -> T:
            with self._read_engine.connect() as connection:
                return query(connection)

        return await asyncio.to_thread(run)
