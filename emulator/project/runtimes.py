"""Which Lambda runtimes the emulator runs, and under which runtime interface client.

AWS names a runtime by language and version (``python3.12``, ``nodejs22.x``). The emulator
runs Python functions under ``awslambdaric`` on its own Python, and Node.js functions
under AWS's npm ``aws-lambda-ric`` on the Node.js installed beside it (functions/runtimes.py
starts them). Node.js names AWS still lists (``nodejs18.x`` and later) run as they are;
the retired ones (``nodejs``, ``nodejs4.3`` ... ``nodejs16.x``) run too, on the installed
Node.js, with a warning: code written for them usually runs on a newer Node. Java, .NET,
Ruby, Go and custom (``provided.*``) runtimes cannot run: loading them is an error naming
the function and its runtime, never a worker of the wrong client. Pure: no I/O.
"""

from __future__ import annotations

import re
from enum import Enum

SUPPORTED_RUNTIMES = "python3.x (e.g. python3.12), nodejs18.x and later (e.g. nodejs22.x)"
OLDEST_CURRENT_NODE = 18  # the oldest nodejs<N>.x name run without a warning

_PYTHON = re.compile(r"python3\.\d+\Z")
_NODE = re.compile(r"nodejs(?:(\d+)(?:\.(?:\d+|x))?)?\Z")  # nodejs, nodejs4.3, nodejs20.x


class RuntimeKind(Enum):
    """The runtime interface client a function's workers run under."""

    PYTHON = "python"
    NODEJS = "nodejs"


def runtime_kind(runtime: str) -> RuntimeKind | None:
    """The client that runs ``runtime``; None for a runtime the emulator cannot run."""
    if _PYTHON.match(runtime):
        return RuntimeKind.PYTHON
    if _NODE.match(runtime):
        return RuntimeKind.NODEJS
    return None


def node_major(runtime: str) -> int | None:
    """The Node.js major version a ``nodejs*`` name stands for (``nodejs`` alone was 0.10)."""
    match = _NODE.match(runtime)
    if match is None:
        return None
    return int(match[1]) if match[1] else 0


def retired_node(runtime: str) -> bool:
    """A Node.js name AWS no longer lists (older than ``nodejs18.x``): it runs on the
    installed Node.js, with a warning."""
    major = node_major(runtime)
    return major is not None and major < OLDEST_CURRENT_NODE
