"""The FIX session layer of the gateway over real sockets: logons refused with their stable
codes, one session per API key, sequence gaps both ways, resends of what the acceptor sent,
a restart that goes on with the same numbers and keeps the reports a desk has not had yet,
bad input on a raw connection, message types nobody serves, and a key revoked while its
session is on. After each refusal or piece of bad input a correct desk still logs on and
trades: one bad counterparty never stops the acceptor.

Nothing here sleeps to synchronize: every wait is on a message (or a logon/logout event)
with a timeout. Where only the absence of something can be checked, a later message the
same session handles in order (a "fence") bounds the wait."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import quickfix as fix
import quickfix44 as fix44

from tests.fix.conftest import ACCOUNT, FixGateway, fix_gateway_in
from tests.fix.initiator import FixInitiator, field, limit_order, maybe_field
from tests.fix.raw_session import (
    Fields,
    RawFixConnection,
    checksum_of,
    decode,
    encode,
    logon_fields,
    printable,
    sending_time,
    value,
)
from tests.operator_access import operator_headers

TIMEOUT = 5.0  # seconds: a bound on waiting for a message, never a synchronization
REFUSED = "Rejected Logon Attempt: "  # QuickFIX's prefix to the Text of a RejectLogon
_ids = itertools.count(1)


# --- helpers ------------------------------------------------------------------------------


def new_order(cl_ord_id: str, price: str = "2900") -> fix.Message:
    """A resting limit buy: nothing on the book crosses it, so its one report is New."""
    return limit_order(cl_ord_id, ACCOUNT, "1", price)


def order_fields(sender: str, seq: int, cl_ord_id: str, *extra: tuple[int, str]) -> Fields:
    """The same order as raw fields, header first, `extra` at the end of the body."""
    now = sending_time(datetime.now(UTC))
    return [
        (35, "D"),
        (49, sender),
        (56, "ISTHMUS"),
        (34, str(seq)),
        (52, now),
        (11, cl_ord_id),
        (1, ACCOUNT),
        (55, "WETH/USDC"),
        (54, "1"),
        (38, "1"),
        (40, "2"),
        (44, "2900"),
        (59, "1"),
        (60, now),
        *extra,
    ]


def refusal_code(text: str | None) -> str:
    """The stable code a refused logon's Logout Text starts with (after QuickFIX's prefix)."""
    assert text is not None and text.startswith(REFUSED), text
    return text.removeprefix(REFUSED).split(":", 1)[0]


def client_order_ids(gw: FixGateway) -> list[str]:
    listed = gw.client.get("/v1/orders", params={"account": ACCOUNT}, headers=operator_headers())
    assert listed.status_code == 200, listed.text
    return sorted(order["client_order_id"] for order in listed.json()["items"])


def still_serving(gw: FixGateway, sender: str = "DESK1") -> None:
    """A correct desk (a new key, a new store) logs on as `sender` and its order is New."""
    cl_ord_id = f"serving-{next(_ids)}"
    with gw.desk(sender) as desk:
        desk.wait_logon(TIMEOUT)
        desk.send(new_order(cl_ord_id))
        report = desk.next_app("8", TIMEOUT)
        assert (field(report, 11), field(report, 150), field(report, 39)) == (cl_ord_id, "0", "0")


def raw_logon(gw: FixGateway, raw: RawFixConnection, sender: str = "MM1") -> None:
    """A correctly signed logon on a raw connection, both sides starting at 1."""
    key_id, secret = gw.api_key()
    raw.connect(gw.port)
    now = datetime.now(UTC)
    raw.send(encode(logon_fields(sender, "ISTHMUS", 1, key_id, secret, now, reset_seq_num=True)))
    logon = raw.read_message(TIMEOUT)
    assert logon is not None and value(logon, 35) == "A", logon
    assert (value(logon, 34), value(logon, 141)) == ("1", "Y")


def read(raw: RawFixConnection) -> Fields:
    message = raw.read_message(TIMEOUT)
    assert message is not None, "the acceptor closed the connection"
    return message


@contextmanager
def raw_session(gw: FixGateway, sender: str = "MM1") -> Iterator[RawFixConnection]:
    """A raw connection logged on as `sender` (numbers from 1 both ways), the next message
    it sends is number 2."""
    with RawFixConnection() as raw:
        raw_logon(gw, raw, sender)
        yield raw


def expect_new(raw: RawFixConnection, cl_ord_id: str, seq: int) -> None:
    """The next message from the acceptor is the New report of `cl_ord_id`, numbered `seq`."""
    report = read(raw)
    assert (value(report, 35), value(report, 11)) == ("8", cl_ord_id), printable(report)
    assert (value(report, 150), int(value(report, 34))) == ("0", seq)


def fence(gw: FixGateway) -> None:
    """Once this returns, every report the order service's events made so far is numbered
    and stored: reports go out in the order of those events, and the order entered here (on
    a raw session as MM1) is reported after them."""
    cl_ord_id = f"fence-{next(_ids)}"
    with raw_session(gw) as raw:
        raw.send(encode(order_fields("MM1", 2, cl_ord_id)))
        expect_new(raw, cl_ord_id, 2)


def logged(desk: FixInitiator, sender: str | None = "ISTHMUS") -> list[Fields]:
    """The messages of QuickFIX's message log of `desk` (every one sent or received, in
    order; a received one is logged as it arrives, before the engine acts on it) that
    `sender` sent (None: all)."""
    messages = []
    for line in desk.message_log().splitlines():
        _, separator, raw = line.partition(" : ")
        if separator and raw.startswith("8=FIX"):
            fields = decode(raw.encode())
            if sender is None or value(fields, 49) == sender:
                messages.append(fields)
    return messages


def since_last_logon(desk: FixInitiator) -> list[Fields]:
    """The logged messages both ways from the desk's last Logon on."""
    messages = logged(desk, None)
    logons = [
        i for i, m in enumerate(messages) if value(m, 35) == "A" and value(m, 49) != "ISTHMUS"
    ]
    return messages[logons[-1] :]


