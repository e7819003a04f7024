"""``rules eval|test|check``: tools for people debugging rules before they deploy them."""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from emulator.awserrors import AwsError
from emulator.config import REPO_ROOT
from emulator.dataplane.models import Mqtt5Headers
from emulator.messages import FORMAT_NAMES, PublishProperties
from emulator.project.loader import load_project
from emulator.rules.context import MessageContexts
from emulator.rules.dryrun import dry_run
from emulator.sql.context import MessageContext
from emulator.sql.errors import RuleEvaluationError, RuleSyntaxError
from emulator.sql.statement import NO_MATCH, compile_statement
from emulator.topics import basic_ingest


def add_parser(sub: Any) -> None:
    rules = sub.add_parser("rules", help="evaluate, dry-run and check topic rules")
    cmds = rules.add_subparsers(dest="rules_command", required=True)

    ev = cmds.add_parser("eval", help="evaluate SQL statements from JSON lines on stdin")
    ev.add_argument(
        "--jsonl",
        action="store_true",
        required=True,
        help='input lines: {"sql", "topic", "payload"|"payload_text"|"payload_b64", "client_id"?, "principal"?, "source_ip"?, "timestamp"?, "sql_version"?, and MQTT 5 properties: "user_properties"? ([{"key": "value"}, ...]), "content_type"?, "response_topic"?, "correlation_data"? (base64), "payload_format_indicator"? (UNSPECIFIED_BYTES|UTF8_DATA), "message_expiry"? (s)}',
    )
    ev.set_defaults(handler=lambda args: run_eval(sys.stdin, sys.stdout))

    test = cmds.add_parser("test", help="dry-run every loaded rule against one message")
    test.add_argument(
        "--rules",
        action="append",
        required=False,
        help="rule file/template/folder (repeatable: all of them are one deployment, as up "
        "--rules loads them; default: the repository's rules/, as for up)",
    )
    test.add_argument("--topic", required=True)
    test.add_argument("--payload", required=True, help="the message payload (text; JSON usually)")
    test.add_argument("--client-id")
    test.add_argument(
        "--user-property",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an MQTT 5 user property of the message (repeatable, in order)",
    )
    test.add_argument("--content-type", help="MQTT 5 content type")
    test.add_argument("--response-topic", help="MQTT 5 response topic")
    test.add_argument("--correlation-data", help="MQTT 5 correlation data, in base64")
    test.add_argument(
        "--payload-format-indicator", choices=FORMAT_NAMES, help="MQTT 5 payload format"
    )
    test.add_argument("--message-expiry", type=int, help="MQTT 5 message expiry (seconds)")
    test.add_argument("--json", action="store_true", help="print JSON instead of text")
    test.set_defaults(handler=run_test)

    check = cmds.add_parser(
        "check",
        help="validate rule files and templates",
        description="Each path (a file, or a folder of rule files) is checked on its own, "
        "as a deployment of its own: rules/ and template.yaml may describe the same stack. "
        "With --together, all paths are one deployment, as 'up --rules A --rules B' loads "
        "them (a name declared twice is then an error naming both places).",
    )
    check.add_argument("paths", nargs="+")
    check.add_argument(
        "--parameter-overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="NAME=VALUE",
        help="template parameters, as sam and up take them (Name=Value, space-separated)",
    )
    check.add_argument(
        "--together",
        action="store_true",
        help="check all paths as one deployment (as up --rules loads them)",
    )
    check.set_defaults(handler=run_check)


def mqtt5_properties(
    now: int,
    user_properties: list[tuple[str, str]],
    content_type: str | None = None,
    response_topic: str | None = None,
    correlation_data: str | None = None,
    payload_format_indicator: str | None = None,
    message_expiry: int | None = None,
) -> PublishProperties | None:
    """A test message's MQTT 5 properties, given as AWS's data-plane Publish names them
    (correlation data in base64), checked by the same code as that API's."""
    try:
        correlation = (
            None if correlation_data is None else base64.b64decode(correlation_data, validate=True)
        )
        return Mqtt5Headers(
            tuple(user_properties),
            payload_format_indicator,
            content_type,
            response_topic,
            correlation,
            message_expiry,
        ).properties(now)
    except binascii.Error:
        raise ValueError("correlation data must be base64") from None
    except AwsError as exc:
        raise ValueError(exc.message) from None


