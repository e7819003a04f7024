"""requirements-dev.lock (what ``make install`` installs) and requirements.lock (what the
Dockerfile installs) pin every dependency of pyproject.toml, and everything those need in
turn, to one version with hashes: ``pip install --require-hashes`` refuses a requirement
missing from the file, so a gap would fail a fresh clone's ``make install``, not a test."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from emulator.config import REPO_ROOT

PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
RUNTIME = [Requirement(r) for r in PROJECT["dependencies"]]
DEV = [Requirement(r) for r in PROJECT["optional-dependencies"]["dev"]]
PIN = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)( ;[^\\]*)?\s*\\\n((?:\s+--hash=\S+.*\n)+)", re.M
)


def pins(name: str) -> dict[str, str]:
    """Canonical name -> exact version; asserts every requirement line is a hashed pin."""
    text = (REPO_ROOT / name).read_text()
    found = {canonicalize_name(m[1]): m[2] for m in PIN.finditer(text)}
    requirement_lines = [ln for ln in text.splitlines() if re.match(r"[A-Za-z0-9]", ln)]
    assert len(requirement_lines) == len(found), "a requirement without == or --hash"
    return found


DEV_LOCK = pins("requirements-dev.lock")
RUNTIME_LOCK = pins("requirements.lock")


def closure(roots: list[Requirement]) -> set[str]:
    """Every distribution the roots need on this machine (markers evaluated here, extras
    followed), read from the installed packages' metadata."""
    needed: set[str] = set()
    todo = [(r, frozenset(r.extras)) for r in roots]
    while todo:
        requirement, extras = todo.pop()
        if not requirement.marker or any(
            requirement.marker.evaluate({**default_environment(), "extra": e})
            for e in (extras or {""})
        ):
            name = canonicalize_name(requirement.name)
            key = f"{name}[{','.join(sorted(requirement.extras))}]"
            if key in needed:
                continue
            needed.update({name, key})
            for text in metadata.requires(requirement.name) or []:
                todo.append((Requirement(text), frozenset(requirement.extras)))
    return {n for n in needed if "[" not in n}


@pytest.mark.parametrize(
    ("lock", "roots"),
    [("requirements-dev.lock", RUNTIME + DEV), ("requirements.lock", RUNTIME)],
)
def test_the_lock_pins_every_dependency_of_pyproject(lock: str, roots: list[Requirement]) -> None:
    locked = pins(lock)
    missing = {canonicalize_name(r.name) for r in roots} - set(locked)
    assert not missing, f"{lock} lacks {missing}: run `make lock`"
    for requirement in roots:
        version = locked[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version, prereleases=True), (requirement, version)


def test_the_lock_pins_what_the_dependencies_need_in_turn() -> None:
    assert not closure(RUNTIME + DEV) - set(DEV_LOCK), "run `make lock`"
    assert not closure(RUNTIME) - set(RUNTIME_LOCK), "run `make lock`"


def test_the_runtime_lock_is_the_dev_lock_without_the_dev_tools() -> None:
    """The image runs the versions the tests ran."""
    assert {name: DEV_LOCK.get(name) for name in RUNTIME_LOCK} == RUNTIME_LOCK
    assert "pytest" in DEV_LOCK and "pytest" not in RUNTIME_LOCK


def test_this_environment_is_the_locked_one() -> None:
    """``make install`` installed exactly the lock (a stale .venv is refreshed by make)."""
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    wrong = {
        name: (version, installed[name])
        for name, version in DEV_LOCK.items()
        if name in installed and installed[name] != version
    }
    assert not wrong, wrong