def maybe(fields: Fields, tag: int) -> str | None:
    return next((text for t, text in fields if t == tag), None)


def content(fields: Fields) -> list[tuple[int, str]]:
    """What a resend must repeat: everything but the framing and the sending times."""
    return sorted((tag, text) for tag, text in fields if tag not in (9, 10, 43, 52, 122))


# --- logon --------------------------------------------------------------------------------


def refuse_with_desk(gw: FixGateway, key: tuple[str, str]) -> str:
    """A QuickFIX desk logs on with `key`: its refusal's code. Stopped at once, before the
    engine's next reconnect."""
    desk = gw.desk("DESK1", key)
    with desk:
        desk.wait_logout(TIMEOUT)
        assert not desk.logged_on
        return refusal_code(desk.logon_text)


def refuse_raw(gw: FixGateway, fields: Fields) -> str:
    """A raw logon: the code of its Logout, after which the acceptor hangs up."""
    with RawFixConnection() as raw:
        raw.connect(gw.port)
        raw.send(encode(fields))
        logout = read(raw)
        assert value(logout, 35) == "5", printable(logout)
        assert raw.closed(TIMEOUT)
        return refusal_code(value(logout, 58))


def test_a_wrong_signature_is_refused_with_bad_signature(fix_gateway: FixGateway) -> None:
    key_id, _ = fix_gateway.api_key()
    assert refuse_with_desk(fix_gateway, (key_id, "not-the-secret")) == "bad_signature"
    still_serving(fix_gateway)


def test_an_unknown_key_is_refused_as_unauthenticated(fix_gateway: FixGateway) -> None:
    assert refuse_with_desk(fix_gateway, ("key_0000000000000000", "0" * 64)) == "unauthenticated"
    still_serving(fix_gateway)


