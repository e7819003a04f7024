"""A second ``make run`` beside a running one: ``up`` says in one line which port is taken
and exits 1, before it starts any backend (no traceback, no tables created for nothing)."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from emulator.config import REPO_ROOT


@pytest.mark.parametrize(
    ("name", "flag", "other"),
    [("MQTT", "--mqtt-port", "--http-port"), ("HTTP", "--http-port", "--mqtt-port")],
)
def test_a_port_in_use_is_one_clear_line_and_exit_1(name: str, flag: str, other: str) -> None:
    with socket.socket() as holder:  # as the running emulator holds it
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "emulator", "up", flag, str(port), other, "0"]
            + ["--backend", "moto", "--in-memory"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].endswith(
        f"ERROR   emulator: cannot start: {name} port {port} on 127.0.0.1: address already in "
        f"use (is another emulator running? choose another port with {flag}, 0 for any free one)"
    ), lines[0]
