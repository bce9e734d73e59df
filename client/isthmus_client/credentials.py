"""Who the client is to the gateway. Four kinds, each kept in this process:

- `OperatorToken`: the operator's bearer token;
- `ApiKey`: a protocol's key id and secret; every request is signed with HMAC-SHA256 over
  `timestamp + METHOD + path?query + body` (the secret is never sent);
- `Signer`: a trader's key (the wallet's owner, or a trading key the owner authorised) that
  signs orders locally (EIP-712) and signs in with Ethereum (EIP-4361) for a session;
- a `Signer` also works alongside an `ApiKey` or the operator token: it signs the orders, the
  other credential authenticates the requests (a protocol submitting its users' orders).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

KEYSTORE_PASSWORD_ENV = "ISTHMUS_KEYSTORE_PASSWORD"


@dataclass(frozen=True)
class OperatorToken:
    token: str = field(repr=False)

    def headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    secret: str = field(repr=False)

    def headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        """`path` with its `?query`, exactly as sent; `body` byte for byte."""
        now_ms = time.time_ns() // 1_000_000
        payload = f"{now_ms}{method.upper()}{path}".encode() + body
        signature = hmac.new(self.secret.encode(), payload, hashlib.sha256).hexdigest()
        return {
            "X-Isthmus-Key": self.key_id,
            "X-Isthmus-Timestamp": str(now_ms),
            "X-Isthmus-Signature": signature,
        }


@dataclass(frozen=True)
class Signer:
    """A key that signs for `wallet`: its owner, or a trading key of it."""

    account: LocalAccount = field(repr=False)
    wallet: str | None = None

    @property
    def address(self) -> str:
        return str(self.account.address)

    def for_wallet(self, wallet: str) -> Signer:
        return Signer(self.account, to_checksum_address(wallet))

    @classmethod
    def from_key(cls, private_key: str | bytes, wallet: str | None = None) -> Signer:
        """From a raw key held in memory (tests, or a key your own vault hands over)."""
        return cls(
            Account.from_key(private_key), None if wallet is None else to_checksum_address(wallet)
        )

    @classmethod
    def from_keystore(
        cls, path: str | Path, password: str | None = None, wallet: str | None = None
    ) -> Signer:
        """From an encrypted JSON keystore (the eth-account / geth format). Without
        `password`, it is read from the environment variable ISTHMUS_KEYSTORE_PASSWORD."""
        if password is None:
            password = os.environ.get(KEYSTORE_PASSWORD_ENV)
            if password is None:
                raise ValueError(
                    f"the keystore {path} needs a password: pass it, or set {KEYSTORE_PASSWORD_ENV}"
                )
        key = Account.decrypt(json.loads(Path(path).read_text()), password)
        return cls.from_key(key, wallet)

    @staticmethod
    def new_keystore(
        path: str | Path, password: str, private_key: str | bytes | None = None
    ) -> str:
        """Write a new encrypted keystore (a fresh key unless one is given, e.g. imported);
        the file is readable by its owner only. Returns the key's address."""
        account = Account.from_key(private_key) if private_key is not None else Account.create()
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(Account.encrypt(account.key, password), handle)
        return str(account.address)

    def sign_in_message(
        self,
        *,
        domain: str,
        uri: str,
        chain_id: int,
        nonce: str,
        statement: str = "Sign in to Isthmus",
        lifetime: timedelta = timedelta(hours=1),
        now: datetime | None = None,
    ) -> str:
        """An EIP-4361 (Sign-In with Ethereum) message for this key."""
        issued = (now or datetime.now(UTC)).replace(microsecond=0)
        lines = [
            f"{domain} wants you to sign in with your Ethereum account:",
            to_checksum_address(self.address),
            "",
            statement,
            "",
            f"URI: {uri}",
            "Version: 1",
            f"Chain ID: {chain_id}",
            f"Nonce: {nonce}",
            f"Issued At: {_iso(issued)}",
            f"Expiration Time: {_iso(issued + lifetime)}",
        ]
        return "\n".join(lines)

    def sign_text(self, text: str) -> str:
        """EIP-191 personal_sign of `text`, 0x-hex."""
        signed = self.account.sign_message(encode_defunct(text=text))
        return "0x" + bytes(signed.signature).hex()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


Credential = OperatorToken | ApiKey | Signer
