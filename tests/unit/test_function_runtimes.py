"""A function whose runtime the emulator cannot run (Java, .NET, Ruby, Go, custom) is an
error at load naming the function, its runtime, where it is written and the runtimes that
run, and is not loaded (issue 13: ``up`` ran a nodejs6.10 handler under the Python runtime
client, "No module named 'index'"). Its rules still load: they fail as for a missing
function. Node.js functions load (issue 16); a retired Node.js name with a warning there."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.project.loader import load_project
from emulator.project.model import Project

UNSUPPORTED = ("java17", "dotnet8", "ruby3.3", "go1.x", "provided.al2", "python2.7")


def _template(runtime_line: str, globals_runtime: str = "python3.11") -> str:
    return (
        "Transform: AWS::Serverless-2016-10-31\n"
        "Globals:\n"
        "  Function:\n"
        f"    Runtime: {globals_runtime}\n"
        "Resources:\n"
        "  Fn:\n"
        "    Type: AWS::Serverless::Function\n"
        "    Properties:\n"
        "      FunctionName: greeter\n"
        "      Handler: index.handler\n"
        "      CodeUri: code\n"
        f"{runtime_line}"
        "      Events:\n"
        "        Hello:\n"
        "          Type: IoTRule\n"
        "          Properties:\n"
        "            Sql: SELECT * FROM 'hello'\n"
        "  Rule:\n"
        "    Type: AWS::IoT::TopicRule\n"
        "    Properties:\n"
        "      TopicRulePayload:\n"
        "        Sql: SELECT * FROM 'greet'\n"
        "        Actions:\n"
        "          - Lambda: {FunctionArn: !GetAtt Fn.Arn}\n"
    )


def _native(runtime: str) -> str:
    return (
        "functions:\n"
        "  - functionName: greeter\n"
        "    handler: index.handler\n"
        "    codeUri: code\n"
        f"    runtime: {runtime}\n"
        "rules:\n"
        "  - ruleName: Greet\n"
        "    sql: SELECT * FROM 'greet'\n"
        "    actions:\n"
        "      - lambda: {functionArn: greeter}\n"
    )


def _load(tmp_path: Path, text: str) -> tuple[Path, list[str], Project]:
    (tmp_path / "code").mkdir(exist_ok=True)
    (tmp_path / "code" / "index.js").write_text("exports.handler = async () => 1;\n")
    file = tmp_path / "stack.yaml"
    file.write_text(text)
    project = load_project([file])
    return file, [str(d) for d in project.errors], project


def _message(runtime: str) -> str:
    return (
        f"function 'greeter': runtime '{runtime}' cannot run in the emulator "
        "(supported: python3.x (e.g. python3.12), nodejs18.x and later (e.g. nodejs22.x)); "
        "the function is not loaded"
    )


@pytest.mark.parametrize("runtime", UNSUPPORTED)
def test_a_template_function_of_another_runtime_is_an_error_at_its_runtime(
    tmp_path: Path, runtime: str
) -> None:
    file, errors, project = _load(tmp_path, _template(f"      Runtime: {runtime}\n"))
    assert errors == [f"{file}:12:16: {_message(runtime)}"]  # no "unknown function" too
    assert project.functions == ()
    # Its rules load, the SAM event's included: invoking it fails as for a missing function.
    assert sorted(r.name for r in project.rules) == ["FnHello", "Rule"]


def test_a_runtime_from_globals_is_reported_in_globals(tmp_path: Path) -> None:
    file, errors, _ = _load(tmp_path, _template("", globals_runtime="ruby3.3"))
    assert errors == [f"{file}:4:14: {_message('ruby3.3')}"]


@pytest.mark.parametrize("runtime", UNSUPPORTED)
def test_a_native_function_of_another_runtime_is_an_error_at_its_runtime(
    tmp_path: Path, runtime: str
) -> None:
    file, errors, project = _load(tmp_path, _native(runtime))
    assert errors == [f"{file}:5:14: {_message(runtime)}"]
    assert project.functions == ()
    assert [r.name for r in project.rules] == ["Greet"]


@pytest.mark.parametrize("runtime", ["python3.9", "python3.12", "python3.13"])
def test_python_3_runtimes_load(tmp_path: Path, runtime: str) -> None:
    _, errors, project = _load(tmp_path, _native(runtime))
    assert errors == []
    assert [f.runtime for f in project.functions] == [runtime]


@pytest.mark.parametrize("runtime", ["nodejs18.x", "nodejs20.x", "nodejs22.x", "nodejs24.x"])
def test_node_runtimes_load_as_they_are(tmp_path: Path, runtime: str) -> None:
    file, errors, project = _load(tmp_path, _template(f"      Runtime: {runtime}\n"))
    assert project.diagnostics == ()
    assert [(f.name, f.runtime, f.handler) for f in project.functions] == [
        ("greeter", runtime, "index.handler")
    ]


@pytest.mark.parametrize("runtime", ["nodejs", "nodejs4.3", "nodejs6.10", "nodejs16.x"])
def test_a_retired_node_runtime_loads_with_a_warning_at_its_runtime(
    tmp_path: Path, runtime: str
) -> None:
    file, errors, project = _load(tmp_path, _native(runtime))
    assert errors == []
    assert [str(d) for d in project.diagnostics] == [
        f"{file}:5:14: warning: function 'greeter': runtime '{runtime}' is retired on AWS; "
        "it runs on the installed Node.js (nodejs18.x and later run as they are)"
    ]
    assert [d.severity for d in project.diagnostics] == ["warning"]
    assert [f.runtime for f in project.functions] == [runtime]
