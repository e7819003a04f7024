"""How a function's worker process starts: the runtime interface client for its runtime and
what that runtime adds to the environment.

Python functions run ``python -m awslambdaric <handler>`` on the emulator's own Python.
Node.js functions run AWS's npm ``aws-lambda-ric`` on the installed ``node``, through
``node/bootstrap.mjs`` (AWS's ``/var/runtime/index.mjs`` locally). Both talk to the same
Runtime API (workers.py). The Node.js client has a native addon that ``make install`` builds
(``npm ci``); where it could not be built, a Node.js function's invocations fail with a
message saying what to install, instead of running under the wrong client.

As AWS's Node.js runtimes bundle the AWS SDK for JavaScript v3, the emulator's
``node_modules`` (which pins ``@aws-sdk/*`` in package-lock.json) is on ``NODE_PATH``, before
the function's own folder: a handler that does not ship the SDK still imports it.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from emulator.project.model import FunctionSpec
from emulator.project.runtimes import RuntimeKind, node_major, retired_node, runtime_kind

log = logging.getLogger(__name__)

BOOTSTRAP = Path(__file__).parent / "node" / "bootstrap.mjs"
RIC_PACKAGE = "aws-lambda-ric"
RIC_BUILD_TOOLS = "cmake, make, g++, autoconf, automake, libtool and python3"
# Node flags AWS's nodejs20.x and nodejs22.x runtimes start Node with: the experimental
# features those Node versions turn on by default stay off (AWS's "Building Lambda
# functions with Node.js", experimental features disabled by Lambda).
AWS_NODE_FLAGS = {
    20: ("--no-experimental-require-module", "--no-experimental-detect-module"),
    22: ("--no-experimental-require-module", "--no-experimental-detect-module"),
}


class RuntimeUnavailable(Exception):
    """The function's runtime interface client is not installed here; the message says
    what to install."""


@dataclass(frozen=True, slots=True)
class Launch:
    """A worker's command and the variables its runtime sets (beside the common ones)."""

    command: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InstalledNode:
    path: str
    version: str  # "20.20.2"

    @property
    def major(self) -> int:
        return int(self.version.split(".", 1)[0])


def find_node() -> InstalledNode | None:
    """The ``node`` on PATH and its version (one short process: called once per service)."""
    path = shutil.which("node")
    if path is None:
        return None
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return InstalledNode(path, out.strip().lstrip("v"))


def ric_problem(node_modules: Path) -> str | None:
    """Why AWS's Node.js runtime interface client cannot run from ``node_modules``, if so."""
    package = node_modules / RIC_PACKAGE
    if not (package / "dist" / "index.mjs").is_file():
        return (
            f"AWS's Node.js runtime interface client (npm {RIC_PACKAGE}) is not installed in "
            f"{node_modules}: `make install` installs it (npm ci), building its native addon "
            f"with {RIC_BUILD_TOOLS}; without those tools npm leaves it out"
        )
    if not (package / "dist" / "rapid-client.node").is_file():
        return (
            f"the native addon of {RIC_PACKAGE} (dist/rapid-client.node) was not built: "
            f"install {RIC_BUILD_TOOLS}, then run `npm rebuild {RIC_PACKAGE}`"
        )
    return None


def launch(spec: FunctionSpec, node_modules: Path, node: InstalledNode | None) -> Launch:
    """How to start a worker of ``spec``; ``RuntimeUnavailable`` if its client is missing."""
    kind = runtime_kind(spec.runtime)
    if kind is RuntimeKind.PYTHON:
        return Launch(
            (sys.executable, "-m", "awslambdaric", spec.handler),
            {"PYTHONPATH": str(spec.code_path)},
        )
    if kind is RuntimeKind.NODEJS:
        where = f"function {spec.name} (runtime {spec.runtime})"
        if node is None:
            raise RuntimeUnavailable(f"{where}: Node.js is not installed (no `node` on PATH)")
        problem = ric_problem(node_modules)
        if problem is not None:
            raise RuntimeUnavailable(f"{where}: {problem}")
        ric = node_modules / RIC_PACKAGE / "dist" / "index.mjs"
        flags = AWS_NODE_FLAGS.get(node.major, ())
        return Launch(
            (node.path, *flags, str(BOOTSTRAP), str(ric)),
            {"NODE_PATH": f"{node_modules}:{spec.code_path}"},
        )
    raise RuntimeUnavailable(f"function {spec.name}: runtime {spec.runtime} cannot run here")


def describe_node(spec: FunctionSpec, node: InstalledNode) -> str | None:
    """What to say once when a Node.js function runs on a Node.js other than its runtime's."""
    major = node_major(spec.runtime)
    if major is None or major == node.major:
        return None
    if retired_node(spec.runtime):
        return (
            f"function {spec.name}: runtime {spec.runtime} is retired on AWS; "
            f"it runs on the installed Node.js {node.version}"
        )
    return (
        f"function {spec.name}: runtime {spec.runtime} runs on the installed Node.js {node.version}"
    )
