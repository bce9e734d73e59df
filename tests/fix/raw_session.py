"""A raw TCP FIX client for bad-input tests: it sends whatever bytes the test builds (wrong
checksums, wrong lengths, out-of-order or missing fields, unsigned logons) that a real engine
never would, and reads back what the peer answers, one message at a time.

Messages are lists of (tag, value) pairs in wire order; `encode` adds BeginString(8),
BodyLength(9) and CheckSum(10) around the fields it is given."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta
from types import TracebackType

from gateway.access.request_signing import fix_logon_signature
from tests.fix.initiator import BEGIN_STRING

SOH = b"\x01"
Fields = list[tuple[int, str]]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def checksum_of(data: bytes) -> str:
    """CheckSum(10) of everything before it: the byte sum modulo 256, three digits."""
    return f"{sum(data) % 256:03d}"


def encode(
    fields: Fields,
    *,
    begin: str = BEGIN_STRING,
    body_length: int | None = None,
    checksum: str | None = None,
) -> bytes:
    """`8=begin|9=length|<fields>|10=sum|`, with the correct BodyLength and CheckSum unless
    given (to send wrong ones)."""
    body = b"".join(f"{tag}={value}".encode() + SOH for tag, value in fields)
    length = len(body) if body_length is None else body_length
    head = f"8={begin}".encode() + SOH + f"9={length}".encode() + SOH
    total = checksum_of(head + body) if checksum is None else checksum
    return head + body + f"10={total}".encode() + SOH


def decode(data: bytes) -> Fields:
    """One message's bytes as (tag, value) pairs, 8, 9 and 10 included."""
    pairs: Fields = []
    for item in data.split(SOH):
        if not item:
            continue
        tag, _, value = item.partition(b"=")
        pairs.append((int(tag), value.decode(errors="replace")))
    return pairs


def value(fields: Fields, tag: int) -> str:
    """The first value of `tag`; KeyError if absent."""
    for field_tag, field_value in fields:
        if field_tag == tag:
            return field_value
    raise KeyError(f"tag {tag} not in {printable(fields)}")


def printable(fields: Fields) -> str:
    return "|".join(f"{tag}={field_value}" for tag, field_value in fields)


def sending_time(now: datetime) -> str:
    """SendingTime(52) of `now` (UTC), to the millisecond."""
    return now.astimezone(UTC).strftime("%Y%m%d-%H:%M:%S.%f")[:-3]


def unix_ms(now: datetime) -> int:
    return (now.astimezone(UTC) - _EPOCH) // timedelta(milliseconds=1)


def logon_fields(
    sender: str,
    target: str,
    seq: int,
    key_id: str,
    secret: str,
    now: datetime,
    *,
    heartbeat: int = 30,
    reset_seq_num: bool = False,
) -> Fields:
    """A Logon (35=A) signed like the gateway expects: Username(553) the key id,
    Password(554) the HMAC of its SendingTime, comp ids and MsgSeqNum."""
    stamp = sending_time(now)
    fields: Fields = [
        (35, "A"),
        (49, sender),
        (56, target),
        (34, str(seq)),
        (52, stamp),
        (98, "0"),
        (108, str(heartbeat)),
    ]
    if reset_seq_num:
        fields.append((141, "Y"))
    fields += [(553, key_id), (554, fix_logon_signature(secret, stamp, sender, target, seq))]
    return fields


class RawFixConnection:
    """One TCP connection to a FIX acceptor. Reads are buffered: `closed` keeps whatever
    arrived before the close for `read_message`."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.buffer = b""
        self.eof = False

    def connect(self, port: int, host: str = "127.0.0.1", timeout: float = 5) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data: bytes) -> None:
        self._socket().sendall(data)

    def send_fields(self, fields: Fields) -> None:
        self.send(encode(fields))

    def read_message(self, timeout: float = 5) -> Fields | None:
        """The next complete message the peer sent, or None if it closed the connection
        first. TimeoutError if neither happens within `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            message = self._take_message()
            if message is not None:
                return message
            if self.eof:
                return None
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no FIX message within {timeout}s; buffered: {self.buffer!r}")
            self._receive(deadline)

    def closed(self, timeout: float = 5) -> bool:
        """Whether the peer closes the connection within `timeout` (what it sent before is
        kept for `read_message`)."""
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self._receive(deadline)
        return self.eof

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self) -> RawFixConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _socket(self) -> socket.socket:
        if self.sock is None:
            raise RuntimeError("not connected")
        return self.sock

    def _receive(self, deadline: float) -> None:
        """One recv, waiting at most until `deadline`."""
        sock = self._socket()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return
        except (ConnectionResetError, ConnectionAbortedError):
            chunk = b""
        if chunk:
            self.buffer += chunk
        else:
            self.eof = True

    def _take_message(self) -> Fields | None:
        """Split one complete message off the buffer, framed by its BodyLength(9)."""
        start = self.buffer.find(b"8=")
        if start < 0:
            return None
        length_start = self.buffer.find(SOH + b"9=", start)
        if length_start < 0:
            return None
        length_end = self.buffer.find(SOH, length_start + 1)
        if length_end < 0:
            return None
        body_length = int(self.buffer[length_start + 3 : length_end])
        body_end = length_end + 1 + body_length
        trailer_end = self.buffer.find(SOH, body_end)  # after "10=nnn"
        if trailer_end < 0:
            return None
        if not self.buffer.startswith(b"10=", body_end):
            raise ValueError(f"malformed FIX from the peer: {self.buffer[start:]!r}")
        data = self.buffer[start : trailer_end + 1]
        self.buffer = self.buffer[trailer_end + 1 :]
        return decode(data)
