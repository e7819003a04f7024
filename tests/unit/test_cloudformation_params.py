"""Templates as SAM and CloudFormation define them: ``Parameters`` with defaults and
``--parameter-overrides`` (as ``sam`` spells them), SAM ``Globals`` merged per key,
``CodeUri``/``Code`` relative to the template, handlers in folders, ``Environment`` with
intrinsics resolved to local values, and a resource's ``Condition`` (issue 16: the original
chat's template could not be given its parameter)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from emulator.cli import build_parser
from emulator.config import REPO_ROOT, load_config
from emulator.project.loader import load_project
from emulator.project.parameters import OverrideError, parameter_value, parse_overrides

SERVERLESS_CHAT = REPO_ROOT / "tests" / "fixtures" / "serverless-chat" / "cloudformation"


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        (["A=1"], {"A": "1"}),
        (["A=1 B=2"], {"A": "1", "B": "2"}),  # sam: one argument, space-separated
        (["A=1", "B=x=y"], {"A": "1", "B": "x=y"}),  # only the first '=' splits
        (["A='two words' B=\"q\""], {"A": "two words", "B": "q"}),
        (["ParameterKey=A,ParameterValue=v,w"], {"A": "v,w"}),  # CloudFormation's spelling
        (["A=1", "A=2"], {"A": "2"}),  # the last one wins
        (["A="], {"A": ""}),
        ([], {}),
    ],
)
def test_overrides_are_read_as_sam_reads_them(tokens: list[str], expected: dict[str, str]) -> None:
    assert parse_overrides(tokens) == expected


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("A", "'A' is not Name=Value"),
        ("my-param=1", "'my-param' is not a parameter name (letters and digits)"),
        ("A='open", 'cannot read "A=\'open": No closing quotation'),
    ],
)
def test_a_bad_override_says_why(token: str, message: str) -> None:
    with pytest.raises(OverrideError) as info:
        parse_overrides([token])
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("declaration", "overrides", "value", "problem"),
    [
        ({"Type": "String", "Default": "a"}, {}, "a", None),
        ({"Type": "String", "Default": "a"}, {"P": "b"}, "b", None),
        ({"Type": "Number", "Default": 10}, {}, "10", None),  # parameters are strings to !Ref
        ({"Type": "String", "Default": True}, {}, "true", None),
        ({"Type": "CommaDelimitedList", "Default": "a, b"}, {}, ["a", "b"], None),
        ({"Type": "List<Number>"}, {"P": "1,2"}, ["1", "2"], None),
        (
            {"Type": "String"},
            {},
            None,
            "parameter 'P' has no Default: give it a value with --parameter-overrides P=VALUE",
        ),
        (
            {"Type": "String", "Default": "x", "AllowedValues": ["x", "y"]},
            {"P": "z"},
            None,
            "parameter 'P': value 'z' is not one of its AllowedValues (x, y)",
        ),
        (
            {"Type": "String", "Default": "x", "AllowedPattern": "[a-z]+"},
            {"P": "X1"},
            None,
            "parameter 'P': value 'X1' does not match its AllowedPattern",
        ),
    ],
)
def test_a_parameter_value_is_its_override_else_its_default(
    declaration: dict[str, object],
    overrides: dict[str, str],
    value: object,
    problem: str | None,
) -> None:
    got = parameter_value("P", declaration, overrides)
    assert (got.value, got.problem) == (value, problem)


TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage:
    Type: String
    Default: dev
  Prefix:
    Type: String
Conditions:
  Prod: !Equals [!Ref Stage, prod]
Globals:
  Function:
    Runtime: nodejs20.x
    Timeout: 7
    Environment:
      Variables:
        STAGE: !Ref Stage
        SHARED: globals
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub "${Prefix}-fn"
      CodeUri: ../code
      Handler: src/handlers/index.handler
      Environment:
        Variables:
          SHARED: own
          TABLE: !Ref Table
          TABLE_ARN: !GetAtt Table.Arn
          QUEUE_URL: !Sub "https://${Prefix}.${AWS::Region}/${Table}"
          DEBUG: true
  Plain:
    Type: AWS::Lambda::Function
    Properties:
      FunctionName: plain
      Code: ../code
      Handler: index.handler
      Runtime: python3.12
  ProdOnly:
    Type: AWS::Lambda::Function
    Condition: Prod
    Properties:
      FunctionName: prod-only
      Code: ../code
      Handler: index.handler
      Runtime: python3.12
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "${Prefix}-items"
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
      KeySchema: [{AttributeName: id, KeyType: HASH}]
"""


def _stack(tmp_path: Path) -> Path:
    (tmp_path / "code" / "src" / "handlers").mkdir(parents=True)
    (tmp_path / "stack").mkdir()
    file = tmp_path / "stack" / "template.yaml"
    file.write_text(TEMPLATE)
    return file


