"""A client-controlled string cannot forge a log line or drive the reader's terminal."""

from __future__ import annotations

import io
import logging

from emulator.logformat import SafeFormatter, escape_controls


def test_control_characters_are_escaped() -> None:
    assert escape_controls("a\nb\r\x1b[31m\x00\x7f\x85\u2028") == (
        "a\\nb\\r\\x1b[31m\\x00\\x7f\\x85\\u2028"
    )
    assert escape_controls("tab\tand ünïcödé stay") == "tab\tand ünïcödé stay"


def test_a_forged_client_id_stays_on_one_line_and_tracebacks_keep_theirs() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(SafeFormatter("%(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger("test_logformat")
    log.propagate = False
    log.addHandler(handler)
    try:
        log.warning("connected %s", "web-1\nINFO emulator.broker: connected admin")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed for %s", "x\ry")
    finally:
        log.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert (
        lines[0]
        == "WARNING test_logformat: connected web-1\\nINFO emulator.broker: connected admin"
    )
    assert lines[1] == "ERROR test_logformat: failed for x\\ry"
    assert lines[2] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: boom"
