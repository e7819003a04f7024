"""For the whole test run: nothing is kept in the repo's data directory.

An ``up`` started by a test (as a child process, it inherits this environment) or a
``load_config`` in a test runs in memory; the plugin's emulators are in memory anyway
(``TEST_SETTINGS``). Tests of the data directory (tests/integration/test_restart.py) take
the variable out of their child's environment and pass a temporary ``--data-dir``.
"""

from __future__ import annotations

import os

os.environ["EMULATOR_IN_MEMORY"] = "1"
