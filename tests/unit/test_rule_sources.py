"""Rule sources: the chat's native YAML and its SAM template agree; errors name file:line:col."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from emulator.config import REPO_ROOT
from emulator.project.loader import load_project

BAD = REPO_ROOT / "tests" / "fixtures" / "bad-rules"


def test_native_rules_and_template_declare_the_same_chat() -> None:
    native = load_project([REPO_ROOT / "rules"])
    template = load_project([REPO_ROOT / "template.yaml"])
    assert native.errors == () and template.errors == ()

    def shape(project):  # type: ignore[no-untyped-def]
        return sorted(
            (
                r.name,
                " ".join(r.sql.split()),
                r.aws_iot_sql_version,
                tuple(
                    (a.type, {k: v for k, v in a.params.items() if k != "roleArn"}.__repr__())
                    for a in r.actions
                ),
            )
            for r in project.rules
        )

    def normalise(project):  # type: ignore[no-untyped-def]
        return [
            (
                n,
                s,
                v,
                tuple(
                    (t, p.replace("arn:aws:lambda:us-east-1:123456789012:function:", ""))
                    for t, p in acts
                ),
            )
            for n, s, v, acts in shape(project)
        ]

    assert normalise(native) == normalise(template)
    assert {t.name: (t.key, t.ttl_attribute) for t in native.tables} == {
        t.name: (t.key, t.ttl_attribute) for t in template.tables
    }
    assert [(m.function, m.stream, m.batch_size) for m in native.event_source_mappings] == [
        (m.function, m.stream, m.batch_size) for m in template.event_source_mappings
    ]
    assert native.functions[0].code_path == template.functions[0].code_path
    assert (
        template.policies[0]
        .document["Statement"][2]["Resource"][0]
        .endswith("chat/in/${iot:ClientId}")
    )


def test_diagnostics_name_file_line_and_column() -> None:
    project = load_project([BAD])
    messages = [str(d) for d in project.diagnostics]
    broken = BAD / "broken.yaml"
    expected = [
        f"{broken}:3:18: rule 'Typo': unknown function 'concatt'",  # column of the name
        f"{broken}:9:9: rule 'WrongAction': unknown action type 'sqs'",
        f"{broken}:18:1: unknown section 'unknown'",
        f"{broken}:13:9: rule 'MissingTable': dynamoDBv2 action points at unknown table 'nowhere'",
    ]
    for line in expected:
        assert any(m.startswith(line) for m in messages), (line, messages)
    # In a block scalar, SQL lines map to file lines: the end of the statement is just after
    # its last character (17:26 is the '>'), not on the next line.
    assert f"{broken}:17:27: rule 'BlockScalar': unexpected end of statement" in messages
    assert any(m.startswith(f"{BAD / 'notyaml.yaml'}:") and "YAML" in m for m in messages)
    assert [r.name for r in project.rules] == ["MissingTable"]


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emulator", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
        check=False,
    )


def test_rules_test_on_the_template_prints_the_chat_actions() -> None:
    def actions(
        topic: str, payload: str, client_id: str = "c1"
    ) -> dict[str, list[dict[str, object]]]:
        result = _cli(
            "rules",
            "test",
            "--rules",
            "template.yaml",
            "--topic",
            topic,
            "--payload",
            payload,
            "--client-id",
            client_id,
            "--json",
        )
        assert result.returncode == 0, result.stderr
        return {r["rule"]: r["actions"] for r in json.loads(result.stdout)}

    out = actions("chat/out", '{"message": "hi", "room": "/lobby"}')
    assert out == {
        "ChatRepublish": [
            {"type": "republish", "topic": "chat/pub/lobby", "qos": 1, "retain": False}
        ]
    }
    hello = actions("chat/out", '{"connected": true, "path": "/lobby"}')
    assert hello["ChatLambda"][0]["functionName"] == "chat"
    assert (
        hello["ChatLambda"][0]["functionArn"]
        == "arn:aws:lambda:us-east-1:123456789012:function:chat"
    )
    stored = actions("chat/pub/lobby", '{"message": "hi", "timestamp": 1700000000000}')
    assert stored == {"ChatStore": [{"type": "dynamoDBv2", "tableName": "chat"}]}
    presence = actions("$aws/events/presence/disconnected/c1", '{"eventType": "disconnected"}')
    assert presence["ChatPresence"][0]["functionName"] == "chat"
    stream = actions("chat/stream", '{"sendroom": "/lobby"}', "c7")
    assert stream == {
        "ChatStream": [{"type": "kinesis", "streamName": "chat-stream", "partitionKey": "c7"}]
    }
    human = _cli(
        "rules",
        "test",
        "--rules",
        "template.yaml",
        "--topic",
        "chat/out",
        "--payload",
        '{"message": "hi", "room": "/lobby"}',
    )
    assert "rule ChatRepublish matched" in human.stdout
    assert "-> republish: topic=chat/pub/lobby" in human.stdout


def test_rules_check_exits_non_zero_with_messages() -> None:
    bad = _cli("rules", "check", str(BAD))
    assert bad.returncode == 1
    assert "unknown function 'concatt'" in bad.stdout
    for path in ("rules", "template.yaml"):
        good = _cli("rules", "check", path)
        assert good.returncode == 0, good.stdout
    # Two descriptions of the same stack: each path is checked on its own ...
    both = _cli("rules", "check", "rules/", "template.yaml")
    assert both.returncode == 0, both.stdout + both.stderr
    assert "rules/: 1 files, 5 rules" in both.stderr
    assert "template.yaml: 1 files, 5 rules" in both.stderr
    # ... unless asked to load them as one deployment, as `up --rules rules --rules
    # template.yaml` would: then each second declaration names the first.
    together = _cli("rules", "check", "--together", "rules/", "template.yaml")
    assert together.returncode == 1
    assert (
        "template.yaml:106:5: rule 'ChatStore' is defined twice (first at rules/chat.yaml:15:5)"
        in together.stdout.splitlines()
    ), together.stdout
    assert "function 'chat' is defined twice (first at rules/chat.yaml:" in together.stdout
    # The second declarations are not loaded (AWS would refuse to create them).
    assert "rules/ + template.yaml: 2 files, 5 rules, 1 functions, 2 tables" in together.stderr


def test_a_name_declared_twice_in_one_folder_names_both_places(tmp_path: Path) -> None:
    rule = (
        "  - ruleName: R\n    sql: \"SELECT * FROM 'a'\"\n    actions: [{republish: {topic: b}}]\n"
    )
    (tmp_path / "a.yaml").write_text("rules:\n" + rule)
    (tmp_path / "b.yaml").write_text("# second\nrules:\n" + rule)
    project = load_project([tmp_path])
    assert [r.source.file.name for r in project.rules if r.source] == ["a.yaml"]
    assert [str(d) for d in project.errors] == [
        f"{tmp_path / 'b.yaml'}:3:5: rule 'R' is defined twice (first at {tmp_path / 'a.yaml'}:2:5)"
    ]


def test_rules_eval_jsonl() -> None:
    lines = [
        {"sql": "SELECT upper(a) AS b FROM 'x/+'", "topic": "x/1", "payload": {"a": "q"}},
        {"sql": "SELECT * FROM 'x/+' WHERE a > 5", "topic": "x/1", "payload": {"a": 1}},
        {"sql": "SELECT encode(*, 'base64') AS e FROM 'x'", "topic": "x", "payload_b64": "AAEC"},
        {
            "sql": "SELECT VALUE 5.0 FROM 'x'",
            "topic": "x",
            "payload_text": "{}",
            "sql_version": "2015-10-08",
        },
        {"sql": "SELECT nope( FROM 'x'", "topic": "x", "payload": {}},
    ]
    result = _cli("rules", "eval", "--jsonl", stdin="\n".join(json.dumps(x) for x in lines))
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert out[0] == {"matched": True, "output": {"b": "Q"}}
    assert out[1] == {"matched": False, "output": None}
    assert out[2] == {"matched": True, "output": {"e": "AAEC"}}
    assert out[3] == {"matched": True, "output": 5.0}
    assert "error" in out[4] and "column" in out[4]["error"]


def test_paths_can_be_files_or_folders(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("rules: []\n")
    (tmp_path / "ignored.txt").write_text("x")
    assert load_project([tmp_path]).files == (tmp_path / "a.yaml",)