def test_parameters_globals_code_paths_and_environment(tmp_path: Path) -> None:
    file = _stack(tmp_path)
    project = load_project([file], parameter_overrides=["Prefix=demo"])
    assert project.diagnostics == ()
    functions = {f.name: f for f in project.functions}
    assert set(functions) == {"demo-fn", "plain"}  # ProdOnly's condition does not hold
    fn = functions["demo-fn"]
    assert (fn.runtime, fn.timeout, fn.handler) == ("nodejs20.x", 7.0, "src/handlers/index.handler")
    assert fn.code_path == tmp_path / "code"  # relative to the template's folder
    assert fn.environment == {
        "STAGE": "dev",
        "SHARED": "own",  # the function's own value wins; the other globals stay
        "TABLE": "demo-items",
        "TABLE_ARN": "arn:aws:dynamodb:us-east-1:123456789012:table/demo-items",
        "QUEUE_URL": "https://demo.us-east-1/demo-items",
        "DEBUG": "true",
    }
    # Globals are SAM's: an AWS::Lambda::Function takes none of them.
    plain = functions["plain"]
    assert (plain.runtime, plain.timeout, plain.environment) == ("python3.12", 3.0, {})


def test_an_override_replaces_a_default_and_can_create_a_conditional_resource(
    tmp_path: Path,
) -> None:
    file = _stack(tmp_path)
    project = load_project([file], parameter_overrides=["Prefix=p Stage=prod"])
    assert project.diagnostics == ()
    functions = {f.name: f for f in project.functions}
    assert set(functions) == {"p-fn", "plain", "prod-only"}
    assert functions["p-fn"].environment["STAGE"] == "prod"


def test_a_parameter_without_value_is_an_error_there_and_where_it_is_needed(
    tmp_path: Path,
) -> None:
    file = _stack(tmp_path)
    project = load_project([file])
    assert [str(d) for d in project.errors] == [
        f"{file}:7:5: parameter 'Prefix' has no Default: give it a value with "
        "--parameter-overrides Prefix=VALUE",
        f"{file}:20:5: resource 'Fn': parameter 'Prefix' has no value (declared at {file}:7:5)",
        f"{file}:48:5: resource 'Table': parameter 'Prefix' has no value (declared at {file}:7:5)",
    ]


def test_overrides_no_template_declares_are_a_warning_and_bad_ones_an_error(
    tmp_path: Path,
) -> None:
    file = _stack(tmp_path)
    project = load_project([file], parameter_overrides=["Prefix=x Nope=1"])
    assert project.errors == ()
    assert [(str(d), d.severity) for d in project.diagnostics] == [
        (
            "--parameter-overrides:0:0: warning: no template loaded declares parameter 'Nope'",
            "warning",
        )
    ]
    bad = load_project([file], parameter_overrides=["Prefix"])
    assert str(bad.errors[0]) == "--parameter-overrides:0:0: 'Prefix' is not Name=Value"


def test_the_original_chats_template_loads_with_its_parameter_overridden() -> None:
    """The shapes of danilop/serverless-chat's cloudformation/template.yaml: its function is
    a nodejs6.10 one (run on the installed Node.js, with a warning) from ../fn."""
    template = SERVERLESS_CHAT / "template.yaml"
    project = load_project([template], parameter_overrides=["AwsIoTEndpoint=127.0.0.1:8080"])
    assert project.errors == ()
    assert [str(d) for d in project.diagnostics] == [
        f"{template}:15:16: warning: function 'ChatFunction': runtime 'nodejs6.10' is retired "
        "on AWS; it runs on the installed Node.js (nodejs18.x and later run as they are)"
    ]
    (function,) = project.functions
    assert (function.name, function.runtime, function.handler) == (
        "ChatFunction",
        "nodejs6.10",
        "index.handler",
    )
    assert function.code_path == SERVERLESS_CHAT.parent / "fn"
    assert function.environment == {"AWS_IOT_ENDPOINT": "127.0.0.1:8080"}
    assert sorted(r.name for r in project.rules) == [
        "chatPresenceRule",
        "chatPubRule",
        "chatRule",
        "chatStore",
    ]
    assert [t.name for t in project.tables] == ["chat"]


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emulator", "rules", "check", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )


def test_rules_check_takes_parameter_overrides() -> None:
    template = "tests/fixtures/serverless-chat/cloudformation/template.yaml"
    without = _check(template)
    assert without.returncode == 1
    assert (
        f"{template}:5:5: parameter 'AwsIoTEndpoint' has no Default: give it a value with "
        "--parameter-overrides AwsIoTEndpoint=VALUE"
    ) in without.stdout.splitlines()
    given = _check(template, "--parameter-overrides", "AwsIoTEndpoint=localhost")
    assert given.returncode == 0, given.stdout + given.stderr
    assert f"{template}: 1 files, 4 rules, 1 functions, 1 tables, 0 streams: 0 errors" in (
        given.stderr
    )


def test_up_takes_parameter_overrides_as_sam_does() -> None:
    """``up --parameter-overrides A=1 B=2`` (and its variable, and a config file's list)
    reach the loader as the same tokens."""
    args = build_parser().parse_args(
        ["up", "--parameter-overrides", "A=1", "B='x y'", "--parameter-overrides", "C=3"]
    )
    flags = {k: v for k, v in vars(args).items() if k not in {"handler", "command"}}
    config = load_config(flags, environ={})
    assert config.parameter_overrides == ("A=1", "B='x y'", "C=3")
    assert parse_overrides(config.parameter_overrides) == {"A": "1", "B": "x y", "C": "3"}
    from_env = load_config({}, environ={"EMULATOR_PARAMETER_OVERRIDES": "A=1 B=2"})
    assert parse_overrides(from_env.parameter_overrides) == {"A": "1", "B": "2"}
