"""Turn scenario rows into a table with ratios to plain amqtt and mosquitto, and a JSON file."""

from __future__ import annotations

import datetime as dt
import json
import platform
from pathlib import Path
from typing import Any

Row = dict[str, Any]
RESULTS = Path(__file__).resolve().parent / "results"

# Metrics where a smaller value is better (the ratio is inverted so > 1 means "emulator wins").
LOWER_IS_BETTER = {"ms", "KiB", "s"}


def add_ratios(rows: list[Row]) -> list[Row]:
    """Per (scenario, metric), the emulator's value relative to amqtt's and mosquitto's."""
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        by_key.setdefault((r["scenario"], r["metric"]), {})[r["broker"]] = r["value"]
    for r in rows:
        if r["broker"] != "emulator" or r["value"] in (None, 0) or r["unit"] == "x":
            continue
        peers = by_key[(r["scenario"], r["metric"])]
        for ref in ("amqtt", "mosquitto"):
            other = peers.get(ref)
            if isinstance(other, int | float) and other:
                if r["unit"] in LOWER_IS_BETTER:
                    r[f"vs_{ref}"] = round(other / r["value"], 2)
                else:
                    r[f"vs_{ref}"] = round(r["value"] / other, 2)
    return rows


def table(rows: list[Row]) -> str:
    """A Markdown table (it goes straight into docs/performance.md)."""
    head = "| scenario | broker | metric | value | unit | vs amqtt | vs mosquitto |"
    lines = [head, "|---|---|---|---:|---|---:|---:|"]
    for r in rows:
        value = "—" if r["value"] is None else f"{r['value']:,}"
        if r.get("note"):
            value += f" ({r['note']})"
        lines.append(
            f"| {r['scenario']} | {r['broker']} | {r['metric']} | {value} | {r['unit']} "
            f"| {_x(r.get('vs_amqtt'))} | {_x(r.get('vs_mosquitto'))} |"
        )
    return "\n".join(lines)


def _x(v: float | None) -> str:
    return "" if v is None else f"{v}×"


def write_json(rows: list[Row], args: dict[str, Any], directory: Path = RESULTS) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"{stamp}.json"
    path.write_text(
        json.dumps(
            {
                "time": stamp,
                "machine": {"platform": platform.platform(), "python": platform.python_version()},
                "args": args,
                "rows": rows,
            },
            indent=2,
        )
    )
    return path
