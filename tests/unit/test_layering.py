"""The layering of ``emulator/``, read from the source (tests/layering.py): no import cycles,
and the pure modules import no I/O.

Intended direction (lower never imports higher):
topics, messages, limits <- sql <- actions <- project <- rules <- app/cli/pytest_plugin, and
topics, messages, limits <- broker <- transport, dataplane <- app.
"""

from __future__ import annotations

import ast

import pytest

from tests.layering import ROOT, cycles, imports_of, module_graph, modules, package_graph

IO_MODULES = frozenset({"asyncio", "threading", "time", "random", "uuid", "os", "socket"})
SQL = "emulator.sql"
# Topic matching, and the message's MQTT 5 properties (pure data) that
# get_mqtt_property() and get_user_properties() read.
SQL_MAY_IMPORT = frozenset({"emulator.topics", "emulator.messages"})
# Modules the rest of the emulator treats as pure: no event loop, sockets or threads.
PURE_MODULES = (
    "emulator.topics",
    "emulator.limits",
    "emulator.arns",
    "emulator.broker.codec",
    "emulator.broker.amqtt_codec",
    "emulator.broker.policy",
    "emulator.broker.link",
    "emulator.broker.sessions",
    "emulator.broker.state",
    "emulator.broker.protocol",
    "emulator.broker.lifecycle",
    "emulator.actions.registry",
    "emulator.observe",
    "emulator.console.views",
)
NO_LOOP = frozenset({"asyncio", "socket", "threading"})
# datetime.now(), datetime.utcnow(), date.today(): clock reads without importing time
CLOCK_READS = frozenset({"now", "utcnow", "today"})


def _imports(module: str) -> set[str]:
    path = modules()[module]
    return imports_of(path, module, path.name == "__init__.py")


def _show(groups: list[list[str]]) -> str:
    return "\n".join(" <-> ".join(group) for group in groups)


def test_no_import_cycles_between_modules() -> None:
    found = cycles(module_graph())
    assert not found, "import cycles between modules:\n" + _show(found)


def test_no_import_cycles_between_packages() -> None:
    found = cycles(package_graph())
    assert not found, "import cycles between packages:\n" + _show(found)


def test_the_sql_language_imports_no_io() -> None:
    offending = {
        f"{module} imports {target}"
        for module in modules()
        if module == SQL or module.startswith(SQL + ".")
        for target in _imports(module)
        if target.split(".")[0] in IO_MODULES
    }
    assert not offending, "\n".join(sorted(offending))


def test_the_sql_language_imports_only_topics_and_messages_from_the_emulator() -> None:
    known = modules()
    offending = {
        f"{module} imports {target}"
        for module in known
        if module == SQL or module.startswith(SQL + ".")
        for target in _imports(module)
        # names, not modules (``from emulator.topics import matches``), and the bare root
        # package (which runs for every submodule anyway) are left out
        if target in known
        and target != "emulator"
        and not (target == SQL or target.startswith(SQL + "."))
        and target not in SQL_MAY_IMPORT
    }
    assert not offending, "\n".join(sorted(offending))


def test_the_sql_language_reads_no_clock() -> None:
    """``datetime.now()`` and friends are clock reads even without ``import time``."""
    offending = []
    for module, path in modules().items():
        if module == SQL or module.startswith(SQL + "."):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Attribute) and node.attr in CLOCK_READS:
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    offending.append(f"{where}: .{node.attr}")
    assert not offending, "\n".join(offending)


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_modules_import_no_event_loop_sockets_or_threads(module: str) -> None:
    offending = sorted(t for t in _imports(module) if t.split(".")[0] in NO_LOOP)
    assert not offending, f"{module} imports {', '.join(offending)}"


@pytest.mark.parametrize("module", [m for m in PURE_MODULES if m.startswith("emulator.broker.")])
def test_the_broker_state_machine_reads_no_clock_and_draws_no_randomness(module: str) -> None:
    """Time and identifiers come in as arguments (``now``, ``new_uuid``), so the unit tests
    drive takeover, keep-alive and expiry with a fake clock."""
    offending = sorted(t for t in _imports(module) if t.split(".")[0] in IO_MODULES)
    assert not offending, f"{module} imports {', '.join(offending)}"