def test_a_revoked_key_is_refused_as_unauthenticated(fix_gateway: FixGateway) -> None:
    key = fix_gateway.api_key()
    revoked = fix_gateway.client.delete(f"/v1/api-keys/{key[0]}", headers=operator_headers())
    assert revoked.status_code == 200 and revoked.json()["revoked_at"], revoked.text
    assert refuse_with_desk(fix_gateway, key) == "unauthenticated"
    still_serving(fix_gateway)


def test_a_sending_time_minutes_away_is_refused_as_stale(fix_gateway: FixGateway) -> None:
    # QuickFIX's own SendingTime check is off (CheckLatency=N): the signature's window decides
    key_id, secret = fix_gateway.api_key()
    for minutes in (-5, 5):
        when = datetime.now(UTC) + timedelta(minutes=minutes)
        fields = logon_fields("DESK1", "ISTHMUS", 1, key_id, secret, when)
        assert refuse_raw(fix_gateway, fields) == "stale_request"
    still_serving(fix_gateway)


def test_a_logon_without_username_or_password_is_unauthenticated(fix_gateway: FixGateway) -> None:
    key_id, secret = fix_gateway.api_key()
    for missing in (553, 554):
        fields = logon_fields("DESK1", "ISTHMUS", 1, key_id, secret, datetime.now(UTC))
        fields = [(tag, text) for tag, text in fields if tag != missing]
        assert refuse_raw(fix_gateway, fields) == "unauthenticated"
    still_serving(fix_gateway)


def test_a_key_logs_on_in_one_session_at_a_time(fix_gateway: FixGateway) -> None:
    key = fix_gateway.api_key()
    first = fix_gateway.desk("DESK1", key)
    with first:
        first.wait_logon(TIMEOUT)
        with fix_gateway.desk("DESK2", key) as second:
            second.wait_logout(TIMEOUT)
            assert refusal_code(second.logon_text) == "key_in_use"
            assert first.logged_on
            first.send(new_order("first-1"))
            assert field(first.next_app("8", TIMEOUT), 11) == "first-1"
            first.stop()
            # the engine logs on again by itself (ReconnectInterval=1): the key is free now
            second.wait_logon(TIMEOUT)
            second.send(new_order("second-1"))
            report = second.next_app("8", TIMEOUT)
            assert (field(report, 11), field(report, 150)) == ("second-1", "0")


def test_a_second_connection_to_a_session_on_is_hung_up_on(fix_gateway: FixGateway) -> None:
    """QuickFIX takes one connection per session: a second one, even with a good signature
    of another key and a reset asked, is closed without a word and the session goes on."""
    with fix_gateway.desk() as desk:
        desk.wait_logon(TIMEOUT)
        desk.send(new_order("on-1"))
        before = int(field(desk.next_app("8", TIMEOUT), 34))
        key_id, secret = fix_gateway.api_key()
        with RawFixConnection() as raw:
            raw.connect(fix_gateway.port)
            now = datetime.now(UTC)
            logon = logon_fields("DESK1", "ISTHMUS", 1, key_id, secret, now, reset_seq_num=True)
            raw.send(encode(logon))
            assert raw.read_message(TIMEOUT) is None
        desk.send(new_order("on-2"))
        report = desk.next_app("8", TIMEOUT)
        assert (field(report, 11), int(field(report, 34))) == ("on-2", before + 1)
        assert desk.logged_on


