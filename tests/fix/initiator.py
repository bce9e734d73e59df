"""A test-side FIX 4.4 initiator: a real QuickFIX `SocketInitiator`, so the engine, not the
test, runs the session layer (logon, heartbeats, sequence numbers, resends, logout).

The engine calls our `Application` on its own thread; the callbacks copy every received
message into queues, and the test waits on those queues (`next_app`, `next_admin`) or on the
logon/logout events, always with a timeout. The initiator signs its Logon (35=A) in `toAdmin`,
after the engine has filled SendingTime(52) and MsgSeqNum(34): see `sign_logon`.

QuickFIX holds raw pointers to the application, the factories and the settings, so all of
them stay referenced on the `FixInitiator` for its whole life, past `stop()`.
"""

from __future__ import annotations

import atexit
import queue
import sysconfig
import threading
import time
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import quickfix as fix
import quickfix44 as fix44

from gateway.access.request_signing import fix_logon_signature

BEGIN_STRING = "FIX.4.4"
FIX44_DICTIONARY = Path(sysconfig.get_path("data")) / "share" / "quickfix" / "FIX44.xml"

# tags the helpers below use
MSG_TYPE = 35
MSG_SEQ_NUM = 34
SENDER_COMP_ID = 49
TARGET_COMP_ID = 56
SENDING_TIME = 52
TEXT = 58
TEST_REQ_ID = 112
USERNAME = 553
PASSWORD = 554

LOGON = "A"
LOGOUT = "5"

BUY, SELL = "1", "2"  # Side(54)
GTC, IOC = "1", "3"  # TimeInForce(59)


def limit_order(
    cl_ord_id: str,
    account: str,
    quantity: str,
    price: str,
    *,
    side: str = BUY,
    time_in_force: str = GTC,
    instrument: str = "WETH/USDC",
    extra: Iterable[tuple[int, str]] = (),
) -> fix.Message:
    """A NewOrderSingle limit order (40=2), amounts as decimal text (never a double);
    `extra` tags are set last (they may replace one of these)."""
    message = fix44.NewOrderSingle()
    transact_time = datetime.now(UTC).strftime("%Y%m%d-%H:%M:%S.%f")[:-3]
    for tag, value in (
        (11, cl_ord_id),
        (1, account),
        (55, instrument),
        (54, side),
        (38, quantity),
        (40, "2"),
        (44, price),
        (59, time_in_force),
        (60, transact_time),
        *extra,
    ):
        message.setField(fix.StringField(tag, value))
    return message


def sign_logon(message: fix.Message, key_id: str, secret: str) -> None:
    """Set Username(553) and Password(554) on a Logon whose header is already filled (as it is
    when QuickFIX hands it to `Application.toAdmin`)."""
    header = message.getHeader()
    message.setField(USERNAME, key_id)
    message.setField(
        PASSWORD,
        fix_logon_signature(
            secret,
            header.getField(SENDING_TIME),
            header.getField(SENDER_COMP_ID),
            header.getField(TARGET_COMP_ID),
            header.getField(MSG_SEQ_NUM),
        ),
    )


def field(message: fix.Message, tag: int) -> str:
    """A field of the body, header or trailer; KeyError if the message has none."""
    value = maybe_field(message, tag)
    if value is None:
        raise KeyError(f"tag {tag} not in {printable(message)}")
    return value


def maybe_field(message: fix.Message, tag: int) -> str | None:
    """A field of the body, header or trailer, or None."""
    for part in (message, message.getHeader(), message.getTrailer()):
        if part.isSetField(tag):
            return str(part.getField(tag))
    return None


def msg_type(message: fix.Message) -> str:
    return str(message.getHeader().getField(MSG_TYPE))