def _user_pairs(value: Any) -> list[tuple[str, str]]:
    if not isinstance(value, list):
        raise ValueError('user_properties must be a list such as [{"key": "value"}]')
    return [(str(k), str(v)) for pair in value for k, v in dict(pair).items()]


def _context(line: dict[str, Any]) -> MessageContext:
    if "payload_b64" in line:
        payload = base64.b64decode(line["payload_b64"])
    elif "payload_text" in line:
        payload = str(line["payload_text"]).encode()
    else:
        payload = json.dumps(line.get("payload")).encode()
    timestamp = int(line.get("timestamp", time.time() * 1000))
    properties = mqtt5_properties(
        timestamp,
        _user_pairs(line.get("user_properties", [])),
        line.get("content_type"),
        line.get("response_topic"),
        line.get("correlation_data"),
        line.get("payload_format_indicator"),
        line.get("message_expiry"),
    )
    return MessageContexts().of_payload(
        str(line.get("topic", "")),
        payload,
        timestamp,
        client_id=line.get("client_id"),
        principal=line.get("principal"),
        source_ip=line.get("source_ip"),
        properties=properties,
    )


def run_eval(stdin: TextIO, stdout: TextIO) -> int:
    for raw in stdin:
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
            statement = compile_statement(
                str(line["sql"]), str(line.get("sql_version", "2016-03-23"))
            )
            ctx = _context(line)
            ingest = basic_ingest(ctx.topic)
            if ingest is None:
                out = statement.evaluate(ctx)
            else:  # $aws/rules/<rule>/...: the rule runs whatever its FROM, on the topic after
                ctx.topic = ingest.topic
                out = statement.evaluate_matched(ctx)
            if out is NO_MATCH:
                result: dict[str, Any] = {"matched": False, "output": None}
            elif isinstance(out, bytes):
                result = {"matched": True, "output": out.decode("utf-8", "replace")}
            else:
                result = {"matched": True, "output": out}
        except RuleSyntaxError as exc:
            result = {"error": f"{exc.message} at line {exc.line}, column {exc.column}"}
        except (RuleEvaluationError, KeyError, ValueError, TypeError) as exc:
            result = {
                "error": str(exc) if not isinstance(exc, KeyError) else f"missing field {exc}"
            }
        stdout.write(json.dumps(result) + "\n")
        stdout.flush()
    return 0


def _paths(values: list[str] | None) -> list[Path]:
    return [Path(v).resolve() for v in values] if values else [REPO_ROOT / "rules"]


def run_test(args: argparse.Namespace) -> int:
    project = load_project(_paths(args.rules))
    for diagnostic in project.diagnostics:
        print(diagnostic, file=sys.stderr)
    rules = project.rules  # compiled by the loader, as the engine runs them
    now = int(time.time() * 1000)
    pairs = []
    for item in args.user_property:
        key, equals, value = item.partition("=")
        if not equals:
            print(f"--user-property {item!r}: expected KEY=VALUE", file=sys.stderr)
            return 2
        pairs.append((key, value))
    try:
        properties = mqtt5_properties(
            now,
            pairs,
            args.content_type,
            args.response_topic,
            args.correlation_data,
            args.payload_format_indicator,
            args.message_expiry,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ctx = MessageContexts().of_payload(
        args.topic, args.payload.encode(), now, client_id=args.client_id, properties=properties
    )
    results = dry_run(rules, ctx)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    if not results:
        print(f"no rule matches a message on {args.topic} ({len(rules)} rules loaded)")
        return 0
    for result in results:
        print(f"rule {result['rule']} matched")
        print(f"  output: {json.dumps(result['output'])}")
        for action in result["actions"]:
            fields = ", ".join(f"{k}={v}" for k, v in action.items() if k != "type")
            print(f"  -> {action['type']}: {fields}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    """Print every diagnostic and one summary per deployment checked; 1 if any has errors
    or names no file."""
    names: list[str] = args.paths
    groups = [names] if args.together else [[name] for name in names]
    failed = False
    for group in groups:
        project = load_project(
            [Path(name) for name in group], parameter_overrides=args.parameter_overrides
        )
        for diagnostic in project.diagnostics:
            print(diagnostic)
        errors = len(project.errors)
        print(
            f"{' + '.join(group)}: {len(project.files)} files, "
            f"{len(project.rules)} rules, {len(project.functions)} functions, "
            f"{len(project.tables)} tables, {len(project.streams)} streams: {errors} errors",
            file=sys.stderr,
        )
        failed = failed or bool(errors) or not project.files
    return 1 if failed else 0