def test_a_refused_logon_asking_for_a_reset_resets_nothing(fix_gateway: FixGateway) -> None:
    """QuickFIX resets a session's numbers and its resend store on a Logon with
    ResetSeqNumFlag before the application sees the Logon: a refused one must leave both as
    they were, or anyone who can reach the port breaks a desk's session while it is away."""
    key = fix_gateway.api_key()
    with fix_gateway.desk("DESK1", key) as desk:
        desk.wait_logon(TIMEOUT)
        desk.send(new_order("kept-1"))
        order_id = field(desk.next_app("8", TIMEOUT), 37)
    last = int(field(desk.next_admin("5", TIMEOUT), 34))  # the acceptor's answer to our Logout
    # cancelled while the desk is away: the report is numbered last + 1 and kept for it
    cancelled = fix_gateway.client.delete(f"/v1/orders/{order_id}", headers=operator_headers())
    assert cancelled.status_code == 200, cancelled.text
    fence(fix_gateway)
    intruder = logon_fields(
        "DESK1", "ISTHMUS", 1, key[0], "not-the-secret", datetime.now(UTC), reset_seq_num=True
    )
    assert refuse_raw(fix_gateway, intruder) == "bad_signature"
    with fix_gateway.desk("DESK1", key) as desk:  # the same store: its numbers go on
        desk.wait_logon(TIMEOUT)
        logon = desk.next_admin("A", TIMEOUT)
        # the report took last + 1, the Logout to the intruder last + 2: nothing went to 1
        assert (int(field(logon, 34)), maybe_field(logon, 141)) == (last + 3, None)
        report = desk.next_app("8", TIMEOUT)  # the report it missed, resent
        assert (field(report, 150), field(report, 11)) == ("4", "kept-1")
        assert (int(field(report, 34)), field(report, 43)) == (last + 1, "Y")
        asked = [m for m in logged(desk, "DESK1") if value(m, 35) == "2"]
        assert [(int(value(m, 7)), value(m, 16)) for m in asked] == [(last + 1, "0")]


# --- sequence numbers ---------------------------------------------------------------------


def test_a_gap_from_the_desk_is_asked_for_and_the_order_handled_once(
    fix_gateway: FixGateway,
) -> None:
    with fix_gateway.desk() as desk:
        desk.wait_logon(TIMEOUT)
        expected = desk.session.getExpectedSenderNum()
        desk.session.setNextSenderMsgSeqNum(expected + 5)
        desk.send(new_order("gap-1"))  # numbered expected + 5: five messages "lost"
        resend = desk.next_admin("2", TIMEOUT)
        # QuickFIX asks from the first missing number to infinity (EndSeqNo 0 in FIX 4.2+)
        assert (int(field(resend, 7)), field(resend, 16)) == (expected, "0")
        report = desk.next_app("8", TIMEOUT)
        assert (field(report, 11), field(report, 150)) == ("gap-1", "0")
        # the desk's engine filled the gap and sent the order again (PossDup), which the
        # acceptor had queued already: the next report is the fence's, not gap-1's again
        desk.send(new_order("fence-1"))
        fence = desk.next_app("8", TIMEOUT)
        assert (field(fence, 11), field(fence, 150)) == ("fence-1", "0"), fence.toString()
        sent = logged(desk, "DESK1")
        gap_fill = [m for m in sent if value(m, 35) == "4"]
        assert [(value(m, 34), value(m, 123), value(m, 36)) for m in gap_fill] == [
            (str(expected), "Y", str(expected + 5))
        ]
    assert client_order_ids(fix_gateway) == ["fence-1", "gap-1"]


