"""Process-aware log records: pid, name, request id and metadata; text and JSON."""

from __future__ import annotations

import json
import logging
import sys

from starlette.responses import PlainTextResponse

import beamish
from beamish import logs
from beamish.testing import ASGIClient, assert_receive
from beamish.web import Endpoint, Router

log = logging.getLogger("tests.logs")


class Kept(logging.Handler):
    """Keeps the records it gets."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def keeping() -> Kept:
    kept = Kept()
    kept.addFilter(logs.ProcessFilter())
    log.addHandler(kept)
    log.setLevel(logging.INFO)
    return kept


async def test_a_record_made_in_a_process_names_it_and_carries_its_metadata():
    kept = keeping()
    try:
        async def worker(parent):
            logs.metadata(user_id=7, job="import")
            log.info("working")
            logs.metadata(job=None)
            log.info("done")
            beamish.send(parent, "logged")

        pid = beamish.spawn_opt(worker, (beamish.self(),), name="importer")
        await assert_receive("logged")
        log.info("from the test process")
    finally:
        log.removeHandler(kept)
    working, done, ours = kept.records
    assert (working.pid, working.process_name) == (repr(pid), "importer")
    assert working.metadata == {"user_id": 7, "job": "import"}
    assert done.metadata == {"user_id": 7}  # None removed the key
    assert ours.pid == repr(beamish.self()) and ours.metadata == {}  # not the worker's


def test_a_record_outside_any_process_has_empty_fields():
    kept = keeping()
    try:
        log.warning("plain")
    finally:
        log.removeHandler(kept)
    [record] = kept.records
    assert (record.pid, record.process_name, record.request_id) == ("", "", "")


def test_a_calls_own_request_id_is_kept():
    kept = keeping()
    try:
        log.warning("told", extra={"request_id": "given"})
    finally:
        log.removeHandler(kept)
    assert kept.records[0].request_id == "given"


async def test_a_record_made_while_serving_a_request_carries_its_request_id():
    kept = keeping()
    router = Router()

    @router.get("/work")
    async def work(request):
        log.info("handling")
        return PlainTextResponse("ok")

    try:
        async with ASGIClient(Endpoint(router=router)) as client:
            response = await client.get("/work")
    finally:
        log.removeHandler(kept)
    [record] = kept.records
    assert record.request_id == response.headers["x-request-id"] != ""
    assert record.pid.startswith("<0.")


def test_the_text_and_json_formats():
    try:
        raise ValueError("bad input")
    except ValueError:
        record = log.makeRecord("tests.logs", logging.ERROR, __file__, 1, "failed %s", ("x",),
                                None, extra={"order": 42, "odd": object()})
        record.exc_info = sys.exc_info()
    record.pid, record.process_name, record.request_id = "<0.9.0>", "shop", "req-1"
    record.metadata = {"user_id": 7}
    line = logs.TextFormatter().format(record)
    assert "ERROR   <0.9.0> shop req=req-1 user_id=7 tests.logs: failed x" in line
    assert "ValueError: bad input" in line
    entry = json.loads(logs.JsonFormatter().format(record))
    assert entry["message"] == "failed x" and entry["level"] == "error"
    assert (entry["pid"], entry["process_name"], entry["request_id"]) == (
        "<0.9.0>", "shop", "req-1")
    assert entry["metadata"] == {"user_id": 7} and entry["order"] == 42
    assert entry["odd"].startswith("<object object")  # what JSON cannot hold: its repr
    assert "ValueError: bad input" in entry["exception"]
