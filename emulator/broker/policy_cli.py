"""``policy test``: explain an IoT policy decision, as the broker would make it.

    chat-emulator policy test --client-id web-1 --action iot:Subscribe --resource chat/in/web-2

Exit code 0 when allowed, 1 when denied, 2 when the policies or the question are unusable.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from emulator.broker.auth import ClientIdentity
from emulator.broker.policy import RESOURCE_TYPES, PolicyError, PolicySet
from emulator.broker.policy_files import load_policy_files
from emulator.config import REPO_ROOT


def add_parser(sub: Any) -> None:
    policy = sub.add_parser("policy", help="explain IoT policy decisions")
    cmds = policy.add_subparsers(dest="policy_command", required=True)
    test = cmds.add_parser("test", help="would this client be allowed this action?")
    test.add_argument(
        "--policy",
        action="append",
        help="policy document, rule file, template or folder (repeatable; default rules/)",
    )
    test.add_argument("--client-id", required=True)
    test.add_argument(
        "--action", required=True, help=", ".join(sorted({"iot:" + a[4:] for a in RESOURCE_TYPES}))
    )
    test.add_argument(
        "--resource", required=True, help="client ID, topic or topic filter (not the ARN)"
    )
    test.add_argument("--source-ip", default="127.0.0.1")
    test.add_argument("--region", default="us-east-1")
    test.add_argument("--account-id", default="123456789012")
    test.add_argument("--json", action="store_true", help="print JSON instead of text")
    test.set_defaults(handler=run_test)


def run_test(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in (args.policy or [REPO_ROOT / "rules"])]
    try:
        policies = PolicySet(
            load_policy_files(paths, args.region, args.account_id), args.region, args.account_id
        )
        identity = ClientIdentity(args.client_id, "anonymous", args.source_ip)
        decision, statement = policies.explain(identity, args.action, args.resource)
        arn = policies.arn(args.action, args.resource)
    except PolicyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for warning in policies.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    verdict = "ALLOW" if decision.allowed else "DENY"
    if args.json:
        print(
            json.dumps(
                {
                    "decision": verdict,
                    "action": args.action,
                    "resource": arn,
                    "reason": decision.reason,
                    "statement": statement.source if statement else None,
                    "policies": policies.names,
                }
            )
        )
    else:
        print(f"{verdict} {args.action} on {arn}")
        print(f"  {decision.reason}")
        if statement is not None:
            print(f"  {json.dumps(statement.source)}")
        print(f"  policies evaluated: {', '.join(policies.names) or '(none)'}")
    return 0 if decision.allowed else 1
