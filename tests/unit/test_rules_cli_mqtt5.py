"""``rules eval`` and ``rules test`` take MQTT 5 properties for the test message, as the
data-plane Publish names them, so ``get_mqtt_property``/``get_user_properties`` and a
republish action's ``headers`` can be tried before deploying (issue 14)."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from emulator.cli.rules import run_eval, run_test

RULES = """
rules:
  - ruleName: Tagged
    sql: >-
      SELECT get_user_properties('tag') AS tags, get_mqtt_property('response_topic') AS rt
      FROM 'in/#'
    awsIotSqlVersion: "2016-03-23"
    actions:
      - republish:
          topic: "${get_mqtt_property('response_topic')}"
          headers:
            correlationData: "${get_mqtt_property('correlation_data')}"
            userProperties:
              - {key: first-tag, value: "${get_user_properties('tag')[0]}"}
"""


def test_rules_eval_reads_the_lines_mqtt5_properties() -> None:
    line = {
        "sql": "SELECT get_user_properties() AS all, get_mqtt_property('format_indicator') AS f,"
        " get_mqtt_property('correlation_data') AS c FROM 't'",
        "topic": "t",
        "payload": {},
        "user_properties": [{"a": "1"}, {"a": "2"}],
        "payload_format_indicator": "UTF8_DATA",
        "correlation_data": "Y29ycg==",
    }
    out = io.StringIO()
    run_eval(io.StringIO(json.dumps(line) + "\n"), out)
    assert json.loads(out.getvalue()) == {
        "matched": True,
        "output": {"all": [{"a": "1"}, {"a": "2"}], "f": "UTF8_DATA", "c": "Y29ycg=="},
    }


def test_rules_eval_explains_bad_properties() -> None:
    line = {"sql": "SELECT 1 AS x FROM 't'", "topic": "t", "payload": {}, "correlation_data": "%"}
    out = io.StringIO()
    run_eval(io.StringIO(json.dumps(line) + "\n"), out)
    assert json.loads(out.getvalue()) == {"error": "correlation data must be base64"}


def test_rules_test_shows_the_headers_rendered_from_the_properties(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    args = argparse.Namespace(
        rules=[str(tmp_path)],
        topic="in/x",
        payload="{}",
        client_id=None,
        json=True,
        user_property=["tag=red", "tag=blue"],
        content_type=None,
        response_topic="replies/me",
        correlation_data="Y29ycg==",
        payload_format_indicator=None,
        message_expiry=None,
    )
    assert run_test(args) == 0
    [result] = json.loads(capsys.readouterr().out)
    assert result["output"] == {"tags": ["red", "blue"], "rt": "replies/me"}
    [action] = result["actions"]
    assert action["topic"] == "replies/me"
    assert action["headers"] == {
        "correlationData": "Y29ycg==",
        "userProperties": [{"key": "first-tag", "value": "red"}],
    }
