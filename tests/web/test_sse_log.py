"""The numbered history of an event stream: ids, the format, resume decisions (pure)."""

from __future__ import annotations

import json

import pytest

from beamish.web._sse_log import EventLog, Resume, SSEEvent, check_event_name, parse_id

EPOCH = "0123456789abcdef"
OTHER = "fedcba9876543210"


def log_of(*topics, capacity=100):
    log = EventLog(EPOCH, capacity)
    for topic in topics:
        log.follow(topic, from_start=True)
    return log


def test_ids_carry_the_epoch_and_parse_back():
    event = SSEEvent(EPOCH, 42, "t", "goal", b"{}")
    assert event.id == f"{EPOCH}-42"
    assert parse_id(event.id) == (EPOCH, 42)
    for bad in ["42", "", f"{EPOCH}-", f"{EPOCH}--1", f"{EPOCH}-01", f"{EPOCH.upper()}-1",
                f"{EPOCH}-1 ", f"x{EPOCH}-1", f"{EPOCH}-{'9' * 20}"]:
        assert parse_id(bad) is None, bad
    with pytest.raises(ValueError, match="16 lowercase hex digits"):
        EventLog("epoch", 10)


def test_the_wire_format_splits_every_kind_of_line_break():
    event = SSEEvent(EPOCH, 1, "t", "goal", b"a\r\nb\rc\nd\n")
    assert event.encode() == (
        f"id: {EPOCH}-1\nevent: goal\n".encode()
        + b"data: a\ndata: b\ndata: c\ndata: d\ndata: \n\n"
    )
    assert SSEEvent(EPOCH, 2, "t", None, b"x").wire == f"id: {EPOCH}-2\ndata: x\n\n".encode()


def test_event_names_are_one_line_and_not_the_streams_own():
    assert check_event_name(None) is None and check_event_name("goal") is None
    assert "one line" in check_event_name("a\rb")
    assert "one line" in check_event_name("a\nb")
    assert "the stream's own" in check_event_name("beamish:gap")
    assert "is a str" in check_event_name(3)


def test_a_new_client_gets_only_its_position():
    log = log_of("t")
    log.append("t", None, b"old")
    resume = log.resume(None, ["t"])
    assert resume == Resume(f"{EPOCH}-1")
    assert resume.encode() == f"id: {EPOCH}-1\n\n".encode()  # sets lastEventId, fires nothing


def test_a_client_resumes_with_the_events_of_its_topics_after_its_id():
    log = log_of("a", "b")
    for i in range(6):
        log.append("ab"[i % 2], None, str(i).encode())
    resume = log.resume(f"{EPOCH}-2", ["a"])
    assert resume.gap is None
    assert [e.data for e in resume.events] == [b"2", b"4"]
    # it ends on the stream's position, which the last replayed event is not
    assert resume.encode().endswith(f"id: {EPOCH}-5\ndata: 4\n\nid: {EPOCH}-6\n\n".encode())
    up_to_date = log.resume(f"{EPOCH}-6", ["a", "b"])
    assert up_to_date.events == () and up_to_date.encode() == b""


def test_topics_followed_from_the_start_resume_from_the_first_position():
    log = log_of("t")
    assert log.position == f"{EPOCH}-0"
    log.append("t", None, b"first")
    assert [e.data for e in log.resume(f"{EPOCH}-0", ["t"]).events] == [b"first"]


def gap(resume):
    assert resume.events == ()
    block = resume.encode().decode()
    assert block.startswith(f"id: {resume.position}\nevent: beamish:gap\ndata: ")
    return json.loads(block.split("data: ", 1)[1])


def test_ids_that_cannot_be_resumed_are_told_why():
    log = log_of("t")
    log.append("t", None, b"x")
    assert gap(log.resume("24", ["t"])) == {"reason": "malformed", "last_event_id": "24"}
    assert gap(log.resume("y" * 500, ["t"]))["last_event_id"] == "y" * 100
    assert gap(log.resume(f"{OTHER}-1", ["t"]))["reason"] == "restarted"
    assert gap(log.resume(f"{EPOCH}-2", ["t"])) == {
        "reason": "ahead", "last_event_id": f"{EPOCH}-2",
    }


def test_an_event_of_the_clients_topics_out_of_the_buffer_is_a_gap_others_are_not():
    log = log_of("busy", "quiet", capacity=3)
    log.append("quiet", None, b"q")  # 1
    start = log.position
    log.append("busy", None, b"b")  # 2
    for _ in range(3):
        log.append("busy", None, b"b")  # 3..5: events 1 and 2 leave the buffer
    assert gap(log.resume(start, ["busy"]))["reason"] == "expired"  # 2 is gone
    assert gap(log.resume(f"{EPOCH}-0", ["quiet"]))["reason"] == "expired"  # 1 is gone
    resumed = log.resume(start, ["quiet"])  # nothing of quiet after 1 was lost
    assert resumed.gap is None and resumed.events == ()
    assert [e.seq for e in log.resume(f"{EPOCH}-2", ["busy"]).events] == [3, 4, 5]
    assert log.buffered() == 3


def test_a_topic_let_go_and_followed_again_cannot_resume_from_before():
    log = EventLog(EPOCH, 100)
    log.follow("t")
    assert log.position == f"{EPOCH}-1"  # following takes a number
    log.append("t", None, b"x")
    seen = log.position
    log.unfollow("t")
    assert log.append("t", None, b"never numbered") is None
    log.follow("t")
    assert gap(log.resume(seen, ["t"]))["reason"] == "not_followed"
    after = log.position
    log.append("t", None, b"y")
    assert [e.data for e in log.resume(after, ["t"]).events] == [b"y"]


def test_a_buffer_of_none_keeps_nothing_and_says_so():
    log = log_of("t", capacity=0)
    log.append("t", None, b"x")
    assert log.buffered() == 0
    assert gap(log.resume(f"{EPOCH}-0", ["t"]))["reason"] == "expired"
    assert log.resume(f"{EPOCH}-1", ["t"]).gap is None
