"""The access log's lazy atoms give what hypercorn's own atoms give, for every atom it has."""

import logging
import os

import pytest
from hypercorn.logging import AccessLogAtoms
from hypercorn.typing import ConnectionState, HTTPScope, ResponseSummary

from flowtrux.http.access_log import ATOMS, LazyAtoms

REQUEST: HTTPScope = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "POST",
    "scheme": "http",
    "path": "/api/workflows/wf-1/execute",
    "raw_path": b"/api/workflows/wf-1/execute",
    "query_string": b"a=1",
    "root_path": "",
    "headers": [(b"User-Agent", b"curl/8"), (b"x-twice", b"1"), (b"X-Twice", b"2")],
    "client": ("127.0.0.1", 5000),
    "server": ("127.0.0.1", 8000),
    "state": ConnectionState({}),
    "extensions": {},
}
RESPONSE: ResponseSummary = {"status": 200, "headers": [(b"content-length", b"42")]}
SIMPLE = [atom for atom in ATOMS if atom != "t"] + ["nonesuch"]  # the time moves
NAMED = ["{user-agent}i", "{X-TWICE}i", "{nonesuch}i", "{Content-Length}o", "{path}e", "{x}o"]
NAMED += ["{User-Agent}I", "{CONTENT-LENGTH}O", "{Path}E"]  # hypercorn lowers the suffix too


@pytest.mark.parametrize("response", [RESPONSE, None])
def test_every_atom_is_what_hypercorn_makes(response: ResponseSummary | None) -> None:
    hypercorn, lazy = AccessLogAtoms(REQUEST, response, 1.25), LazyAtoms(REQUEST, response, 1.25)
    assert {key: lazy[key] for key in SIMPLE + NAMED} == {
        key: hypercorn[key] for key in SIMPLE + NAMED
    }
    assert lazy["{path}e"] == os.environ["PATH"]


def test_a_logger_writes_the_line_hypercorn_writes(caplog: pytest.LogCaptureFixture) -> None:
    line = '%(h)s %(l)s %(l)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'  # hypercorn's, but the time
    logger = logging.getLogger("test.access")
    with caplog.at_level(logging.INFO, logger="test.access"):
        logger.info(line, LazyAtoms(REQUEST, RESPONSE, 0.1))
        logger.info(line, AccessLogAtoms(REQUEST, RESPONSE, 0.1))
    lazy, upstream = (record.getMessage() for record in caplog.records)
    assert (
        lazy
        == upstream
        == '127.0.0.1:5000 - - "POST /api/workflows/wf-1/execute 1.1" 200 42 "-" "curl/8"'
    )
