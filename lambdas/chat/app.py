"""The chat backend, deployed to AWS Lambda as is (handler ``app.handler``).

Invoked three ways:
- by a topic rule on ``chat/out`` (a browser's announcement or request, with ``clientId``);
- by a topic rule on ``$aws/events/presence/#`` (AWS IoT lifecycle events);
- by the Kinesis event source mapping of the ``chat/stream`` stream (micro-batches).

It answers a browser on ``chat/in/<clientId>`` through the IoT data-plane API, reads a
room's backlog from the messages table and keeps who is online in the presence table.
Replies are data only; nothing is sent to the browser to evaluate.

Anyone may publish anything on ``chat/out``, and the ChatStore rule keeps it as sent, so
the replies are built to hold whatever the tables hold: DynamoDB's numbers (``Decimal``)
become JSON numbers, and every reply fits AWS IoT's 128 KB payload limit (the newest
messages are kept; one message too big on its own is cut, and says so).

A room is one topic level, ``chat/pub/<room>``, named in events as ``/<room>``: a deeper
path (``/lobby/x``) is not a room here, as it is not for the ChatRepublish rule (the same
pattern, ``ROOM_PATH``) nor for the page.
"""

import base64
import json
import logging
import os
import re
import time
from decimal import Decimal

import boto3
from boto3.dynamodb.conditions import Attr, Key
from boto3.dynamodb.types import Binary
from botocore.exceptions import ClientError

logger = logging.getLogger()
logger.setLevel(logging.INFO)

MESSAGES = os.environ.get("TABLE_NAME", "chat")
PRESENCE = os.environ.get("PRESENCE_TABLE", "chat-presence")
BACKLOG = int(os.environ.get("BACKLOG_SIZE", "50"))
PRESENCE_TTL = 24 * 3600
MAX_PAYLOAD = 128 * 1024  # AWS IoT: a message payload (and a data-plane Publish) is 128 KB
MAX_NAME = 64  # characters of a name in presence lists and in a cut message
CUT = "…"  # ends a text cut to fit a reply
# "/" and one topic level without MQTT's wildcards, matched whole: the ChatRepublish rule's
# WHERE clause has the same pattern, as regexp_matches(room, '^/[^/+#]+$').
ROOM_PATH = re.compile(r"/[^/+#]+")

iot = boto3.client("iot-data")
dynamodb = boto3.resource("dynamodb")


def handler(event, context):
    if isinstance(event, dict) and "Records" in event:
        for record in event["Records"]:
            data = json.loads(base64.b64decode(record["kinesis"]["data"]))
            logger.info("stream record %s", record["kinesis"]["sequenceNumber"])
            route(data)
        return {"records": len(event["Records"])}
    return route(event)


def route(msg):
    if not isinstance(msg, dict):
        logger.warning("ignored a non-object event: %r", msg)
        return None
    if "eventType" in msg:
        return presence_event(msg)
    client_id = msg.get("clientId")
    if not client_id or not isinstance(client_id, str):
        logger.warning("ignored an event without clientId: %s", as_text(msg)[:200])
        return None
    if msg.get("connected"):
        return connected(client_id, msg)
    if "sendroom" in msg:
        return send_backlog(client_id, msg["sendroom"])
    return None  # chat messages themselves are republished and stored by rules


def room_of(path):
    """'/lobby' (a page path) -> 'lobby' (the room key and topic level); '' or '/' is the
    lobby; None for anything that is not one room ('/lobby/x', 'a+b', a number)."""
    if path is None or path in ("", "/"):
        return "lobby"
    if isinstance(path, str) and ROOM_PATH.fullmatch(path):
        return path[1:]
    return None


def not_a_room(client_id, path):
    text = encode(path).decode()[:80]
    logger.info("%s asked for %s, not a room", client_id, text)
    reply(
        client_id,
        {
            "type": "error",
            "message": f"{text} is not a room: a room is '/' and one topic level,"
            " without '/', '+' or '#'",
        },
    )
    return {"error": "not a room"}


def json_value(value):
    """What ``json`` cannot encode by itself, as the boto3 resource reads it: numbers are
    ``Decimal`` (integers stay integers), sets and binaries come from other writers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if isinstance(value, Binary):
        return base64.b64encode(value.value).decode()
    raise TypeError(f"{type(value).__name__} in a reply")


def encode(body):
    """The reply's bytes: compact UTF-8 (CJK text is 3 bytes a character, not 6 as \\uXXXX)."""
    return json.dumps(body, default=json_value, ensure_ascii=False, separators=(",", ":")).encode()


def reply(client_id, body):
    iot.publish(topic=f"chat/in/{client_id}", qos=1, payload=encode(body))


def fit(body, key, entries, shrink=None):
    """``body`` with ``body[key]`` the longest prefix of ``entries`` that keeps the reply
    within MAX_PAYLOAD, and ``body["omitted"]`` the number left out. An entry too big on
    its own goes through ``shrink`` rather than leaving the list empty."""
    body = dict(body, **{key: [], "omitted": len(entries)})
    room = MAX_PAYLOAD - len(encode(body))  # "omitted" can only get shorter
    kept = []
    for entry in entries:
        size = len(encode(entry)) + (1 if kept else 0)  # and its comma
        if size > room:
            if not kept and shrink is not None:
                kept.append(shrink(entry, room))
            break
        kept.append(entry)
        room -= size
    body[key] = kept
    body["omitted"] = len(entries) - len(kept)
    return body


