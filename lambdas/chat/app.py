"""The chat backend, deployed to AWS Lambda as is (handler ``app.handler``).

Invoked three ways:
- by a topic rule on ``chat/out`` (a browser's announcement or request, with ``clientId``);
- by a topic rule on ``$aws/events/presence/#`` (AWS IoT lifecycle events);
- by the Kinesis event source mapping of the ``chat/stream`` stream (micro-batches).

It answers a browser on ``chat/in/<clientId>`` through the IoT data-plane API, reads a
room's backlog from the messages table and keeps who is online in the presence table.
Replies are data only; nothing is sent to the browser to evaluate.
"""

import base64
import json
import logging
import os
import time

import boto3
from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

logger = logging.getLogger()
logger.setLevel(logging.INFO)

MESSAGES = os.environ.get("TABLE_NAME", "chat")
PRESENCE = os.environ.get("PRESENCE_TABLE", "chat-presence")
BACKLOG = int(os.environ.get("BACKLOG_SIZE", "50"))
PRESENCE_TTL = 24 * 3600

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
    if not client_id:
        logger.warning("ignored an event without clientId: %s", json.dumps(msg)[:200])
        return None
    if msg.get("connected"):
        return connected(client_id, msg)
    if "sendroom" in msg:
        return send_backlog(client_id, room_of(msg["sendroom"]))
    return None  # chat messages themselves are republished and stored by rules


def room_of(path):
    """'/lobby' (a page path) -> 'lobby' (the room key and topic level)."""
    room = str(path or "").strip("/") or "lobby"
    return room.split("/")[0]


def reply(client_id, body):
    iot.publish(topic=f"chat/in/{client_id}", qos=1, payload=json.dumps(body))


def connected(client_id, msg):
    """An announcement (on connect or after a name change).

    Asynchronous invocations may run concurrently and in any order, so an announcement
    carries the page's sequence number and only a newer one may overwrite the entry.
    """
    room = room_of(msg.get("path"))
    name = str(msg.get("name") or "anonymous")[:64]
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


def send_backlog(client_id, room):
    items = dynamodb.Table(MESSAGES).query(
        KeyConditionExpression=Key("room").eq(room),
        ScanIndexForward=False,
        Limit=BACKLOG,
    )["Items"]
    messages = [
        {
            "message": i.get("message"),
            "name": i.get("name"),
            "clientId": i.get("clientId"),
            "timestamp": int(i["timestamp"]),
        }
        for i in reversed(items)
    ]
    reply(client_id, {"type": "backlog", "room": room, "messages": messages})
    return {"room": room, "count": len(messages)}


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
    the read) lets a page drop a list that a concurrent invocation delivers late."""
    as_of = time.time_ns() // 1000
    online = members(room)
    body = {
        "type": "presence",
        "room": room,
        "asOf": as_of,
        "online": sorted(
            ({"clientId": m["clientId"], "name": m["name"]} for m in online),
            key=lambda m: m["name"],
        ),
    }
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
