"""Which runtime interface client runs a function, and how a Node.js worker is started
(issue 16): nodejs18.x and later as they are, retired names on the installed Node with a
warning, AWS's Node flags for 20 and 22, the SDK's folder first on NODE_PATH, and a clear
refusal when AWS's aws-lambda-ric is missing or not built."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.functions.runtimes import (
    BOOTSTRAP,
    InstalledNode,
    RuntimeUnavailable,
    describe_node,
    launch,
)
from emulator.project.model import FunctionSpec
from emulator.project.runtimes import RuntimeKind, node_major, retired_node, runtime_kind


@pytest.mark.parametrize(
    ("runtime", "kind", "major", "retired"),
    [
        ("python3.12", RuntimeKind.PYTHON, None, False),
        ("nodejs22.x", RuntimeKind.NODEJS, 22, False),
        ("nodejs18.x", RuntimeKind.NODEJS, 18, False),
        ("nodejs16.x", RuntimeKind.NODEJS, 16, True),
        ("nodejs6.10", RuntimeKind.NODEJS, 6, True),
        ("nodejs4.3", RuntimeKind.NODEJS, 4, True),
        ("nodejs", RuntimeKind.NODEJS, 0, True),  # Node.js 0.10, the first Lambda runtime
        ("java21", None, None, False),
        ("dotnet8", None, None, False),
        ("ruby3.3", None, None, False),
        ("provided.al2023", None, None, False),
        ("python2.7", None, None, False),
        ("nodejs20.x.y", None, None, False),
    ],
)
def test_runtime_names(
    runtime: str, kind: RuntimeKind | None, major: int | None, retired: bool
) -> None:
    assert runtime_kind(runtime) is kind
    assert node_major(runtime) == major
    assert retired_node(runtime) is retired


def _spec(runtime: str, code: Path) -> FunctionSpec:
    return FunctionSpec("fn", "src/index.handler", code, runtime)


def _ric(node_modules: Path, built: bool = True) -> None:
    dist = node_modules / "aws-lambda-ric" / "dist"
    dist.mkdir(parents=True)
    (dist / "index.mjs").write_text("")
    if built:
        (dist / "rapid-client.node").write_bytes(b"")


@pytest.mark.parametrize(
    ("version", "flags"),
    [
        ("18.20.4", ()),
        ("20.20.2", ("--no-experimental-require-module", "--no-experimental-detect-module")),
        ("22.12.0", ("--no-experimental-require-module", "--no-experimental-detect-module")),
        ("24.1.0", ()),
    ],
)
def test_a_node_worker_runs_the_bootstrap_with_aws_flags(
    tmp_path: Path, version: str, flags: tuple[str, ...]
) -> None:
    _ric(tmp_path / "node_modules")
    node = InstalledNode("/usr/bin/node", version)
    started = launch(_spec("nodejs20.x", tmp_path / "code"), tmp_path / "node_modules", node)
    ric = tmp_path / "node_modules" / "aws-lambda-ric" / "dist" / "index.mjs"
    assert started.command == ("/usr/bin/node", *flags, str(BOOTSTRAP), str(ric))
    # The pinned SDK before the function's own folder, as AWS puts /var/runtime's first.
    assert started.env == {"NODE_PATH": f"{tmp_path / 'node_modules'}:{tmp_path / 'code'}"}


def test_a_python_worker_runs_awslambdaric(tmp_path: Path) -> None:
    started = launch(_spec("python3.12", tmp_path / "code"), tmp_path, None)
    assert started.command[1:] == ("-m", "awslambdaric", "src/index.handler")
    assert started.env == {"PYTHONPATH": str(tmp_path / "code")}


def test_without_the_client_or_its_addon_a_node_worker_is_refused_saying_why(
    tmp_path: Path,
) -> None:
    node = InstalledNode("/usr/bin/node", "20.20.2")
    spec = _spec("nodejs20.x", tmp_path / "code")
    with pytest.raises(RuntimeUnavailable) as missing:
        launch(spec, tmp_path / "empty", node)
    assert str(missing.value).startswith(
        "function fn (runtime nodejs20.x): AWS's Node.js runtime interface client "
        f"(npm aws-lambda-ric) is not installed in {tmp_path / 'empty'}: `make install`"
    )
    _ric(tmp_path / "node_modules", built=False)
    with pytest.raises(RuntimeUnavailable) as unbuilt:
        launch(spec, tmp_path / "node_modules", node)
    assert "(dist/rapid-client.node) was not built: install cmake" in str(unbuilt.value)
    assert "npm rebuild aws-lambda-ric" in str(unbuilt.value)
    with pytest.raises(RuntimeUnavailable) as no_node:
        launch(spec, tmp_path / "node_modules", None)
    assert str(no_node.value) == (
        "function fn (runtime nodejs20.x): Node.js is not installed (no `node` on PATH)"
    )


@pytest.mark.parametrize(
    ("runtime", "said"),
    [
        ("nodejs20.x", None),
        ("nodejs22.x", "function fn: runtime nodejs22.x runs on the installed Node.js 20.20.2"),
        (
            "nodejs6.10",
            "function fn: runtime nodejs6.10 is retired on AWS; it runs on the installed "
            "Node.js 20.20.2",
        ),
        ("python3.12", None),
    ],
)
def test_start_up_says_which_node_runs_another_versions_function(
    tmp_path: Path, runtime: str, said: str | None
) -> None:
    assert describe_node(_spec(runtime, tmp_path), InstalledNode("/n", "20.20.2")) == said
