"""The FIX test harness against a tiny QuickFIX acceptor, without the gateway: the initiator
logs on with a signed Logon, trades, and is refused with a wrong secret; the raw connection
frames, signs and parses messages as QuickFIX expects."""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import _quickfix  # type: ignore[import-not-found]  # the C extension under quickfix.py
import pytest
import quickfix as fix

from gateway.access.request_signing import fix_logon_signature
from tests.fix.initiator import (
    FIX44_DICTIONARY,
    FixInitiator,
    field,
    groups,
    maybe_field,
    msg_type,
)
from tests.fix.raw_session import RawFixConnection, encode, logon_fields, sending_time, value

KEY_ID = "key-desk1"
SECRET = "s3cret"
CUSTOM_TAG = 20001  # user-defined, not in FIX44.xml


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _ExchangeApplication(fix.Application):  # type: ignore[misc]
    """Checks the Logon's signature; answers each NewOrderSingle with a new ExecutionReport."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: queue.Queue[BaseException] = queue.Queue()
        self.executions = 0

    def onCreate(self, session_id: fix.SessionID) -> None:
        pass

    def onLogon(self, session_id: fix.SessionID) -> None:
        pass

    def onLogout(self, session_id: fix.SessionID) -> None:
        pass

    def toAdmin(self, message: fix.Message, session_id: fix.SessionID) -> None:
        pass

    def fromAdmin(self, message: fix.Message, session_id: fix.SessionID) -> None:
        if msg_type(message) != "A":
            return
        header = message.getHeader()
        expected = fix_logon_signature(
            SECRET,
            field(message, 52),
            header.getField(49),
            header.getField(56),
            header.getField(34),
        )
        if maybe_field(message, 553) != KEY_ID or maybe_field(message, 554) != expected:
            raise fix.RejectLogon("bad signature")

    def toApp(self, message: fix.Message, session_id: fix.SessionID) -> None:
        pass

    def fromApp(self, message: fix.Message, session_id: fix.SessionID) -> None:
        try:
            if msg_type(message) == "D":
                self.executions += 1
                if not fix.Session.sendToTarget(self._report(message), session_id):
                    raise RuntimeError("report not sent")
        except Exception as error:  # into the test, not into the engine
            self.errors.put(error)

    def _report(self, order: fix.Message) -> fix.Message:
        report = fix.Message()
        report.getHeader().setField(35, "8")
        for tag, text in [
            (37, f"order-{self.executions}"),
            (17, f"exec-{self.executions}"),
            (150, "0"),
            (39, "0"),
            (11, field(order, 11)),
            (55, field(order, 55)),
            (54, field(order, 54)),
            (151, field(order, 38)),
            (14, "0"),
            (6, "0"),
            (CUSTOM_TAG, "custom"),
        ]:
            report.setField(tag, text)
        for party, role in [("DESK1", "3"), ("ISTHMUS", "1")]:
            group = fix.Group(453, 448)
            group.setField(448, party)
            group.setField(447, "D")
            group.setField(452, role)
            report.addGroup(group)
        return report


class Exchange:
    """A QuickFIX acceptor with one static session, ISTHMUS <- DESK1, in memory.

    Driven by `poll()` on a thread of ours, never `start()`/`stop()`: QuickFIX's
    `Acceptor::stop` tears the socket server down from the calling thread while the engine's
    thread may be deleting it (quickfix/quickfix PR #740), a segfault about one stop in ten,
    and in every other stop right after a start. Polled, one thread does it all."""

    SESSION = fix.SessionID("FIX.4.4", "ISTHMUS", "DESK1")

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        settings_path = directory / "acceptor.cfg"
        settings_path.write_text(
            "\n".join(
                [
                    "[DEFAULT]",
                    "ConnectionType=acceptor",
                    f"SocketAcceptPort={self.port}",
                    "StartTime=00:00:00",
                    "EndTime=00:00:00",
                    "UseDataDictionary=Y",
                    f"DataDictionary={FIX44_DICTIONARY}",
                    "ValidateUserDefinedFields=N",
                    f"FileLogPath={directory / 'log'}",
                    "",
                    "[SESSION]",
                    "BeginString=FIX.4.4",
                    "SenderCompID=ISTHMUS",
                    "TargetCompID=DESK1",
                    "",
                ]
            )
        )
        # all referenced on self: QuickFIX keeps raw pointers to them
        self.application = _ExchangeApplication()
        self.settings = fix.SessionSettings(str(settings_path))
        self.store_factory = fix.MemoryStoreFactory()
        self.log_factory = fix.FileLogFactory(self.settings)
        self.acceptor: fix.SocketAcceptor | None = fix.SocketAcceptor(
            self.application, self.store_factory, self.settings, self.log_factory
        )
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="exchange", daemon=True)

    def start(self) -> None:
        assert self.acceptor is not None
        _quickfix.Acceptor_poll(self.acceptor)  # the first poll listens: on the port from here
        self.thread.start()

    def _run(self) -> None:
        # `_quickfix.Acceptor_poll`, not `self.acceptor.poll()`: the binding leaks the traceback
        # of an exception raised in a callback (RejectLogon here), and with it the callback's
        # calling frames; the Python `poll` wrapper's frame would keep the acceptor, and its
        # session in QuickFIX's registry, alive after `stop`.
        acceptor = self.acceptor
        assert acceptor is not None
        try:
            while not self.stopping.is_set():
                _quickfix.Acceptor_poll(acceptor)  # returns at once
                self.stopping.wait(0.001)  # pacing, not synchronization
            session = fix.Session.lookupSession(self.SESSION)
            if session is not None and session.isLoggedOn():
                session.logout()
                deadline = time.monotonic() + 3
                while acceptor.isLoggedOn() and time.monotonic() < deadline:
                    _quickfix.Acceptor_poll(acceptor)
                    time.sleep(0.001)
            acceptor.stop(True)
        except Exception as error:
            self.application.errors.put(error)
        finally:
            del acceptor

    def stop(self) -> None:
        if self.acceptor is None:
            return
        self.stopping.set()
        self.thread.join(10)
        assert not self.thread.is_alive()
        # destroyed now, while the application and factories it points at are alive: that
        # also unregisters its session from QuickFIX's process-wide registry
        self.acceptor = None


@pytest.fixture
def exchange(tmp_path: Path) -> Iterator[Exchange]:
    exchange = Exchange(tmp_path / "exchange")
    exchange.start()
    yield exchange
    exchange.stop()
    assert exchange.application.errors.empty(), exchange.application.errors.get()
    assert not fix.Session.doesSessionExist(Exchange.SESSION)  # gone with its acceptor


def wrong_checksum(fields: list[tuple[int, str]]) -> str:
    correct = int(encode(fields)[-4:-1])
    return f"{(correct + 1) % 256:03d}"


def new_order(cl_ord_id: str) -> fix.Message:
    order = fix.Message()
    order.getHeader().setField(35, "D")
    for tag, text in [
        (11, cl_ord_id),
        (55, "ETH/USDC"),
        (54, "1"),
        (60, sending_time(datetime.now(UTC))),
        (38, "1.5"),
        (40, "2"),
        (44, "2000"),
    ]:
        order.setField(tag, text)
    return order


def test_initiator_logs_on_with_a_signed_logon_and_trades(
    exchange: Exchange, tmp_path: Path
) -> None:
    with FixInitiator(
        port=exchange.port,
        sender_comp_id="DESK1",
        key_id=KEY_ID,
        secret=SECRET,
        store_dir=tmp_path / "desk1",
    ) as desk:
        desk.wait_logon()
        assert desk.session.isLoggedOn()
        desk.send(new_order("order-a"))
        desk.send(new_order("order-b"))

        report = desk.next_app("8")
        assert field(report, 11) == "order-a"
        assert field(report, 49) == "ISTHMUS"  # header fields too
        assert field(report, CUSTOM_TAG) == "custom"  # user-defined tags pass validation
        assert groups(report, 453, 448, [448, 447, 452]) == [
            {448: "DESK1", 447: "D", 452: "3"},
            {448: "ISTHMUS", 447: "D", 452: "1"},
        ]
        assert field(desk.next_app(), 11) == "order-b"
        assert desk.logon_text is None
    desk.stop()  # a second stop is harmless
    assert "Initiated logon request" in desk.event_log()


def test_initiator_sequence_numbers_survive_a_new_initiator_on_the_same_store(
    exchange: Exchange, tmp_path: Path
) -> None:
    store = tmp_path / "desk1"
    with FixInitiator(
        port=exchange.port, sender_comp_id="DESK1", key_id=KEY_ID, secret=SECRET, store_dir=store
    ) as first:
        first.wait_logon()
        first.send(new_order("before"))
        first.next_app("8")
        sent = first.session.getExpectedSenderNum()
    with FixInitiator(
        port=exchange.port, sender_comp_id="DESK1", key_id=KEY_ID, secret=SECRET, store_dir=store
    ) as second:
        # on past what first sent (its Logout at least, a TestRequest or a Heartbeat too as
        # the timing falls): never back to 1
        assert second.session.getExpectedSenderNum() > sent
        second.wait_logon()
        assert int(field(second.next_admin("A"), 34)) > 1  # the exchange's numbers go on too
        second.send(new_order("after"))
        assert field(second.next_app("8"), 11) == "after"


def test_initiator_with_a_wrong_secret_is_refused(exchange: Exchange, tmp_path: Path) -> None:
    with FixInitiator(
        port=exchange.port,
        sender_comp_id="DESK1",
        key_id=KEY_ID,
        secret="wrong",
        store_dir=tmp_path / "desk1",
    ) as desk:
        desk.wait_logout()
        assert not desk.logged_on
        assert desk.logon_text == "Rejected Logon Attempt: bad signature"  # QuickFIX's prefix
        assert field(desk.next_admin("5"), 58) == desk.logon_text
        with pytest.raises(TimeoutError, match="bad signature"):
            desk.wait_logon(timeout=0.1)


def test_raw_connection_logs_on_and_quickfix_drops_a_bad_checksum(exchange: Exchange) -> None:
    now = datetime.now(UTC)
    with RawFixConnection() as raw:
        raw.connect(exchange.port)
        raw.send(encode(logon_fields("DESK1", "ISTHMUS", 1, KEY_ID, SECRET, now)))
        logon = raw.read_message()
        assert logon is not None
        assert value(logon, 35) == "A"
        assert value(logon, 49) == "ISTHMUS"

        # a garbled application message is dropped without an answer and without using up
        # its sequence number: the next message, same MsgSeqNum, is the one answered
        def order(cl_ord_id: str) -> list[tuple[int, str]]:
            return [
                (35, "D"),
                (49, "DESK1"),
                (56, "ISTHMUS"),
                (34, "2"),
                (52, sending_time(now)),
                (11, cl_ord_id),
                (55, "ETH/USDC"),
                (54, "1"),
                (60, sending_time(now)),
                (38, "1"),
                (40, "1"),
            ]

        raw.send(
            encode(order("bad"), checksum=wrong_checksum(order("bad"))) + encode(order("good"))
        )
        report = raw.read_message()
        assert report is not None
        assert (value(report, 35), value(report, 11), value(report, 34)) == ("8", "good", "2")


def test_raw_connection_logon_with_a_bad_checksum_is_dropped(exchange: Exchange) -> None:
    fields = logon_fields("DESK1", "ISTHMUS", 1, KEY_ID, SECRET, datetime.now(UTC))
    with RawFixConnection() as raw:
        raw.connect(exchange.port)
        raw.send(encode(fields, checksum=wrong_checksum(fields)))
        assert raw.read_message() is None  # QuickFIX hangs up without a word
