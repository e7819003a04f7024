"""``up`` on a template whose function has a runtime the emulator cannot run: the start-up
log names the function, its runtime and where it is declared; the function is not
registered (no worker runs its code under a runtime client of another language), and a
rule that invokes it fails into its error action as for a missing function. ``rules check``
reports the same error and fails."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from emulator.testing import TestClient
from tests.integration.conftest import EmulatorStarter

TEMPLATE = """\
Resources:
  Greeter:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: greeter
      Handler: Greeter::handleRequest
      Runtime: java21
      CodeUri: code
  Greet:
    Type: AWS::IoT::TopicRule
    Properties:
      RuleName: Greet
      TopicRulePayload:
        Sql: SELECT * FROM 'greet'
        Actions:
          - Lambda: {FunctionArn: !GetAtt Greeter.Arn}
        ErrorAction:
          Republish: {Topic: errors/greet, RoleArn: arn:aws:iam::123456789012:role/r}
"""


async def test_a_java_function_is_not_run_and_its_rule_fails_as_for_a_missing_one(
    tmp_path: Path, start_emulator: EmulatorStarter, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "Greeter.java").write_text("public class Greeter {}\n")
    template = tmp_path / "template.yaml"
    template.write_text(TEMPLATE)
    with caplog.at_level(logging.ERROR):
        em = await start_emulator(rules=[template])
    assert f"{template}:7:16: function 'greeter': runtime 'java21' cannot run" in caplog.text
    assert "greeter" not in em.functions.pools
    assert em.mqtt_port is not None
    client = TestClient("127.0.0.1", em.mqtt_port, "c1")
    await client.connect()
    await client.subscribe("errors/greet", 1)
    await client.publish("greet", json.dumps({"hello": 1}), qos=1)
    error = (await client.message_on("errors/greet")).json()
    (failure,) = error["failures"]
    assert failure["failedAction"] == "LambdaAction"
    assert "Function not found" in failure["errorMessage"], failure
    assert "arn:aws:lambda:us-east-1:123456789012:function:greeter" in failure["errorMessage"]
    await client.close()


def test_rules_check_reports_the_function_and_its_runtime(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    template = tmp_path / "template.yaml"
    template.write_text(TEMPLATE)
    done = subprocess.run(
        [sys.executable, "-m", "emulator", "rules", "check", str(template)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert f"{template}:7:16: function 'greeter': runtime 'java21' cannot run" in done.stdout
    assert "1 errors" in done.stderr