def test_a_resend_request_repeats_the_reports_as_possible_duplicates(
    fix_gateway: FixGateway,
) -> None:
    with fix_gateway.desk() as desk:
        desk.wait_logon(TIMEOUT)
        reports = {}
        for n in range(3):
            desk.send(new_order(f"resend-{n}"))
            report = desk.next_app("8", TIMEOUT)
            reports[int(field(report, 34))] = report
        first, last = min(reports), max(reports)
        assert sorted(reports) == list(range(first, last + 1))

        # the desk asks for everything from the acceptor's Logon (1) to the last report
        request = fix44.ResendRequest()
        request.setField(fix.BeginSeqNo(1))
        request.setField(fix.EndSeqNo(last))
        desk.send(request)
        ping = fix44.TestRequest()
        ping.setField(fix.TestReqID("after-resend"))
        desk.send(ping)
        # the acceptor answers in order: once the Heartbeat is here, the resends are logged
        assert field(desk.next_admin("0", TIMEOUT), 112) == "after-resend"
        received = logged(desk)
        originals = {int(value(m, 34)): m for m in received if maybe(m, 43) is None}
        resent = [m for m in received if maybe(m, 43) == "Y"]
        # the admin messages (the Logon) as one gap fill up to the first report
        gap_fill, *again = resent
        assert (value(gap_fill, 35), value(gap_fill, 34)) == ("4", "1")
        assert (value(gap_fill, 123), int(value(gap_fill, 36))) == ("Y", first)
        # each report with its own number, its original SendingTime and the same content
        assert [int(value(m, 34)) for m in again] == sorted(reports)
        for message in again:
            original = originals[int(value(message, 34))]
            assert value(message, 35) == "8"
            assert value(message, 122) == value(original, 52)
            assert content(message) == content(original), printable(message)
        # too low for the desk's engine (it has them): not handed to the application again
        desk.send(new_order("fence-1"))
        assert field(desk.next_app("8", TIMEOUT), 11) == "fence-1"
        assert desk.logged_on
    assert client_order_ids(fix_gateway) == ["fence-1", "resend-0", "resend-1", "resend-2"]


# --- restart ------------------------------------------------------------------------------


def test_after_a_restart_the_session_goes_on_with_its_numbers_and_orders(
    tmp_path: Path,
) -> None:
    with fix_gateway_in(tmp_path) as before:
        key = before.api_key()
        with before.desk("DESK1", key) as desk:
            desk.wait_logon(TIMEOUT)
            ids = {}
            for cl_ord_id in ("before-1", "before-2"):
                desk.send(new_order(cl_ord_id))
                ids[cl_ord_id] = field(desk.next_app("8", TIMEOUT), 37)
        last = int(field(desk.next_admin("5", TIMEOUT), 34))  # the acceptor's Logout
        desk_next = desk_next_sender(desk)

    with fix_gateway_in(tmp_path) as after, after.desk("DESK1", key) as desk:  # the same store
        desk.wait_logon(TIMEOUT)
        logon = desk.next_admin("A", TIMEOUT)
        assert (int(field(logon, 34)), maybe_field(logon, 141)) == (last + 1, None)
        cancel = fix44.OrderCancelRequest()
        for tag, text in (
            (11, "cancel-1"),
            (41, "before-1"),  # a ClOrdID of the session before the restart
            (1, ACCOUNT),
            (55, "WETH/USDC"),
            (54, "1"),
            (60, sending_time(datetime.now(UTC))),
        ):
            cancel.setField(fix.StringField(tag, text))
        desk.send(cancel)
        cancelled = desk.next_app("8", TIMEOUT)
        assert (field(cancelled, 150), field(cancelled, 39)) == ("4", "4")
        assert (field(cancelled, 11), field(cancelled, 41)) == ("cancel-1", "before-1")
        assert field(cancelled, 37) == ids["before-1"]
        assert int(field(cancelled, 34)) == last + 2
        # both sides went on from where they were: no resend asked, no gap filled, no reset
        since_restart = since_last_logon(desk)
        assert int(value(since_restart[0], 34)) == desk_next
        assert [value(m, 35) for m in since_restart] == ["A", "A", "F", "8"], [
            printable(m) for m in since_restart
        ]
        # (the acceptor's engine counted the cancel before the gateway handled it)
        acceptor = fix.Session.lookupSession(fix.SessionID("FIX.4.4", "ISTHMUS", "DESK1"))
        assert acceptor.getExpectedTargetNum() == int(value(since_restart[2], 34)) + 1


def desk_next_sender(desk: FixInitiator) -> int:
    return int(value(logged(desk, "DESK1")[-1], 34)) + 1


