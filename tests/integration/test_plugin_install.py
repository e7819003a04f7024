"""The pytest plugin as a user meets it: this repository installed NON-editably into a fresh
virtual environment, a temporary project with the chat's rules and functions, and the
README's ``pytest.ini`` and example test, read from its fenced blocks and run by pytest in a
subprocess. Afterwards no process of the emulator (moto, Lambda workers) is left, after a
normal run and after a Ctrl-C in the middle of a test.

The venv reuses this environment's packages through a ``.pth`` line (offline and fast);
pip builds a wheel of a copy of the tree (``--no-build-isolation``, no index), so the
package data (the chat page) comes from the wheel, not from this checkout."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator.config import REPO_ROOT

RUN_TIMEOUT = 90  # seconds for each inner pytest run (a few seconds here)

# A sync test: urllib gets the page (package data of the wheel) and boto3 calls the data plane,
# both blocking the test's thread while the emulator, on its own thread, answers.
PAGE_TEST = """
import json
import urllib.request

import pytest


@pytest.mark.iot_emulator(rules=["rules/"])
def test_page_and_a_function_from_a_sync_test(iot_emulator):
    with urllib.request.urlopen(iot_emulator.http_url + "/lobby") as page:
        assert b"<html" in page.read().lower()
    iot_emulator.boto3_client("iot-data").publish(topic="notes/x", retain=True, payload=b"1")
    got = iot_emulator.boto3_client("iot-data").get_retained_message(topic="notes/x")
    assert got["payload"] == b"1"
"""

MISSING_TEST = """
import pytest


@pytest.mark.iot_emulator(rules=["no-such-rules/"])
def test_missing_rules(iot_emulator):
    pass
"""

# Holds a Lambda worker and moto, says so on stdout, then waits for the Ctrl-C.
INTERRUPTED_TEST = """
import threading

import pytest


@pytest.mark.iot_emulator(rules=["held.yaml"])
def test_interrupted(iot_emulator):
    iot_emulator.boto3_client("lambda").invoke(FunctionName="echo", Payload=b"{}")
    print("READY", flush=True)
    threading.Event().wait(60)
"""


HELD_FUNCTION = """
functions:
  - {functionName: echo, handler: handler.echo, codeUri: fn}
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with this repository installed from a wheel; returns its python."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    source.mkdir()
    for entry in REPO_ROOT.iterdir():  # pyproject, README, license...: whatever the build reads
        if entry.is_file():
            shutil.copy2(entry, source / entry.name)
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO_ROOT / "emulator", source / "emulator", symlinks=True, ignore=ignore)
    shutil.copytree(REPO_ROOT / "static", source / "static", ignore=ignore)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    ours = Path(pytest.__file__).resolve().parent.parent  # this environment's site-packages
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "_project_packages.pth").write_text(f"{ours}\n")
    pip = [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    pip += ["--no-index", "--ignore-installed", str(source)]
    subprocess.run(pip, check=True, capture_output=True, timeout=RUN_TIMEOUT)
    where = subprocess.run(
        [python, "-c", "import emulator.config as c; print(c.__file__, c.STATIC_DIR)"],
        check=True,
        capture_output=True,
        text=True,
        cwd=root,
    ).stdout.split()
    assert where[0].startswith(site), where  # the wheel's copy, not this checkout
    assert Path(where[1], "index.html").is_file(), where  # the page is package data
    return python


def readme_plugin_files() -> dict[str, str]:
    """The README's ``pytest.ini`` and example test, from its plugin section's fenced blocks."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("use the pytest plugin") :]
    section = section[: section.index("\n## ")]
    blocks = dict(re.findall(r"```(ini|python)\n(.*?)```", section, re.S))
    return {"pytest.ini": blocks["ini"], "test_chat.py": blocks["python"]}


def make_project(path: Path, files: dict[str, str]) -> Path:
    """A user's project: the chat's rules and functions, and ``files``."""
    path.mkdir()
    for name in ("rules", "lambdas"):
        shutil.copytree(REPO_ROOT / name, path / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name, text in {**readme_plugin_files(), **files}.items():
        (path / name).write_text(text)
    return path


def processes_of(python: Path, project: Path) -> Iterator[str]:
    """Live processes that run the venv's ``python`` (pytest, moto, Lambda workers) or work
    in ``project``."""
    venv = str(python.parent.parent)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(Path(entry.path, "cwd"))
        except OSError:  # gone, or not ours to read
            continue
        if stat[stat.rindex(")") + 2] == "Z":
            continue
        if venv in cmdline or cwd.startswith(str(project)):
            yield f"{entry.name}: {cmdline}"


def inner_pytest(python: Path) -> list[str]:
    return [str(python), "-m", "pytest", "-p", "no:cacheprovider", "-rA"]


def user_environ() -> dict[str, str]:
    """This environment without what our own pytest run sets for itself."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}


def test_the_readme_example_passes_from_a_non_editable_install(
    installed: Path, tmp_path: Path
) -> None:
    project = make_project(
        tmp_path / "project", {"test_page.py": PAGE_TEST, "test_missing.py": MISSING_TEST}
    )
    run = subprocess.run(
        # DeprecationWarnings are errors: the README's setup must not produce any.
        [*inner_pytest(installed), "-W", "error::DeprecationWarning"],
        cwd=project,
        env=user_environ(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    out = run.stdout + run.stderr
    assert "PASSED test_chat.py::test_welcome" in out, out
    assert "PASSED test_page.py::test_page_and_a_function_from_a_sync_test" in out, out
    missing = project / "no-such-rules"
    assert "ERROR at setup of test_missing_rules" in out, out
    assert f"\niot_emulator: rules path {missing} does not exist (" in out, out
    assert re.search(r"\b2 passed, 1 error in [0-9.]+s\b", out), out  # nothing else, no warning
    assert list(processes_of(installed, project)) == []


def test_ctrl_c_in_a_test_leaves_no_process(installed: Path, tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", {"test_interrupted.py": INTERRUPTED_TEST})
    (project / "fn").mkdir()
    (project / "fn" / "handler.py").write_text("def echo(event, context):\n    return event\n")
    (project / "held.yaml").write_text(HELD_FUNCTION)
    proc = subprocess.Popen(
        [*inner_pytest(installed), "-s", "test_interrupted.py"],
        cwd=project,
        env=user_environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:  # until the test holds moto and a worker (or pytest ends)
            lines.append(line)
            if "READY" in line:
                break
        assert lines and "READY" in lines[-1], "".join(lines)
        held = list(processes_of(installed, project))
        # moto, the Lambda worker, and pytest itself
        assert any("moto.server" in p for p in held), held
        assert any("awslambdaric" in p for p in held), held
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=RUN_TIMEOUT)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "KeyboardInterrupt" in rest, rest
    assert list(processes_of(installed, project)) == []