def groups(
    message: fix.Message, count_tag: int, delimiter_tag: int, tags: Iterable[int]
) -> list[dict[int, str]]:
    """The entries of a repeating group, each as {tag: value} over those of `tags` it has.
    The message must have been parsed with a data dictionary (the engine's messages are)."""
    wanted = list(tags)
    entries: list[dict[int, str]] = []
    for number in range(1, message.groupCount(count_tag) + 1):
        group = fix.Group(count_tag, delimiter_tag)
        message.getGroup(number, group)
        entries.append({tag: str(group.getField(tag)) for tag in wanted if group.isSetField(tag)})
    return entries


def printable(message: fix.Message) -> str:
    return str(message.toString()).replace("\x01", "|")


def _copy(message: fix.Message) -> fix.Message:
    # the engine reuses (and frees) the message it passes to a callback
    return fix.Message(message)


class _Application(fix.Application):  # type: ignore[misc]
    """QuickFIX's callbacks, on the engine's thread: copy, queue, set events; never raise
    into the engine (an exception is kept for the test thread to report instead)."""

    def __init__(self, owner: FixInitiator) -> None:
        super().__init__()
        self.owner = owner

    def onCreate(self, session_id: fix.SessionID) -> None:
        pass

    def onLogon(self, session_id: fix.SessionID) -> None:
        self.owner._logged_out.clear()
        self.owner._logged_on.set()

    def onLogout(self, session_id: fix.SessionID) -> None:
        self.owner._logged_on.clear()
        self.owner._logged_out.set()

    def toAdmin(self, message: fix.Message, session_id: fix.SessionID) -> None:
        try:
            if msg_type(message) == LOGON:
                sign_logon(message, self.owner.key_id, self.owner.secret)
        except Exception as error:
            self.owner.errors.append(error)

    def fromAdmin(self, message: fix.Message, session_id: fix.SessionID) -> None:
        try:
            copy = _copy(message)
            if msg_type(copy) == LOGOUT and not self.owner._logged_on.is_set():
                self.owner.logon_text = maybe_field(copy, TEXT) or ""
            self.owner._admin.put(copy)
        except Exception as error:
            self.owner.errors.append(error)

    def toApp(self, message: fix.Message, session_id: fix.SessionID) -> None:
        pass

    def fromApp(self, message: fix.Message, session_id: fix.SessionID) -> None:
        try:
            self.owner._app.put(_copy(message))
        except Exception as error:
            self.owner.errors.append(error)


class _Inbox:
    """Messages in arrival order; `take` returns the first (of a MsgType), keeping the others
    queued in their order. One consumer: the test thread."""

    def __init__(self, source: queue.Queue[fix.Message]) -> None:
        self.source = source
        self.skipped: deque[fix.Message] = deque()

    def take(self, wanted: str | None, timeout: float) -> fix.Message | None:
        for index, message in enumerate(self.skipped):
            if wanted is None or msg_type(message) == wanted:
                del self.skipped[index]
                return message
        end = time.monotonic() + timeout
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return None
            try:
                message = self.source.get(timeout=remaining)
            except queue.Empty:
                return None
            if wanted is None or msg_type(message) == wanted:
                return message
            self.skipped.append(message)

    def pending(self) -> list[str]:
        return [printable(message) for message in self.skipped] + [
            printable(message) for message in list(self.source.queue)
        ]


_RUNNING: set[FixInitiator] = set()  # started, not stopped: never collected while running


@atexit.register
def _stop_running() -> None:
    """A test that forgot `stop()` must not leave engine threads calling into a finalizing
    interpreter."""
    for initiator in list(_RUNNING):
        initiator.stop()


