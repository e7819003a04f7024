"""Wall-clock time in milliseconds, the unit AWS IoT uses for message timestamps and
retained messages' ``lastModifiedTime``.

The one place that reads the clock for them: parts that keep state take ``now_ms`` as an
argument (a ``Callable[[], int]``), so their tests can fix the time instead of reading it.
"""

from __future__ import annotations

import time


def now_ms() -> int:
    """Milliseconds since the epoch (wall clock, like AWS's ``timestamp()``)."""
    return int(time.time() * 1000)
