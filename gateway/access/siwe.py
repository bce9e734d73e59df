"""Sign-In with Ethereum (EIP-4361): the message's text form, parsed and written, and its
personal_sign (EIP-191) signer.

Implemented here rather than with the `siwe` package, whose pins do not fit ours; only the
fields the gateway checks are interpreted, the rest are kept as text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import is_address, to_checksum_address

from gateway.domain.errors import DomainError

_HEADER = re.compile(
    r"^(?:(?P<scheme>[a-zA-Z][a-zA-Z0-9+\-.]*)://)?(?P<domain>[^\s/?#]+) wants you to sign in "
    r"with your Ethereum account:$"
)
_NONCE = re.compile(r"^[A-Za-z0-9]{8,}$")
# field name in the message, attribute; in the order EIP-4361 writes them
_FIELDS = (
    ("URI", "uri"),
    ("Version", "version"),
    ("Chain ID", "chain_id"),
    ("Nonce", "nonce"),
    ("Issued At", "issued_at"),
    ("Expiration Time", "expiration_time"),
    ("Not Before", "not_before"),
    ("Request ID", "request_id"),
)


class InvalidSiweMessage(DomainError):
    code = "invalid_siwe_message"


@dataclass(frozen=True, slots=True)
class SiweMessage:
    domain: str
    address: str
    uri: str
    chain_id: int
    nonce: str
    issued_at: datetime
    version: str = "1"
    statement: str | None = None
    expiration_time: datetime | None = None
    not_before: datetime | None = None
    request_id: str | None = None
    resources: tuple[str, ...] = field(default=())
    scheme: str | None = None

    def text(self) -> str:
        """The exact text the wallet signs."""
        origin = self.domain if self.scheme is None else f"{self.scheme}://{self.domain}"
        lines = [f"{origin} wants you to sign in with your Ethereum account:", self.address, ""]
        if self.statement is not None:
            lines += [self.statement, ""]
        else:
            lines.append("")
        lines += [
            f"URI: {self.uri}",
            f"Version: {self.version}",
            f"Chain ID: {self.chain_id}",
            f"Nonce: {self.nonce}",
            f"Issued At: {_iso(self.issued_at)}",
        ]
        if self.expiration_time is not None:
            lines.append(f"Expiration Time: {_iso(self.expiration_time)}")
        if self.not_before is not None:
            lines.append(f"Not Before: {_iso(self.not_before)}")
        if self.request_id is not None:
            lines.append(f"Request ID: {self.request_id}")
        if self.resources:
            lines.append("Resources:")
            lines += [f"- {resource}" for resource in self.resources]
        return "\n".join(lines)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _time(text: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidSiweMessage(f"{name} is not an RFC 3339 time", field="message") from None
    if moment.tzinfo is None:
        raise InvalidSiweMessage(f"{name} needs a time zone", field="message")
    return moment


def parse_siwe(text: str) -> SiweMessage:
    lines = text.split("\n")
    if len(lines) < 8:
        raise InvalidSiweMessage("not a Sign-In with Ethereum message", field="message")
    header = _HEADER.match(lines[0])
    if header is None:
        raise InvalidSiweMessage("the first line is not an EIP-4361 preamble", field="message")
    address = lines[1]
    if not is_address(address) or address != to_checksum_address(address):
        raise InvalidSiweMessage("the address must be EIP-55 checksummed", field="message")
    if lines[2] != "":
        raise InvalidSiweMessage("a blank line must follow the address", field="message")
    # `address LF LF [statement LF] LF URI...`: the statement, if any, sits before a blank line
    rest = lines[3:]
    statement: str | None = None
    if rest and rest[0] == "":
        rest = rest[1:]
    elif len(rest) >= 2 and rest[1] == "":
        statement, rest = rest[0], rest[2:]
    else:
        raise InvalidSiweMessage("malformed statement", field="message")
    values: dict[str, str] = {}
    position = 0
    for name, attribute in _FIELDS:
        prefix = f"{name}: "
        if position < len(rest) and rest[position].startswith(prefix):
            values[attribute] = rest[position][len(prefix) :]
            position += 1
    resources: list[str] = []
    if position < len(rest) and rest[position] == "Resources:":
        position += 1
        while position < len(rest) and rest[position].startswith("- "):
            resources.append(rest[position][2:])
            position += 1
    if position != len(rest):
        raise InvalidSiweMessage(f"unexpected line: {rest[position][:60]!r}", field="message")
    for required in ("uri", "version", "chain_id", "nonce", "issued_at"):
        if required not in values:
            raise InvalidSiweMessage(f"missing {required}", field="message")
    if values["version"] != "1":
        raise InvalidSiweMessage("only version 1 is known", field="message")
    if not values["chain_id"].isdigit():
        raise InvalidSiweMessage("chain id must be a number", field="message")
    if _NONCE.match(values["nonce"]) is None:
        raise InvalidSiweMessage("the nonce must be 8+ alphanumerics", field="message")
    expiration = values.get("expiration_time")
    not_before = values.get("not_before")
    return SiweMessage(
        domain=header.group("domain"),
        scheme=header.group("scheme"),
        address=address,
        statement=statement,
        uri=values["uri"],
        version=values["version"],
        chain_id=int(values["chain_id"]),
        nonce=values["nonce"],
        issued_at=_time(values["issued_at"], "Issued At"),
        expiration_time=None if expiration is None else _time(expiration, "Expiration Time"),
        not_before=None if not_before is None else _time(not_before, "Not Before"),
        request_id=values.get("request_id"),
        resources=tuple(resources),
    )


def siwe_signer(text: str, signature: str) -> str:
    """The address whose key made this personal_sign signature of `text`."""
    try:
        signer: str = Account.recover_message(
            encode_defunct(text=text), signature=bytes.fromhex(signature.removeprefix("0x"))
        )
    except Exception:
        raise InvalidSiweMessage("the signature cannot be recovered", field="signature") from None
    return signer


def sign_siwe(message: SiweMessage, private_key: str) -> str:
    """Client side (tests, demo): what a wallet's personal_sign returns for `message`."""
    signed = Account.sign_message(encode_defunct(text=message.text()), private_key=private_key)
    return "0x" + bytes(signed.signature).hex()