def shorten(message, room):
    """A backlog message cut to ``room`` bytes of JSON: its name to MAX_NAME characters,
    its message to the longest prefix that fits (of its JSON text, if not a string), each
    ending in CUT, and ``truncated`` set."""
    out = dict(message, truncated=True)
    name = as_text(out.get("name"))
    if len(name) > MAX_NAME:
        out["name"] = name[:MAX_NAME] + CUT
    text = as_text(out.get("message"))
    low, high = 0, len(text)  # bisection on the prefix's length
    while low < high:
        mid = (low + high + 1) // 2
        out["message"] = text[:mid] + CUT
        if len(encode(out)) <= room:
            low = mid
        else:
            high = mid - 1
    out["message"] = text[:low] + CUT
    return out


def as_text(value):
    return value if isinstance(value, str) else encode(value).decode()


def connected(client_id, msg):
    """An announcement (on connect or after a name change).

    Asynchronous invocations may run concurrently and in any order, so an announcement
    carries the page's sequence number and only a newer one may overwrite the entry.
    """
    room = room_of(msg.get("path"))
    if room is None:
        return not_a_room(client_id, msg.get("path"))
    name = display_name(msg.get("name"))
    item = {"clientId": client_id, "room": room, "name": name}
    item["ttl"] = int(time.time()) + PRESENCE_TTL
    condition = {}
    seq = msg.get("seq")
    if isinstance(seq, int) and not isinstance(seq, bool):
        item["seq"] = seq
        condition["ConditionExpression"] = Attr("seq").not_exists() | Attr("seq").lt(seq)
    try:
        dynamodb.Table(PRESENCE).put_item(Item=item, **condition)
    except ClientError as err:
        if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        logger.info("stale announcement %s from %s ignored", seq, client_id)
        return {"room": room, "stale": True}
    reply(client_id, {"type": "welcome", "room": room, "message": f"Welcome to /{room}, {name}!"})
    broadcast_presence(room)
    return {"room": room}


def display_name(value):
    """A name as text of at most MAX_NAME characters (a number is its digits)."""
    if value is None or value == "":
        return "anonymous"
    return as_text(value)[:MAX_NAME]


def send_backlog(client_id, path):
    """The room's latest messages, oldest first, as many as fit in one reply.

    The sort key ``id`` (the ChatRepublish rule's ``<timestamp>-<uuid>``) orders messages
    by time and never collides. One query page (1 MB) holds more than one reply can
    carry, so no further page is read.
    """
    room = room_of(path)
    if room is None:
        return not_a_room(client_id, path)
    items = dynamodb.Table(MESSAGES).query(
        KeyConditionExpression=Key("room").eq(room),
        ScanIndexForward=False,
        Limit=BACKLOG,
    )["Items"]
    newest_first = [  # each as the room's subscribers had it on chat/pub/<room>
        {
            "room": f"/{room}",
            "id": i.get("id"),
            "message": i.get("message"),
            "name": i.get("name"),
            "clientId": i.get("clientId"),
            "timestamp": i.get("timestamp"),
        }
        for i in items
    ]
    body = fit({"type": "backlog", "room": room}, "messages", newest_first, shorten)
    body["messages"].reverse()
    reply(client_id, body)
    return {"room": room, "count": len(body["messages"]), "omitted": body["omitted"]}


def members(room):
    table = dynamodb.Table(PRESENCE)
    kwargs = {"FilterExpression": Attr("room").eq(room), "ConsistentRead": True}
    items = []
    while True:
        response = table.scan(**kwargs)
        items.extend(response["Items"])
        if "LastEvaluatedKey" not in response:
            return items
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def broadcast_presence(room):
    """Send the room's member list to its members; ``asOf`` (microseconds, taken before
    the read) lets a page drop a list that a concurrent invocation delivers late. A room
    too crowded for one reply lists the first names in order (``omitted`` says how many
    more)."""
    as_of = time.time_ns() // 1000
    online = members(room)
    listed = sorted(
        ({"clientId": m["clientId"], "name": m["name"]} for m in online),
        key=lambda m: m["name"],
    )
    body = fit({"type": "presence", "room": room, "asOf": as_of}, "online", listed)
    for member in online:
        reply(member["clientId"], body)


def presence_event(event):
    client_id = event.get("clientId", "")
    logger.info(
        "presence %s %s %s", event.get("eventType"), client_id, event.get("disconnectReason", "")
    )
    if event.get("eventType") != "disconnected":
        return None
    table = dynamodb.Table(PRESENCE)
    item = table.get_item(Key={"clientId": client_id}).get("Item")
    if item is None:
        return None
    table.delete_item(Key={"clientId": client_id})
    broadcast_presence(item["room"])
    return {"left": item["room"]}
