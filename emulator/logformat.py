"""Log lines that a client cannot forge: control characters in a message are escaped.

Client IDs, topics, handler output and request paths are client-controlled and end up in
log messages. A newline in a client ID would otherwise start a line that looks like the
emulator's own ("... INFO emulator.broker: connected admin"), and an escape sequence would
drive the reader's terminal. ``SafeFormatter`` escapes them in the formatted message, once,
at the edge, so no call site has to remember to; tracebacks (which the emulator writes,
not clients) keep their newlines.
"""

from __future__ import annotations

import logging

# C0 controls (tab kept), DEL, C1 controls, and the Unicode line and paragraph separators.
_ESCAPES = {
    code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if code != 0x09
}
_ESCAPES.update({0x0A: "\\n", 0x0D: "\\r", 0x2028: "\\u2028", 0x2029: "\\u2029"})


def escape_controls(text: str) -> str:
    """``text`` with every control character written as an escape (``\\n``, ``\\x1b``)."""
    return text.translate(_ESCAPES)


class SafeFormatter(logging.Formatter):
    """A ``logging.Formatter`` whose message part never holds a raw control character."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = escape_controls(record.message)
        return super().formatMessage(record)
