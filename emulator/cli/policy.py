"""``policy test``: explain an IoT policy decision, as the broker would make it.

    chat-emulator policy test --client-id web-1 --action iot:Subscribe --resource chat/in/web-2

The policies are those ``up`` would enforce (the rule folders of the config, ``rules/`` by
default, plus its ``--policy`` files) unless ``--policy`` names others. Exit code 0 when
allowed, 1 when denied, 2 when the policies or the question are unusable.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from emulator.broker.auth import ClientIdentity
from emulator.broker.policy import RESOURCE_TYPES, PolicyError, PolicySet, compile_policies
from emulator.config import ConfigError, load_config
from emulator.project.policy_files import load_policy_files
from emulator.topics import validate_topic_filter, validate_topic_name


def add_parser(sub: Any) -> None:
    policy = sub.add_parser("policy", help="explain IoT policy decisions")
    cmds = policy.add_subparsers(dest="policy_command", required=True)
    test = cmds.add_parser(
        "test",
        help="would this client be allowed this action?",
        description="Evaluate the IoT policies for one client, action and resource and say "
        "which statement decided. Exit code: 0 allowed, 1 denied, 2 unusable input.",
    )
    test.add_argument(
        "--policy",
        action="append",
        help="policy document (JSON/YAML), rule file, template or folder (repeatable; "
        "default: what `up` enforces, rules/ unless configured otherwise)",
    )
    test.add_argument("--config", help="YAML config file, as for `up` (rules, policies, region)")
    test.add_argument("--client-id", required=True)
    test.add_argument(
        "--action",
        required=True,
        help="iot:Connect, iot:Publish, iot:Receive, iot:RetainPublish or iot:Subscribe",
    )
    test.add_argument(
        "--resource",
        required=True,
        help="client ID (iot:Connect), topic, or topic filter (iot:Subscribe); an ARN works too",
    )
    test.add_argument("--source-ip", default="127.0.0.1", help="for ${aws:SourceIp}")
    test.add_argument("--region", help="default us-east-1, or the config's")
    test.add_argument("--account-id", help="default 123456789012, or the config's")
    test.add_argument("--json", action="store_true", help="print JSON instead of text")
    test.set_defaults(handler=run_test)


def _load(args: argparse.Namespace) -> tuple[PolicySet, str, str]:
    flags = {"config": args.config, "region": args.region, "account_id": args.account_id}
    config = load_config(flags)
    if args.policy:
        paths = [Path(p).resolve() for p in args.policy]
    else:
        paths = [*config.rules, *config.policies]
    specs = load_policy_files(paths, config.region, config.account_id)
    return (
        compile_policies(specs, config.region, config.account_id),
        config.region,
        config.account_id,
    )


def _bare_resource(policies: PolicySet, action: str, resource: str) -> str:
    """``--resource`` may be the ARN itself, as copied from a policy."""
    if not resource.startswith("arn:"):
        return resource
    prefix = policies.arn(action, "")
    if not resource.startswith(prefix):
        raise PolicyError(f"--resource {resource!r}: {action} is checked against {prefix}...")
    return resource[len(prefix) :]


def _broker_refusal(action: str, resource: str) -> str | None:
    """Why the broker rejects the request before any policy is asked, if it does."""
    kind = RESOURCE_TYPES.get(action.lower())
    if kind == "topic":
        return validate_topic_name(resource)
    if kind == "topicfilter":
        return validate_topic_filter(resource)
    return None


def run_test(args: argparse.Namespace) -> int:
    try:
        policies, region, account_id = _load(args)
        resource = _bare_resource(policies, args.action, args.resource)
        identity = ClientIdentity(args.client_id, "anonymous", args.source_ip)
        decision, statement = policies.explain(identity, args.action, resource)
        arn = policies.arn(args.action, resource)
    except (PolicyError, ConfigError) as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 2
    notes = [f"warning: {w}" for w in policies.warnings]
    if not policies.names:
        notes.append(
            "note: no policy loaded: AWS denies everything; `up` would not restrict clients"
        )
    refusal = _broker_refusal(args.action, resource)
    if refusal:
        notes.append(f"note: the broker refuses this before any policy check: {refusal}")
    for note in notes:
        print(note, file=sys.stderr)
    verdict = "ALLOW" if decision.allowed else "DENY"
    origin = str(statement.origin) if statement and statement.origin else None
    if args.json:
        out = {
            "decision": verdict,
            "action": args.action,
            "client_id": args.client_id,
            "resource": arn,
            "reason": decision.reason,
            "policy": statement.policy if statement else None,
            "statement_index": statement.index if statement else None,
            "statement": statement.source if statement else None,
            "source": origin,
            "policies": policies.names,
            "region": region,
            "account_id": account_id,
            "warnings": list(policies.warnings),
        }
        print(json.dumps(out, indent=2))
    else:
        print(f"{verdict} {args.action} on {arn}")
        print(f"  {decision.reason}" + (f" ({origin})" if origin else ""))
        if statement is not None:
            print(f"  statement: {json.dumps(statement.source)}")
        print(f"  policies evaluated: {', '.join(policies.names) or '(none)'}")
    return 0 if decision.allowed else 1
