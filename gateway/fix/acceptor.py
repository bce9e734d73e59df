"""The FIX 4.4 acceptor: QuickFIX's C++ engine (PyPI `quickfix-py`) runs the session layer
(logon, heartbeats, test requests, sequence numbers, resend requests and gap fills, resets,
logout, session-level rejects); this module bridges it to the gateway.

Threads. QuickFIX calls the application from its own threads. Everything that touches the
gateway runs on the gateway's event loop: each session's application messages go, in the
order received, to one worker task of that session, which calls the handlers
(`gateway.fix.orders`, `gateway.fix.market_data`). Messages go out through one sender
thread, never from the loop, because sending blocks until the message is in the store.

Sequence numbers live in the store (`gateway.store.fix_sessions`), through the writer:
- a message is recorded before QuickFIX writes it to the socket (`toApp`/`toAdmin` block on
  the commit), so a restart never reuses a number the counterparty has seen;
- a received message is recorded once its handler has run (in the session's order), so a
  crash before that makes the acceptor ask for it again (a resend), and ClOrdID idempotency
  turns a resent order into the same order;
- at start each session's numbers are set from the store. The bodies QuickFIX resends come
  from its file store beside the acceptor (`ISTHMUS_FIX_DIR`); the database keeps its own
  copy of every message sent, as the journal of what each desk was told.

Sessions are provisioned (`ISTHMUS_FIX_SESSIONS`: the counterparties' SenderCompIDs), as
QuickFIX's C++ acceptor accepts only configured sessions. Whoever logs on into one proves an
API key: Username (553) is the key id, Password (554) the hex HMAC-SHA256 that
`gateway.access.request_signing.request_signature` gives for
(SendingTime in unix ms, "FIX", "/fix/logon/<SenderCompID>/<TargetCompID>/<MsgSeqNum>", b"").
One session per key: a key logged on elsewhere is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import _quickfix
import quickfix as fix

from gateway.access.control import AccessControl, AuthenticationFailed
from gateway.access.request_signing import fix_logon_path, sending_time_ms
from gateway.access.trading import Caller
from gateway.config import Settings
from gateway.fix import reports
from gateway.fix.dictionary import build_dictionary
from gateway.fix.market_data import FixMarketData
from gateway.fix.orders import FixOrderEntry
from gateway.oms.group_commit import CommandResult
from gateway.runtime import Runtime
from gateway.store import access_repository, fix_sessions

log = logging.getLogger(__name__)

BEGIN_STRING = "FIX.4.4"
STORE_TIMEOUT = 10.0  # seconds a send may wait for its record in the store
POLL_PAUSE = 0.001  # between polls of the engine (pacing, not synchronization)
LOGOUT_WAIT = 3.0  # seconds a stop waits for logged-on sessions to log out
REVOCATION_CHECK = 1.0  # seconds between looks for revoked keys of logged-on sessions

ORDER_TYPES = frozenset({"D", "F", "G", "H", "q", "AB"})
MARKET_DATA_TYPES = frozenset({"x", "V"})


def _field(message: fix.Message, tag: int, header: bool = False) -> str | None:
    where = message.getHeader() if header else message
    if not where.isSetField(tag):
        return None
    return str(where.getField(tag))


@dataclass
class FixSession:
    """One provisioned session and, while logged on, who is on it."""

    key: str  # "FIX.4.4:ISTHMUS->DESK1"
    session_id: fix.SessionID
    counterparty: str
    caller: Caller | None = None
    key_id: str | None = None
    inbox: asyncio.Queue[tuple[str, fix.Message | None, int]] = field(default_factory=asyncio.Queue)
    worker: asyncio.Task[None] | None = None
    market_data: FixMarketData | None = None
    logons: int = 0
    # what the request being handled still waits for (its reports, its ClOrdID), and the
    # handled requests whose numbers are recorded once that is done, in order
    after: list[Awaitable[Any]] = field(default_factory=list)
    handled: asyncio.Queue[tuple[int, list[Awaitable[Any]]]] = field(default_factory=asyncio.Queue)
    recorder: asyncio.Task[None] | None = None

    @property
    def logged_on(self) -> bool:
        return self.caller is not None


class FixAcceptor:
    """Start it beside the API (`isthmus up`): `runtime.attach(FixAcceptor(...))` starts it
    with the single-writer roles (a replica: when it takes them over)."""

    def __init__(self, rt: Runtime, settings: Settings, data_dir: Path) -> None:
        self.rt = rt
        self.settings = settings
        self.data_dir = data_dir
        self.port = settings.fix_port or _free_port(settings.fix_host)
        self.comp_id = settings.fix_comp_id
        self.access = AccessControl(rt.settings, rt.read_engine, rt.writer, rt.clock, rt.signatures)
        self.orders = FixOrderEntry(rt, self.send)
        self.sessions: dict[str, FixSession] = {}
        self._by_key_id: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outbox: queue.Queue[tuple[fix.Message, fix.SessionID, Future[None]] | None] = (
            queue.Queue()
        )
        self._sender: threading.Thread | None = None
        self._acceptor: Any = None
        self._application: _Application | None = None
        self._store_factory: Any = None
        self._log_factory: Any = None
        self._settings: Any = None
        self._engine: threading.Thread | None = None
        self._revocations: asyncio.Task[None] | None = None
        self._stopping = threading.Event()

    # --- life -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping.clear()
        dictionary = await asyncio.to_thread(build_dictionary, self.data_dir / "FIX44-isthmus.xml")
        config = self.data_dir / "acceptor.cfg"
        config.write_text(self._config_text(dictionary))
        for counterparty in self.settings.fix_sessions:
            sid = fix.SessionID(BEGIN_STRING, self.comp_id, counterparty)
            session = FixSession(sid.toString(), sid, counterparty)
            session.worker = asyncio.create_task(self._work(session), name=f"fix-{counterparty}")
            session.recorder = asyncio.create_task(
                self._record(session), name=f"fix-{counterparty}-record"
            )
            self.sessions[session.key] = session
        await self.orders.start(self.sessions)
        # nobody is logged on to a session that is only starting (a crash left the names)
        keys = list(self.sessions)

        def nobody(connection: Any, now: datetime) -> None:
            for key in keys:
                fix_sessions.logged_on(connection, key, None, now)

        await self.rt.writer.execute(_command(nobody))
        # QuickFIX keeps raw pointers to these: they live as long as the acceptor
        self._settings = fix.SessionSettings(str(config))
        self._store_factory = fix.FileStoreFactory(self._settings)
        self._log_factory = fix.FileLogFactory(str(self.data_dir / "log"))
        self._application = _Application(self)
        self._acceptor = fix.SocketAcceptor(
            self._application, self._store_factory, self._settings, self._log_factory
        )
        self._sender = threading.Thread(target=self._send_loop, name="fix-sender", daemon=True)
        self._sender.start()
        await asyncio.to_thread(_quickfix.Acceptor_poll, self._acceptor)  # listens from here
        self._engine = threading.Thread(target=self._poll_loop, name="fix-engine", daemon=True)
        self._engine.start()
        self._revocations = asyncio.create_task(self._watch_revocations(), name="fix-keys")
        log.info("FIX acceptor on %s:%d as %s", self.settings.fix_host, self.port, self.comp_id)

    def _poll_loop(self) -> None:
        """QuickFIX's engine, polled on this thread from start to stop. Not its own
        `start()`/`stop()`: `Acceptor::stop` tears the socket server down from the calling
        thread while the engine's thread may be deleting it (quickfix/quickfix PR #740), a
        segfault in about one stop in ten. `_quickfix.Acceptor_poll` rather than the Python
        wrapper: the binding keeps the traceback of an exception raised in a callback
        (RejectLogon), and with it the calling frames, which would keep the engine alive."""
        acceptor = self._acceptor
        try:
            while not self._stopping.is_set():
                _quickfix.Acceptor_poll(acceptor)  # handles what is ready, returns at once
                self._stopping.wait(POLL_PAUSE)
            for session in self.sessions.values():
                engine_session = fix.Session.lookupSession(session.session_id)
                if engine_session is not None and engine_session.isLoggedOn():
                    engine_session.logout("the gateway is stopping")
            deadline = time.monotonic() + LOGOUT_WAIT
            while acceptor.isLoggedOn() and time.monotonic() < deadline:
                _quickfix.Acceptor_poll(acceptor)
                time.sleep(POLL_PAUSE)
            acceptor.stop(True)
        except Exception:
            log.exception("the FIX engine failed")
        finally:
            del acceptor

    async def stop(self) -> None:
        if self._acceptor is None:
            return
        # nothing more to send: the reports and the requests' handlers end first, then the
        # sender sends what is queued (each waits on the loop for its record: joined off the
        # loop), and only then the engine stops; sending to a stopped engine's session crashes
        await self.orders.stop()
        if self._revocations is not None:
            self._revocations.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._revocations
        for session in self.sessions.values():
            if session.market_data is not None:
                await session.market_data.close()
            if session.worker is not None:
                session.worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await session.worker
        self._outbox.put(None)
        if self._sender is not None:
            await asyncio.to_thread(self._sender.join, 10)
        self._stopping.set()
        if self._engine is not None:
            await asyncio.to_thread(self._engine.join, LOGOUT_WAIT + 5)
        for session in self.sessions.values():
            if session.recorder is not None:
                session.recorder.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await session.recorder
        # destroyed now, while what it points at lives: that also takes its sessions out of
        # QuickFIX's process-wide registry, so a later acceptor's register
        self._acceptor = None

    def _config_text(self, dictionary: Path) -> str:
        lines = [
            "[DEFAULT]",
            "ConnectionType=acceptor",
            f"SocketAcceptPort={self.port}",
            f"SocketAcceptHost={self.settings.fix_host}",
            "SocketReuseAddress=Y",
            "StartTime=00:00:00",
            "EndTime=00:00:00",
            "UseDataDictionary=Y",
            f"DataDictionary={dictionary}",
            "ValidateUserDefinedFields=Y",
            "AllowUnknownMsgFields=N",
            "RejectInvalidMessage=Y",
            "CheckLatency=N",
            "PersistMessages=Y",
            "TimestampPrecision=3",
            f"FileLogPath={self.data_dir / 'log'}",
            f"FileStorePath={self.data_dir / 'store'}",
        ]
        for counterparty in self.settings.fix_sessions:
            lines += [
                "[SESSION]",
                f"BeginString={BEGIN_STRING}",
                f"SenderCompID={self.comp_id}",
                f"TargetCompID={counterparty}",
            ]
        return "\n".join(lines) + "\n"

    # --- sending --------------------------------------------------------------------------

    def send(self, session: FixSession, message: fix.Message) -> Future[None]:
        """Queue `message` for the session (from the loop: never blocks). QuickFIX numbers
        it and records it in the store before it leaves; a session logged out gets it on
        its next logon, by its resend request. The future is done once it is recorded."""
        done: Future[None] = Future()
        self._outbox.put((message, session.session_id, done))
        return done

    def _send_loop(self) -> None:
        while True:
            item = self._outbox.get()
            if item is None:
                return
            message, sid, done = item
            try:
                fix.Session.sendToTarget(message, sid)
            except fix.SessionNotFound:
                log.warning("FIX session %s is gone: a message was not sent", sid.toString())
            except Exception:
                log.exception("sending a FIX message failed")
            finally:
                done.set_result(None)

    # --- from QuickFIX's threads ----------------------------------------------------------

    def on_loop(self, work: Awaitable[Any]) -> Any:
        """Run a coroutine on the gateway's loop and wait for it (only off the loop)."""
        assert self._loop is not None
        future: Any = asyncio.run_coroutine_threadsafe(work, self._loop)  # type: ignore[arg-type]
        return future.result(timeout=STORE_TIMEOUT)

    def restore(self, sid: fix.SessionID) -> None:
        """A session is created: its numbers from the store."""
        with self.rt.read_engine.connect() as connection:
            state = fix_sessions.load(connection, sid.toString())
        if state is None:
            return
        session = fix.Session.lookupSession(sid)
        session.setNextSenderMsgSeqNum(state.next_sender)
        session.setNextTargetMsgSeqNum(state.next_target)
        # the bodies for resends are in QuickFIX's file store (the binding's getStore() is a
        # pointer its own functions refuse, so the database's copy cannot be loaded back)

    def record_sent(self, message: fix.Message, sid: fix.SessionID) -> None:
        """Before QuickFIX writes `message`: its number and text are in the store."""
        header = message.getHeader()
        if header.isSetField(43) and header.getField(43) == "Y":
            return  # a resend (or a gap fill) reuses numbers already recorded
        seq = int(header.getField(34))
        raw = message.toString()
        key = sid.toString()

        def command(connection: Any, now: datetime) -> CommandResult[None]:
            fix_sessions.record_sent(connection, key, seq, raw, now)
            return CommandResult(None)

        self.on_loop(self.rt.writer.execute(command))

    def authenticate(self, logon: fix.Message, sid: fix.SessionID) -> None:
        """Raise RejectLogon unless the logon proves an API key not logged on elsewhere."""
        try:
            self._authenticate(logon, sid)
        except fix.RejectLogon:
            if _field(logon, 141) == "Y":
                # QuickFIX reset the session (numbers and resend store) before asking us: a
                # refused logon resets nothing, or anyone reaching the port could wipe a desk
                # whose session is away
                self._undo_reset(sid)
            raise

    def _undo_reset(self, sid: fix.SessionID) -> None:
        """Write the database's numbers and sent messages back into QuickFIX's file store
        (through a FileStore of our own on the same files), then have the session reload it."""
        with self.rt.read_engine.connect() as connection:
            state = fix_sessions.load(connection, sid.toString())
        if state is None:
            return
        store = fix.FileStore(fix.UtcTimeStamp(), str(self.data_dir / "store"), sid)
        for seq, raw in state.sent:
            store.set(seq, raw)
        store.setNextSenderMsgSeqNum(state.next_sender)
        store.setNextTargetMsgSeqNum(state.next_target)
        del store
        fix.Session.lookupSession(sid).refresh()

    def _authenticate(self, logon: fix.Message, sid: fix.SessionID) -> None:
        session = self.sessions[sid.toString()]
        key_id = _field(logon, 553)
        signature = _field(logon, 554)
        if not key_id or not signature:
            raise fix.RejectLogon("unauthenticated: Username (553) and Password (554) are needed")
        sent_at = _field(logon, 52, header=True) or ""
        seq = int(_field(logon, 34, header=True) or 0)
        try:
            timestamp = sending_time_ms(sent_at)
        except ValueError:
            raise fix.RejectLogon("unauthenticated: SendingTime is not a UTC timestamp") from None
        path = fix_logon_path(session.counterparty, self.comp_id, seq)
        try:
            principal = self.on_loop(
                self.access.signed_request(key_id, str(timestamp), signature, "FIX", path, b"")
            )
        except AuthenticationFailed as refused:
            raise fix.RejectLogon(f"{refused.code}: {refused.message}") from None
        holder = self._by_key_id.get(key_id)
        if holder is not None and holder != session.key and self.sessions[holder].logged_on:
            raise fix.RejectLogon(f"key_in_use: API key {key_id} is logged on in {holder}")
        self._by_key_id[key_id] = session.key
        session.key_id = key_id
        session.caller = Caller(principal, self.access)
        if _field(logon, 141) == "Y":  # both sides start again at 1
            self._journal(session, lambda c, now: fix_sessions.reset(c, session.key, now))

    def on_logon(self, sid: fix.SessionID) -> None:
        session = self.sessions[sid.toString()]
        session.logons += 1
        key_id = session.key_id

        async def started() -> None:
            def send(message: fix.Message) -> None:
                self.send(session, message)

            session.market_data = FixMarketData(self.rt, send)
            await self.rt.writer.execute(
                _command(lambda c, now: fix_sessions.logged_on(c, session.key, key_id, now))
            )

        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(started(), self._loop)

    def on_logout(self, sid: fix.SessionID) -> None:
        session = self.sessions.get(sid.toString())
        if session is None or session.caller is None:
            return
        session.caller = None
        if session.key_id is not None and self._by_key_id.get(session.key_id) == session.key:
            del self._by_key_id[session.key_id]
        market_data, session.market_data = session.market_data, None

        async def ended() -> None:
            if market_data is not None:
                await market_data.close()
            await self.rt.writer.execute(
                _command(lambda c, now: fix_sessions.logged_on(c, session.key, None, now))
            )

        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(ended(), self._loop)

    def received(self, message: fix.Message, sid: fix.SessionID, admin: bool) -> None:
        """Into the session's inbox, in order: application messages to handle, and the
        numbers of admin messages to record after what came before them."""
        session = self.sessions[sid.toString()]
        msg_type = str(message.getHeader().getField(35))
        seq = int(message.getHeader().getField(34))
        if admin and msg_type == "4":  # a gap fill or reset: NewSeqNo is expected next
            seq = int(message.getField(36)) - 1
        copy = None if admin else fix.Message(message)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(session.inbox.put_nowait, (msg_type, copy, seq))

    def _journal(self, session: FixSession, write: Callable[[Any, datetime], None]) -> None:
        self.on_loop(self.rt.writer.execute(_command(write)))

    # --- on the loop ----------------------------------------------------------------------

    async def _work(self, session: FixSession) -> None:
        while True:
            msg_type, message, seq = await session.inbox.get()
            if message is not None:
                try:
                    await self._handle(session, msg_type, message, seq)
                except Exception:
                    log.exception("FIX %s from %s failed", msg_type, session.counterparty)
                    self.send(
                        session,
                        reports.business_reject(
                            msg_type, seq, "0", "internal_error", "the gateway failed on it"
                        ),
                    )
            # handled (or admin): recorded once its reports are, while the next one goes on
            waiting, session.after = session.after, []
            session.handled.put_nowait((seq, waiting))

    async def _record(self, session: FixSession) -> None:
        """Record the numbers of handled requests, in order, each once what it waited for is
        in the store: the counterparty need not send them again."""
        while True:
            seq, waiting = await session.handled.get()
            for done in waiting:
                try:
                    await done
                except Exception:
                    log.exception("FIX %s: a record of request %d failed", session.key, seq)
            self.rt.writer.enqueue(_received(session.key, seq))

    async def _handle(
        self, session: FixSession, msg_type: str, message: fix.Message, seq: int
    ) -> None:
        caller = session.caller
        if caller is None:  # cannot happen: QuickFIX passes no app message before a logon
            return
        if msg_type in ORDER_TYPES:
            await self.orders.handle(session, caller, msg_type, message, seq)
        elif msg_type in MARKET_DATA_TYPES and session.market_data is not None:
            if msg_type == "x":
                await session.market_data.on_security_list_request(message)
            else:
                await session.market_data.on_market_data_request(message)
        else:
            self.send(
                session,
                reports.business_reject(
                    msg_type,
                    seq,
                    "3",
                    "unsupported_message_type",
                    f"MsgType {msg_type} is not served here",
                ),
            )

    async def _watch_revocations(self) -> None:
        """A revoked key's requests are refused from now on: its session is logged out too,
        not only its next logon (revocations are in the store, whichever process made them)."""
        while True:
            await asyncio.sleep(REVOCATION_CHECK)
            on = {s.key_id: s for s in self.sessions.values() if s.logged_on and s.key_id}
            if not on:
                continue

            for key_id in await asyncio.to_thread(self._revoked, list(on)):
                engine = fix.Session.lookupSession(on[key_id].session_id)
                if engine is not None:
                    engine.logout("unauthenticated: the API key was revoked")

    def _revoked(self, key_ids: list[str]) -> list[str]:
        with self.rt.read_engine.connect() as connection:
            stored = {k: access_repository.get_api_key(connection, k) for k in key_ids}
        return [k for k, key in stored.items() if key is None or key.revoked_at is not None]

    # --- the operator's view --------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "comp_id": self.comp_id,
            "sessions": [
                {
                    "session": s.key,
                    "counterparty": s.counterparty,
                    "logged_on": s.logged_on,
                    "key_id": s.key_id if s.logged_on else None,
                    "logons": s.logons,
                }
                for s in self.sessions.values()
            ],
        }