def test_a_report_made_while_the_desk_was_away_survives_a_restart(tmp_path: Path) -> None:
    with fix_gateway_in(tmp_path) as before:
        key = before.api_key()
        with before.desk("DESK1", key) as desk:
            desk.wait_logon(TIMEOUT)
            desk.send(new_order("away-1"))
            order_id = field(desk.next_app("8", TIMEOUT), 37)
        last = int(field(desk.next_admin("5", TIMEOUT), 34))
        cancelled = before.client.delete(f"/v1/orders/{order_id}", headers=operator_headers())
        assert cancelled.status_code == 200, cancelled.text
        fence(before)  # the cancel's report for DESK1 is numbered and stored

    with fix_gateway_in(tmp_path) as after, after.desk("DESK1", key) as desk:
        desk.wait_logon(TIMEOUT)
        # the report took last + 1 before the restart: the Logon is last + 2, and the desk's
        # engine asks for the one it missed, which comes from the store as it was sent
        assert int(field(desk.next_admin("A", TIMEOUT), 34)) == last + 2
        report = desk.next_app("8", TIMEOUT)
        assert (field(report, 150), field(report, 11), field(report, 37)) == (
            "4",
            "away-1",
            order_id,
        )
        assert (int(field(report, 34)), field(report, 43)) == (last + 1, "Y")
        asked = [m for m in logged(desk, "DESK1") if value(m, 35) == "2"]
        assert [(int(value(m, 7)), value(m, 16)) for m in asked] == [(last + 1, "0")]


# --- bad input on a raw connection --------------------------------------------------------
#
# What QuickFIX (1.15, as the quickfix-py wheels build it) does, as the tests below find it:
# - a message whose CheckSum or BodyLength is wrong, or whose fields do not parse, is dropped
#   without an answer and without using up its MsgSeqNum: the next message may carry it;
# - a BodyLength too long makes the parser take the next message as the rest of this one:
#   both are dropped;
# - bytes before "8=" are skipped;
# - a tag the dictionary does not know, a known tag the message type does not have, and an
#   unknown MsgType get a session-level Reject (35=3) with SessionRejectReason 0, 2 and 11;
#   the rejected message uses up its number;
# - a wrong SenderCompID or TargetCompID gets a Reject with reason 9 (CompID problem) and a
#   Logout; the session still handles what comes until the Logout is answered, then hangs up;
# - a logon for a CompID that is not provisioned is hung up on without a word.


def expect_reject(raw: RawFixConnection, reason: str, ref_type: str, ref_tag: str | None) -> None:
    reject = read(raw)
    assert (value(reject, 35), value(reject, 45), value(reject, 372)) == ("3", "2", ref_type)
    assert (value(reject, 373), maybe(reject, 371)) == (reason, ref_tag), printable(reject)


def body(fields: Fields) -> bytes:
    return b"".join(f"{tag}={text}".encode() + b"\x01" for tag, text in fields)


def frame(payload: bytes, length: int | None = None, checksum: str | None = None) -> bytes:
    """`payload` (the fields after BodyLength, raw) with BeginString, BodyLength and CheckSum,
    right unless given."""
    head = b"8=FIX.4.4\x019=" + str(len(payload) if length is None else length).encode() + b"\x01"
    total = checksum_of(head + payload) if checksum is None else checksum
    return head + payload + f"10={total}".encode() + b"\x01"


def acceptor_events(gw: FixGateway, sender: str = "MM1") -> str:
    """QuickFIX's event log of the acceptor's session with `sender`."""
    return (
        gw.acceptor.data_dir / "log" / f"FIX.4.4-ISTHMUS-{sender}.event.current.log"
    ).read_text()


def wrong_checksum(bad: bytes) -> list[bytes]:
    right = int(frame(bad)[-4:-1])  # "10=nnn<SOH>" ends the message
    return [frame(bad, checksum=f"{(right + 1) % 256:03d}")]