class FixInitiator:
    """One FIX 4.4 session, SenderCompID `sender_comp_id` -> TargetCompID `target_comp_id`
    (the gateway is "ISTHMUS"), on 127.0.0.1:`port`, logging on with an API key.

    Its message store and logs live under `store_dir`: a new `FixInitiator` on the same
    `store_dir` continues the sequence numbers of the previous one (unless `reset_on_logon`).
    QuickFIX registers sessions process-wide by id: only one started, un-stopped initiator
    per (sender, target) at a time."""

    def __init__(
        self,
        *,
        port: int,
        sender_comp_id: str,
        key_id: str,
        secret: str,
        store_dir: Path,
        target_comp_id: str = "ISTHMUS",
        heartbeat: int = 30,
        reset_on_logon: bool = False,
        dictionary: Path | None = None,
    ) -> None:
        self.port = port
        self.sender_comp_id = sender_comp_id
        self.target_comp_id = target_comp_id
        self.key_id = key_id
        self.secret = secret
        self.store_dir = Path(store_dir)
        self.log_dir = self.store_dir / "log"
        self.heartbeat = heartbeat
        self.reset_on_logon = reset_on_logon
        self.dictionary = Path(dictionary) if dictionary is not None else FIX44_DICTIONARY
        self.session_id = fix.SessionID(BEGIN_STRING, sender_comp_id, target_comp_id)

        self.logon_text: str | None = None
        self.errors: list[BaseException] = []  # raised inside a callback, reported on waits
        self._logged_on = threading.Event()
        self._logged_out = threading.Event()
        self._app: queue.Queue[fix.Message] = queue.Queue()
        self._admin: queue.Queue[fix.Message] = queue.Queue()
        self._app_inbox = _Inbox(self._app)
        self._admin_inbox = _Inbox(self._admin)

        # everything QuickFIX points at, alive as long as this object
        self._application = _Application(self)
        self._settings: fix.SessionSettings | None = None
        self._store_factory: fix.FileStoreFactory | None = None
        self._log_factory: fix.FileLogFactory | None = None
        self._initiator: fix.SocketInitiator | None = None
        self._started = False

    # settings

    @property
    def settings_path(self) -> Path:
        return self.store_dir / "initiator.cfg"

    def settings_text(self) -> str:
        return "\n".join(
            [
                "[DEFAULT]",
                "ConnectionType=initiator",
                "SocketConnectHost=127.0.0.1",
                f"SocketConnectPort={self.port}",
                f"HeartBtInt={self.heartbeat}",
                "ReconnectInterval=1",
                "StartTime=00:00:00",
                "EndTime=00:00:00",
                "UseDataDictionary=Y",
                f"DataDictionary={self.dictionary}",
                f"ResetOnLogon={'Y' if self.reset_on_logon else 'N'}",
                f"FileStorePath={self.store_dir / 'store'}",
                f"FileLogPath={self.log_dir}",
                "ValidateUserDefinedFields=N",
                "",
                "[SESSION]",
                f"BeginString={BEGIN_STRING}",
                f"SenderCompID={self.sender_comp_id}",
                f"TargetCompID={self.target_comp_id}",
                "",
            ]
        )

    # lifecycle

    def start(self) -> None:
        if self._started:
            raise RuntimeError("a FixInitiator starts once; make a new one on the same store_dir")
        self._started = True
        if fix.Session.doesSessionExist(self.session_id):
            raise RuntimeError(
                f"QuickFIX already has a session {self.session_id} in this process:"
                " stop the FixInitiator (or engine) that owns it first"
            )
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.settings_path.write_text(self.settings_text())
        self._settings = fix.SessionSettings(str(self.settings_path))
        self._store_factory = fix.FileStoreFactory(self._settings)
        self._log_factory = fix.FileLogFactory(self._settings)
        self._initiator = fix.SocketInitiator(
            self._application, self._store_factory, self._settings, self._log_factory
        )
        self._initiator.start()
        _RUNNING.add(self)

    def stop(self) -> None:
        """Log out (waiting up to 5s for the peer's Logout), stop and destroy the engine.
        Safe twice. Takes about a second: the engine's thread, idle once disconnected, only
        sees the stop on its next 1s tick. (Logging out first keeps it at that: the engine's
        own graceful stop polls for the logout in whole seconds, up to ten.)"""
        if self._initiator is None:
            return
        session = fix.Session.lookupSession(self.session_id)
        if session is not None and session.isLoggedOn():
            # The engine acts on logout() when its thread next wakes up: on its 1s tick, or at
            # once if the peer sends something, here the Heartbeat answering a TestRequest.
            session.logout()
            test_request = fix.Message()
            test_request.getHeader().setField(MSG_TYPE, "1")
            test_request.setField(TEST_REQ_ID, "stop")
            fix.Session.sendToTarget(test_request, self.session_id)
            self._logged_out.wait(5)  # the peer's Logout, so both stores agree on the numbers
        self._initiator.stop(True)  # logged out already: no whole-second polling for it
        # Destroy the engine now (the factories and application it points at stay referenced
        # on self): that unregisters its session from QuickFIX's process-wide registry, so a
        # new FixInitiator for the same session starts cleanly.
        self._initiator = None
        _RUNNING.discard(self)

    def __enter__(self) -> FixInitiator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # state

    @property
    def session(self) -> fix.Session:
        session = fix.Session.lookupSession(self.session_id)
        if session is None:
            raise LookupError(f"no QuickFIX session {self.session_id} (not started, or stopped)")
        return session

    @property
    def logged_on(self) -> bool:
        return self._logged_on.is_set()

    def wait_logon(self, timeout: float = 10) -> None:
        """Until the session is logged on (both Logons exchanged)."""
        if not self._logged_on.wait(timeout):
            raise TimeoutError(self._report(f"no logon within {timeout}s"))

    def wait_logout(self, timeout: float = 10) -> None:
        """Until the session is no longer logged on after having sent a Logon: logged out,
        disconnected, or its logon refused (then `logon_text` says why, if the peer did)."""
        if not self._logged_out.wait(timeout):
            raise TimeoutError(self._report(f"no logout within {timeout}s"))

    # messages

    def send(self, message: fix.Message) -> None:
        if not fix.Session.sendToTarget(message, self.session_id):
            raise RuntimeError(self._report(f"QuickFIX did not send {printable(message)}"))

    def next_app(self, msg_type: str | None = None, timeout: float = 10) -> fix.Message:
        """The next application message received (or the next of `msg_type`; the others stay
        queued in order)."""
        message = self._app_inbox.take(msg_type, timeout)
        if message is None:
            raise TimeoutError(
                self._report(
                    f"no application message{f' of type {msg_type}' if msg_type else ''}"
                    f" within {timeout}s; queued: {self._app_inbox.pending()}"
                )
            )
        return message

    def next_admin(self, msg_type: str, timeout: float = 10) -> fix.Message:
        """The next session-level message of `msg_type` received ("A" logon, "0" heartbeat,
        "1" test request, "2" resend request, "3" reject, "4" sequence reset, "5" logout)."""
        message = self._admin_inbox.take(msg_type, timeout)
        if message is None:
            raise TimeoutError(
                self._report(
                    f"no admin message of type {msg_type} within {timeout}s;"
                    f" queued: {self._admin_inbox.pending()}"
                )
            )
        return message

    # diagnostics

    def event_log(self) -> str:
        """QuickFIX's event log of this session (connects, logons, rejects, resends)."""
        return self._log_text("event")

    def message_log(self) -> str:
        """Every message sent and received, as QuickFIX logged it."""
        return self._log_text("messages")

    def _log_text(self, kind: str) -> str:
        path = self.log_dir / (
            f"{BEGIN_STRING}-{self.sender_comp_id}-{self.target_comp_id}.{kind}.current.log"
        )
        return path.read_text(errors="replace") if path.exists() else ""

    def _report(self, what: str, lines: int = 25) -> str:
        tail = "\n".join(self.event_log().splitlines()[-lines:])
        messages = "\n".join(self.message_log().replace("\x01", "|").splitlines()[-lines:])
        parts = [f"{self.session_id}: {what}"]
        if self.logon_text is not None:
            parts.append(f"logon refused: {self.logon_text!r}")
        if self.errors:
            parts.append(f"errors in callbacks: {self.errors!r}")
        parts += [f"event log tail:\n{tail}", f"message log tail:\n{messages}"]
        return "\n".join(parts)
