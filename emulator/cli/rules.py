"""``rules eval|test|check``: tools for people debugging rules before they deploy them."""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from emulator.config import REPO_ROOT
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
        help='input lines: {"sql", "topic", "payload"|"payload_text"|"payload_b64", "client_id"?, "principal"?, "source_ip"?, "timestamp"?, "sql_version"?}',
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


def _context(line: dict[str, Any]) -> MessageContext:
    if "payload_b64" in line:
        payload = base64.b64decode(line["payload_b64"])
    elif "payload_text" in line:
        payload = str(line["payload_text"]).encode()
    else:
        payload = json.dumps(line.get("payload")).encode()
    return MessageContexts().of_payload(
        str(line.get("topic", "")),
        payload,
        int(line.get("timestamp", time.time() * 1000)),
        client_id=line.get("client_id"),
        principal=line.get("principal"),
        source_ip=line.get("source_ip"),
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
    ctx = MessageContexts().of_payload(
        args.topic, args.payload.encode(), int(time.time() * 1000), client_id=args.client_id
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