def body_length_too_short(bad: bytes) -> list[bytes]:
    return [frame(bad, length=len(bad) - 5)]


def body_length_too_long(bad: bytes) -> list[bytes]:
    # the next message is read as the end of "bad", and dropped with it
    return [frame(bad, length=len(bad) + 5), encode(order_fields("MM1", 2, "swallowed"))]


def garbage_then_a_tag_that_is_no_number(bad: bytes) -> list[bytes]:
    return [
        b"\x00\xff not FIX at all \x01junk\x01",  # no "8=": skipped up to the next
        frame(bad.replace(b"\x0155=", b"\x015x=")),  # framed right (length, checksum)
    ]


@pytest.mark.parametrize(
    ("garble", "event"),
    [
        (wrong_checksum, "Invalid message: Expected CheckSum="),
        (body_length_too_short, "Invalid message: Expected BodyLength="),
        (body_length_too_long, "Invalid message: Expected BodyLength="),
        (garbage_then_a_tag_that_is_no_number, "Invalid message: Field tag is invalid: 5x"),
    ],
    ids=["wrong checksum", "body length too short", "body length too long", "garbage"],
)
def test_a_garbled_message_is_dropped_and_its_number_taken_by_the_next(
    fix_gateway: FixGateway, garble: Callable[[bytes], list[bytes]], event: str
) -> None:
    with raw_session(fix_gateway) as raw:
        for garbled in garble(body(order_fields("MM1", 2, "bad"))):
            raw.send(garbled)
        raw.send(encode(order_fields("MM1", 2, "good")))
        expect_new(raw, "good", 2)
    assert event in acceptor_events(fix_gateway)
    assert client_order_ids(fix_gateway) == ["good"]
    still_serving(fix_gateway)


@pytest.mark.parametrize(
    ("bad", "reason", "ref_type", "ref_tag"),
    [
        (order_fields("MM1", 2, "bad", (9999, "x")), "0", "D", "9999"),  # invalid tag number
        (order_fields("MM1", 2, "bad", (20003, "x")), "2", "D", "20003"),  # not for a D
        ([(35, "ZZ"), *order_fields("MM1", 2, "bad")[1:]], "11", "ZZ", None),  # MsgType
    ],
    ids=["unknown-tag", "tag-not-in-message", "unknown-msg-type"],
)
def test_an_invalid_field_or_type_gets_a_session_reject(
    fix_gateway: FixGateway, bad: Fields, reason: str, ref_type: str, ref_tag: str | None
) -> None:
    with raw_session(fix_gateway) as raw:
        raw.send(encode(bad))
        expect_reject(raw, reason, ref_type, ref_tag)
        raw.send(encode(order_fields("MM1", 3, "good")))  # the Reject used up number 2
        expect_new(raw, "good", 3)
    assert client_order_ids(fix_gateway) == ["good"]
    still_serving(fix_gateway)


@pytest.mark.parametrize(("tag", "wrong"), [(56, "OTHER"), (49, "DESK2")], ids=["target", "sender"])
def test_a_wrong_comp_id_gets_a_reject_and_a_logout(
    fix_gateway: FixGateway, tag: int, wrong: str
) -> None:
    with raw_session(fix_gateway) as raw:
        bad = [(t, wrong if t == tag else text) for t, text in order_fields("MM1", 2, "bad")]
        raw.send(encode(bad))
        expect_reject(raw, "9", "D", None)
        logout = read(raw)
        assert (value(logout, 35), int(value(logout, 34))) == ("5", 3)
        # until the Logout is answered the session goes on: the fence shows "bad" was not
        # handled (it would have been first)
        raw.send(encode(order_fields("MM1", 3, "fence")))
        expect_new(raw, "fence", 4)
        now = sending_time(datetime.now(UTC))
        raw.send(encode([(35, "5"), (49, "MM1"), (56, "ISTHMUS"), (34, "4"), (52, now)]))
        assert raw.closed(TIMEOUT)
    assert client_order_ids(fix_gateway) == ["fence"]
    still_serving(fix_gateway)


