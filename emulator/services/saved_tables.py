"""What moto's tables held, kept across a restart: moto's server keeps nothing on disk, and
its ``/moto-api/`` only resets (its request recorder replays every call ever made, polls
included, so it grows without bound). So at a clean stop the emulator scans every table
into ``moto-tables.json`` in the data directory, and at the next start, once the tables are
created again, writes the items back. Streams are not kept (moto has no way to put a
record back with its sequence number); a crash keeps what the last clean stop saved.

Items are DynamoDB's wire form (``{"S": ...}``), binary values in base64 as on the wire.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from pathlib import Path
from typing import Any

from emulator.files import write_atomically

log = logging.getLogger(__name__)

FILE_NAME = "moto-tables.json"
FORMAT = 1
BATCH = 25  # BatchWriteItem's limit
Json = Any


def encode_value(value: Json) -> Json:
    """An attribute value with its bytes as base64 text (JSON has no bytes)."""
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": base64.b64encode(inner).decode("ascii")}
    if kind == "BS":
        return {"BS": [base64.b64encode(b).decode("ascii") for b in inner]}
    if kind == "M":
        return {"M": {k: encode_value(v) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [encode_value(v) for v in inner]}
    return value


def decode_value(value: Json) -> Json:
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": base64.b64decode(inner)}
    if kind == "BS":
        return {"BS": [base64.b64decode(b) for b in inner]}
    if kind == "M":
        return {"M": {k: decode_value(v) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [decode_value(v) for v in inner]}
    return value


async def table_names(dynamodb: Any) -> list[str]:
    names: list[str] = []
    kwargs: dict[str, Any] = {}
    while True:
        page = await dynamodb.list_tables(**kwargs)
        names += page.get("TableNames", [])
        if "LastEvaluatedTableName" not in page:
            return names
        kwargs = {"ExclusiveStartTableName": page["LastEvaluatedTableName"]}


async def save_tables(dynamodb: Any, path: Path) -> int:
    """Every item of every table into ``path``; the number of items. The file is replaced
    only once every scan has succeeded."""
    tables: dict[str, list[Json]] = {}
    for name in await table_names(dynamodb):
        items: list[Json] = []
        scan: dict[str, Any] = {"TableName": name, "ConsistentRead": True}
        while True:
            page = await dynamodb.scan(**scan)
            items += ({k: encode_value(v) for k, v in i.items()} for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        tables[name] = items
    text = json.dumps({"format": FORMAT, "tables": tables}, separators=(",", ":"))
    await asyncio.to_thread(write_atomically, path, text)
    return sum(len(items) for items in tables.values())


async def load_tables(dynamodb: Any, path: Path) -> int:
    """Write the saved items back into their tables (those that exist); the number
    written. A file that cannot be read is logged and left as it is."""
    try:
        body = json.loads(await asyncio.to_thread(path.read_text, "utf-8"))
        if body.get("format") != FORMAT:
            raise ValueError(f"not a table file of format {FORMAT}")
        tables: dict[str, list[Json]] = body["tables"]
    except FileNotFoundError:
        return 0
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        log.error("%s: cannot read the saved tables: %s", path, exc)
        return 0
    existing = set(await table_names(dynamodb))
    written = 0
    for name, items in tables.items():
        if name not in existing:
            log.warning("%s: table %s is no longer declared; its items are not loaded", path, name)
            continue
        for start in range(0, len(items), BATCH):
            requests = [
                {"PutRequest": {"Item": {k: decode_value(v) for k, v in item.items()}}}
                for item in items[start : start + BATCH]
            ]
            pending: dict[str, Any] = {name: requests}
            while pending:
                answer = await dynamodb.batch_write_item(RequestItems=pending)
                pending = answer.get("UnprocessedItems") or {}
            written += len(requests)
    return written
