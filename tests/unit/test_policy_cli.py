"""``python -m emulator policy test``: run as a user would, against the chat's rules/chat.yaml."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from emulator.config import REPO_ROOT

ARN = "arn:aws:iot:us-east-1:123456789012"
CHAT = str(REPO_ROOT / "rules" / "chat.yaml")


def run(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMULATOR_")}
    return subprocess.run(
        [sys.executable, "-m", "emulator", "policy", "test", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
    )


def ask(client: str, action: str, resource: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run("--client-id", client, "--action", action, "--resource", resource, *extra)


@pytest.mark.parametrize(
    ("action", "resource", "code", "reason"),
    [
        ("iot:Subscribe", "chat/in/web-1", 0, "allowed by policy chat-browser statement 2"),
        ("iot:Subscribe", "chat/in/web-2", 1, "implicit deny"),
        ("iot:Subscribe", "chat/pub/#", 0, "allowed by policy chat-browser statement 2"),
        ("iot:Publish", "chat/pub/x", 1, "implicit deny"),
        ("iot:Publish", "chat/out", 0, "allowed by policy chat-browser statement 1"),
        ("iot:Receive", "chat/in/web-1", 0, "allowed by policy chat-browser statement 3"),
        ("iot:Connect", "web-1", 0, "allowed by policy chat-browser statement 0"),
    ],
)
def test_the_chat_policy_json(action: str, resource: str, code: int, reason: str) -> None:
    result = ask("web-1", action, resource, "--policy", CHAT, "--json")
    assert result.returncode == code, result.stderr
    out: dict[str, Any] = json.loads(result.stdout)
    assert out["decision"] == ("ALLOW" if code == 0 else "DENY")
    assert reason in out["reason"]
    assert out["policies"] == ["chat-browser"]
    assert out["action"] == action and out["client_id"] == "web-1"
    kind = {"iot:Connect": "client", "iot:Subscribe": "topicfilter"}.get(action, "topic")
    assert out["resource"] == f"{ARN}:{kind}/{resource}"
    assert out["warnings"] == []
    if code == 0:
        assert out["policy"] == "chat-browser"
        assert out["statement_index"] == int(reason[-1])
        assert out["statement"]["Effect"] == "Allow" and out["statement"]["Action"] == action
        assert out["source"].startswith(CHAT + ":")
    else:
        assert out["statement"] is None and out["policy"] is None


def test_text_output_names_the_statement_and_shows_it() -> None:
    result = ask("web-1", "iot:Subscribe", "chat/in/web-1", "--policy", CHAT)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"ALLOW iot:Subscribe on {ARN}:topicfilter/chat/in/web-1"
    assert lines[1].startswith(f"  allowed by policy chat-browser statement 2 ({CHAT}:")
    statement = json.loads(lines[2].removeprefix("  statement: "))
    assert f"{ARN}:topicfilter/chat/in/${{iot:ClientId}}" in statement["Resource"]
    assert lines[3] == "  policies evaluated: chat-browser"


def test_text_output_of_a_denial() -> None:
    result = ask("web-1", "iot:Subscribe", "chat/in/web-2", "--policy", CHAT)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"DENY iot:Subscribe on {ARN}:topicfilter/chat/in/web-2",
        f"  no statement allows iot:Subscribe on {ARN}:topicfilter/chat/in/web-2 (implicit deny)",
        "  policies evaluated: chat-browser",
    ]


def test_without_policy_the_rules_folder_is_used() -> None:
    result = ask("web-1", "iot:Subscribe", "chat/in/web-1", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["policies"] == ["chat-browser"]


def test_the_cloudformation_template_holds_the_same_policy() -> None:
    template = str(REPO_ROOT / "template.yaml")
    assert ask("web-1", "iot:Subscribe", "chat/in/web-1", "--policy", template).returncode == 0
    assert ask("web-1", "iot:Subscribe", "chat/in/web-2", "--policy", template).returncode == 1


def test_an_arn_is_accepted_as_the_resource() -> None:
    result = ask("web-1", "iot:Publish", f"{ARN}:topic/chat/out", "--policy", CHAT, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["resource"] == f"{ARN}:topic/chat/out"


def test_policy_documents_in_json_and_yaml(tmp_path: Path) -> None:
    doc = tmp_path / "devices.json"
    doc.write_text(
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "iot:Publish", "Resource": f"{ARN}:topic/d/*"},
                    {"Effect": "Deny", "Action": "iot:Publish", "Resource": f"{ARN}:topic/d/x"},
                ],
            }
        )
    )
    extra = tmp_path / "extra.yaml"
    extra.write_text(
        "Version: 2012-10-17\n"
        "Statement:\n"
        "  - Effect: Allow\n"
        "    Action: iot:Publish\n"
        f"    Resource: '{ARN}:topic/e/${{iot:ClientId}}'\n"
    )
    both = ("--policy", str(doc), "--policy", str(extra), "--json")
    denied = ask("c1", "iot:Publish", "d/x", *both)
    assert denied.returncode == 1
    out = json.loads(denied.stdout)
    assert out["reason"] == "denied by policy devices statement 1 (explicit Deny)"
    assert out["statement"]["Effect"] == "Deny"
    assert out["policies"] == ["devices", "extra"]
    assert ask("c1", "iot:Publish", "d/y", *both).returncode == 0
    assert ask("c1", "iot:Publish", "e/c1", *both).returncode == 0
    assert ask("c1", "iot:Publish", "e/c2", *both).returncode == 1


def test_region_and_account_change_the_arn_and_mistakes_are_reported() -> None:
    result = ask("web-1", "iot:Connect", "web-1", "--policy", CHAT, "--region", "eu-west-1")
    assert result.returncode == 1
    assert result.stdout.startswith(
        "DENY iot:Connect on arn:aws:iot:eu-west-1:123456789012:client/"
    )
    assert "warning: " in result.stderr and "names region 'us-east-1'" in result.stderr


def test_a_topic_the_broker_refuses_is_noted() -> None:
    result = ask("web-1", "iot:Publish", "chat/+", "--policy", CHAT)
    assert result.returncode == 1
    assert "the broker refuses this before any policy check" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--action", "iot:Explode", "--resource", "x"), "error: unsupported action 'iot:Explode'"),
        (
            ("--action", "iot:Publish", "--resource", f"{ARN}:topicfilter/x"),
            "is checked against arn:aws:iot:us-east-1:123456789012:topic/",
        ),
        (
            ("--action", "iot:Connect", "--resource", "c", "--policy", "/no/such.json"),
            "error: /no/such.json: no such file or folder",
        ),
        (("--action", "iot:Connect"), "the following arguments are required: --resource"),
    ],
)
def test_unusable_questions_exit_2(args: tuple[str, ...], message: str) -> None:
    result = run("--client-id", "c", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_invalid_documents_exit_2_with_every_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "Statement": [
                    {"Effect": "Perhaps", "Action": "iot:*", "Resource": "*"},
                    {"Effect": "Allow", "Action": "iot:*"},
                ]
            }
        )
    )
    result = ask("c", "iot:Connect", "c", "--policy", str(bad))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: policy bad statement 0: Effect must be Allow or Deny, got 'Perhaps'",
        "error: policy bad statement 1: needs exactly one of Resource and NotResource",
    ]


def test_a_broken_rule_file_exits_2(tmp_path: Path) -> None:
    broken = tmp_path / "rules.yaml"
    broken.write_text("policies:\n  - policyName: x\n    document: [unclosed\n")
    result = ask("c", "iot:Connect", "c", "--policy", str(broken))
    assert result.returncode == 2
    assert "error: " in result.stderr and str(broken) in result.stderr