def test_a_logon_for_a_comp_id_not_provisioned_is_hung_up_on(fix_gateway: FixGateway) -> None:
    key_id, secret = fix_gateway.api_key()
    with RawFixConnection() as raw:
        raw.connect(fix_gateway.port)
        raw.send(encode(logon_fields("NOBODY", "ISTHMUS", 1, key_id, secret, datetime.now(UTC))))
        assert raw.read_message(TIMEOUT) is None  # closed, nothing said
    still_serving(fix_gateway)


# --- message types nobody serves ----------------------------------------------------------


def test_an_unsupported_message_type_gets_a_business_reject(fix_gateway: FixGateway) -> None:
    quote = fix44.Quote()
    for tag, text in ((117, "q-1"), (55, "WETH/USDC"), (132, "2990"), (133, "3010")):
        quote.setField(fix.StringField(tag, text))
    definition = fix44.SecurityDefinitionRequest()
    for tag, text in ((320, "sd-1"), (321, "3")):
        definition.setField(fix.StringField(tag, text))
    with fix_gateway.desk() as desk:
        desk.wait_logon(TIMEOUT)
        for message, msg_type in ((quote, "S"), (definition, "c")):
            seq = desk.session.getExpectedSenderNum()
            desk.send(message)
            reject = desk.next_app("j", TIMEOUT)
            assert (field(reject, 372), int(field(reject, 45))) == (msg_type, seq)
            assert (field(reject, 380), field(reject, 20003)) == ("3", "unsupported_message_type")
        # the session goes on
        desk.send(new_order("after-1"))
        assert field(desk.next_app("8", TIMEOUT), 11) == "after-1"


# --- a key revoked while its session is logged on -----------------------------------------


def test_revoking_a_key_logs_its_session_out(fix_gateway: FixGateway) -> None:
    """A revoked key's "requests are refused from now on" (DELETE /v1/api-keys/{key_id}):
    over FIX the session it logged on ends too, not only its next logon."""
    key = fix_gateway.api_key()
    with fix_gateway.desk("DESK1", key) as desk:
        desk.wait_logon(TIMEOUT)
        revoked = fix_gateway.client.delete(f"/v1/api-keys/{key[0]}", headers=operator_headers())
        assert revoked.status_code == 200, revoked.text
        desk.wait_logout(TIMEOUT)
        logout = desk.next_admin("5", TIMEOUT)
        assert field(logout, 58).startswith("unauthenticated"), logout.toString()


# --- a stop -------------------------------------------------------------------------------


def test_reports_of_changes_just_before_a_stop_reach_the_desk_after_the_restart(
    tmp_path: Path,
) -> None:
    """The gateway stops right after the operator cancels a desk's orders: their reports,
    being made as it stops, are numbered and kept like any other."""
    with fix_gateway_in(tmp_path) as before:
        key = before.api_key()
        with before.desk("DESK1", key) as desk:
            desk.wait_logon(TIMEOUT)
            for n in range(5):
                desk.send(new_order(f"late-{n}"))
                assert field(desk.next_app("8", TIMEOUT), 150) == "0"
        cancelled = before.client.post(
            "/v1/orders/cancel", json={"account": ACCOUNT}, headers=operator_headers()
        )
        assert cancelled.status_code == 200, cancelled.text

    with fix_gateway_in(tmp_path) as after, after.desk("DESK1", key) as desk:
        desk.wait_logon(TIMEOUT)
        reports = [desk.next_app("8", TIMEOUT) for _ in range(5)]
        assert sorted((field(r, 11), field(r, 150), field(r, 43)) for r in reports) == [
            (f"late-{n}", "4", "Y") for n in range(5)
        ]
