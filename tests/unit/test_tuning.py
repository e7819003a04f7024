"""Process tuning of ``up`` (emulator/tuning.py), in a child interpreter: it changes
process-wide state that this test process must keep."""

from __future__ import annotations

import json
import subprocess
import sys

from emulator.config import REPO_ROOT

PROBE = """
import gc, json
from emulator import tuning
before = gc.get_threshold()
tuning.apply()
print(json.dumps({
    "before": before,
    "after": gc.get_threshold(),
    "frozen": gc.get_freeze_count(),
    "heap": tuning._keep_free_heap(tuning.TRIM_THRESHOLD),
}))
"""


def test_apply_freezes_start_up_objects_and_raises_the_gc_threshold() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout)
    assert result["before"][0] == 700  # the interpreter's default, for contrast
    assert result["after"][0] == 20_000
    assert result["after"][1:] == result["before"][1:]
    assert result["frozen"] > 1_000  # modules and classes imported so far
    assert result["heap"] is (sys.platform == "linux")  # glibc here: mallopt took
