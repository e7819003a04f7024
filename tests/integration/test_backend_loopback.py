"""The child backends listen on loopback only (issue 12): a real start of each backend kind,
then the kernel's own tables say where their processes listen.

Evidence two ways: every listening TCP socket owned by a backend process (read from
/proc/<pid>/fd and /proc/<pid>/net/tcp{,6}) is on a loopback address, and a connection to
each of this machine's other addresses on those ports is refused.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import socket
import struct
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from emulator.config import load_config
from emulator.services.backends import Backends

LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's st column
SIOCGIFADDR = 0x8915


def _descendants(pids: list[int]) -> set[int]:
    """The processes and all their children (a backend may fork helpers)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found = set(pids)
    grew = True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        found |= more
        grew = bool(more)
    return found


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """/proc/net/tcp{,6} print addresses as 32-bit words in host (little-endian) order."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(words)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def listening_sockets(pids: list[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state owned by these processes."""
    out: set[tuple[str, int]] = set()
    for pid in _descendants(pids):
        try:
            inodes = _socket_inodes(pid)
        except OSError:
            continue
        for table in ("tcp", "tcp6"):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                cols = line.split()
                if cols[3] == LISTEN and cols[9] in inodes:
                    host, port = cols[1].split(":")
                    out.add((str(_address(host)), int(port, 16)))
    return out


def machine_addresses() -> list[str]:
    """This machine's non-loopback unicast addresses (IPv4 by ioctl, IPv6 from /proc)."""
    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            try:
                packed = fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()))
            except OSError:
                continue  # no IPv4 address on this interface
            found.append(socket.inet_ntoa(packed[20:24]))
    if6 = Path("/proc/net/if_inet6")
    for line in if6.read_text().splitlines() if if6.exists() else []:
        found.append(str(ipaddress.IPv6Address(bytes.fromhex(line.split()[0]))))
    return [
        a
        for a in found
        if not (ipaddress.ip_address(a).is_loopback or ipaddress.ip_address(a).is_link_local)
    ]


@pytest.mark.parametrize("kind", ["moto", "local"])
async def test_child_backends_listen_on_loopback_only(kind: str) -> None:
    backends = Backends(load_config({"backend": kind}))
    assert backends.kind == kind
    try:
        await backends.start()
        listening = listening_sockets(backends.pids())
        ports = {port for _, port in listening}
        endpoint_ports = {urlsplit(url).port for url in backends.endpoints.values()}
        assert endpoint_ports <= ports, (backends.endpoints, listening)
        wide = {
            (host, port) for host, port in listening if not ipaddress.ip_address(host).is_loopback
        }
        assert not wide, f"{kind} listens beyond loopback: {sorted(wide)}"
        for address in machine_addresses():
            for port in ports:
                with pytest.raises(ConnectionRefusedError):
                    socket.create_connection((address, port), timeout=5).close()
    finally:
        await backends.stop()


def test_the_addresses_helper_reads_the_kernels_format() -> None:
    """127.0.0.1:8000 and [::]:4568 as /proc/net/tcp{,6} print them."""
    assert str(_address("0100007F")) == "127.0.0.1"
    assert str(_address("00000000000000000000000000000000")) == "::"
    assert str(_address("0000000000000000FFFF00000100007F")) == "127.0.0.1"


async def test_the_dynamodb_launcher_is_compiled_once(tmp_path: Path) -> None:
    """Against the installed jar, into the cache; a second start finds it there."""
    from emulator.services.backends import _dynamodb_jar, compile_dynamodb_launcher

    jar = _dynamodb_jar(load_config({}).node_modules)
    assert jar is not None
    first = await compile_dynamodb_launcher(jar, tmp_path)
    assert first is not None and (first / "DynamoDBLocalLoopback.class").is_file()
    stamp = (first / "DynamoDBLocalLoopback.class").stat().st_mtime_ns
    again = await compile_dynamodb_launcher(jar, tmp_path)
    assert again == first
    assert (again / "DynamoDBLocalLoopback.class").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no staging left behind


async def test_without_javac_dynamodb_local_runs_from_its_jar_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A JRE without javac cannot build the launcher: the jar itself, on all interfaces,
    with a warning naming the port."""
    from emulator.services.backends import _dynamodb_jar, dynamodb_local_argv

    jar = _dynamodb_jar(load_config({}).node_modules)
    assert jar is not None
    monkeypatch.setenv("PATH", str(tmp_path))  # no javac (nor anything else) on PATH
    argv = await dynamodb_local_argv(jar, 8123, "127.0.0.1", tmp_path / "cache")
    assert argv[argv.index("-jar") + 1] == str(jar)
    assert argv[-2:] == ["-port", "8123"] and "-disableTelemetry" in argv
    assert "listens on all interfaces on port 8123" in caplog.text
