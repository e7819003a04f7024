"""``rules eval`` and ``rules test`` take a Basic Ingest topic as the engine does: the named
rule runs whatever its FROM, and sees the topic without ``$aws/rules/<rule>/``
(iot-basic-ingest.md)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from emulator.cli.rules import run_eval
from emulator.project.loader import load_project
from emulator.rules.context import MessageContexts
from emulator.rules.dryrun import dry_run

TOPIC = "$aws/rules/BuildingManager/Buildings/Building5/Floor2/Room201/Lights"


def test_rules_eval_strips_the_basic_ingest_prefix() -> None:
    line = {"sql": "SELECT topic(3) AS floor FROM 'elsewhere'", "topic": TOPIC, "payload": {}}
    out = io.StringIO()
    run_eval(io.StringIO(json.dumps(line) + "\n"), out)
    assert json.loads(out.getvalue()) == {"matched": True, "output": {"floor": "Floor2"}}


def test_rules_test_runs_only_the_named_rule(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(
        """
rules:
  - ruleName: BuildingManager
    sql: SELECT topic(3) AS floor
    actions:
      - republish: {topic: "floors/${topic(3)}"}
  - ruleName: Everything
    sql: SELECT * FROM '#'
    actions:
      - republish: {topic: "all"}
"""
    )
    project = load_project([tmp_path])
    assert project.errors == ()
    ctx = MessageContexts().of_payload(TOPIC, b"{}", 1_700_000_000_000)
    [result] = dry_run(project.rules, ctx)
    assert result["rule"] == "BuildingManager"
    assert result["output"] == {"floor": "Floor2"}
    assert result["actions"][0]["topic"] == "floors/Floor2"