def _command(write: Callable[[Any, datetime], None]) -> Callable[[Any, datetime], Any]:
    def command(connection: Any, now: datetime) -> CommandResult[None]:
        write(connection, now)
        return CommandResult(None)

    return command


def _received(key: str, seq: int) -> Callable[[Any, datetime], Any]:
    def write(connection: Any, now: datetime) -> None:
        fix_sessions.record_received(connection, key, seq, now)

    return _command(write)


class _Application(fix.Application):  # type: ignore[misc]
    """QuickFIX's callbacks, on its threads. An exception escaping one makes the binding end
    the process, so each catches its own: a message not recorded as handled is asked for
    again after a restart, and a logon that cannot be checked is refused."""

    def __init__(self, acceptor: FixAcceptor) -> None:
        super().__init__()
        self.acceptor = acceptor

    def onCreate(self, sid: fix.SessionID) -> None:
        try:
            self.acceptor.restore(sid)
        except Exception:
            log.exception("FIX %s: its numbers could not be read from the store", sid.toString())

    def onLogon(self, sid: fix.SessionID) -> None:
        try:
            self.acceptor.on_logon(sid)
        except Exception:
            log.exception("FIX %s: logon bookkeeping failed", sid.toString())

    def onLogout(self, sid: fix.SessionID) -> None:
        try:
            self.acceptor.on_logout(sid)
        except Exception:
            log.exception("FIX %s: logout bookkeeping failed", sid.toString())

    def toAdmin(self, message: fix.Message, sid: fix.SessionID) -> None:
        try:
            self.acceptor.record_sent(message, sid)
        except Exception:
            log.exception("recording a FIX admin message failed")

    def fromAdmin(self, message: fix.Message, sid: fix.SessionID) -> None:
        if message.getHeader().getField(35) == "A":
            try:
                self.acceptor.authenticate(message, sid)
            except fix.RejectLogon:
                raise
            except Exception:
                log.exception("FIX %s: a logon could not be checked", sid.toString())
                raise fix.RejectLogon("internal_error: the logon could not be checked") from None
        try:
            self.acceptor.received(message, sid, admin=True)
        except Exception:
            log.exception("FIX %s: an admin message was not queued", sid.toString())

    def toApp(self, message: fix.Message, sid: fix.SessionID) -> None:
        try:
            self.acceptor.record_sent(message, sid)
        except Exception:
            log.exception("recording a FIX message failed: not sent")
            raise fix.DoNotSend() from None

    def fromApp(self, message: fix.Message, sid: fix.SessionID) -> None:
        try:
            self.acceptor.received(message, sid, admin=False)
        except Exception:  # not recorded as handled: asked for again after a restart
            log.exception("FIX %s: a message was not queued", sid.toString())


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
