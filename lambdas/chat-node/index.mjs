/**
 * The chat backend in Node.js (handler `index.handler`, runtime nodejs20.x or later): the
 * same function as lambdas/chat/app.py, written with the AWS SDK for JavaScript v3 that
 * AWS's Node.js runtimes bundle (nothing to ship beside this file).
 *
 * Invoked three ways:
 * - by a topic rule on `chat/out` (a browser's announcement or request, with `clientId`);
 * - by a topic rule on `$aws/events/presence/#` (AWS IoT lifecycle events);
 * - by the Kinesis event source mapping of the `chat/stream` stream (micro-batches).
 *
 * It answers a browser on `chat/in/<clientId>` through the IoT data-plane API, reads a
 * room's backlog from the messages table and keeps who is online in the presence table.
 * Replies are data only; nothing is sent to the browser to evaluate.
 *
 * Anyone may publish anything on `chat/out`, and the ChatStore rule keeps it as sent, so
 * the replies are built to hold whatever the tables hold: DynamoDB's numbers become JSON
 * numbers (whole ones with all their digits), sets sorted lists, binaries base64, and
 * every reply fits AWS IoT's 128 KB
 * payload limit (the newest messages are kept; one message too big on its own is cut,
 * and says so). Lengths are counted in characters (code points), as Python counts them.
 *
 * A room is one topic level, `chat/pub/<room>`, named in events as `/<room>`: a deeper
 * path (`/lobby/x`) is not a room here, as it is not for the ChatRepublish rule (the same
 * pattern, ROOM_PATH) nor for the page.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import {
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  NumberValue,
  PutCommand,
  QueryCommand,
  ScanCommand,
} from "@aws-sdk/lib-dynamodb";
import { IoTDataPlaneClient, PublishCommand } from "@aws-sdk/client-iot-data-plane";

const MESSAGES = process.env.TABLE_NAME || "chat";
const PRESENCE = process.env.PRESENCE_TABLE || "chat-presence";
const BACKLOG = Number.parseInt(process.env.BACKLOG_SIZE || "50", 10);
const PRESENCE_TTL = 24 * 3600;
const MAX_PAYLOAD = 128 * 1024; // AWS IoT: a message payload (and a data-plane Publish) is 128 KB
const MAX_NAME = 64; // characters of a name in presence lists and in a cut message
const CUT = "…"; // ends a text cut to fit a reply
// "/" and one topic level without MQTT's wildcards, matched whole: the ChatRepublish rule's
// WHERE clause has the same pattern, as regexp_matches(room, '^/[^/+#]+$').
const ROOM_PATH = /^\/[^/+#]+$/u;

const iot = new IoTDataPlaneClient({});
// Numbers are read as NumberValue (their digits), so a number no double holds exactly
// does not fail the read; encode() writes them as JSON numbers.
const dynamodb = DynamoDBDocumentClient.from(new DynamoDBClient({}), {
  unmarshallOptions: { wrapNumbers: true },
});

export const handler = async (event) => {
  if (isObject(event) && Object.hasOwn(event, "Records")) {
    for (const record of event.Records) {
      const data = JSON.parse(Buffer.from(record.kinesis.data, "base64").toString("utf8"));
      console.info("stream record %s", record.kinesis.sequenceNumber);
      await route(data);
    }
    return { records: event.Records.length };
  }
  return route(event);
};

async function route(msg) {
  if (!isObject(msg)) {
    console.warn("ignored a non-object event: %s", encode(msg));
    return null;
  }
  if (Object.hasOwn(msg, "eventType")) {
    return presenceEvent(msg);
  }
  const clientId = msg.clientId;
  if (!clientId || typeof clientId !== "string") {
    console.warn("ignored an event without clientId: %s", prefix(asText(msg), 200));
    return null;
  }
  if (truthy(msg.connected)) {
    return connected(clientId, msg);
  }
  if (Object.hasOwn(msg, "sendroom")) {
    return sendBacklog(clientId, msg.sendroom);
  }
  return null; // chat messages themselves are republished and stored by rules
}

/** An object (a JSON object, not an array nor null): Python's dict. */
function isObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Python's truth: empty lists and objects are false too. */
function truthy(value) {
  if (Array.isArray(value)) return value.length > 0;
  if (isObject(value)) return Object.keys(value).length > 0;
  return Boolean(value);
}

/** The first `count` characters (code points, not UTF-16 units) of `text`. */
function prefix(text, count) {
  return Array.from(text).slice(0, count).join("");
}

/**
 * '/lobby' (a page path) -> 'lobby' (the room key and topic level); '' or '/' is the lobby;
 * null for anything that is not one room ('/lobby/x', 'a+b', a number).
 */
function roomOf(path) {
  if (path === undefined || path === null || path === "" || path === "/") return "lobby";
  if (typeof path === "string" && ROOM_PATH.test(path)) return path.slice(1);
  return null;
}

async function notARoom(clientId, path) {
  const text = prefix(encode(path), 80);
  console.info("%s asked for %s, not a room", clientId, text);
  await reply(clientId, {
    type: "error",
    message: `${text} is not a room: a room is '/' and one topic level, without '/', '+' or '#'`,
  });
  return { error: "not a room" };
}

/**
 * The reply's text: compact JSON of what the tables hold (CJK text is 3 bytes a character,
 * not 6 as \uXXXX). A DynamoDB number keeps its digits when it is a whole number (as
 * Python's int does; a double would round 12345678901234567890), else it is the nearest
 * double; sets are lists sorted by their text, binaries base64.
 */
function encode(value) {
  if (value === undefined || value === null) return "null";
  if (value instanceof NumberValue) return numberText(value.value);
  if (value instanceof Uint8Array) return JSON.stringify(Buffer.from(value).toString("base64"));
  if (value instanceof Set) {
    const sorted = Array.from(value).sort((a, b) => compare(setKey(a), setKey(b)));
    return `[${sorted.map(encode).join(",")}]`;
  }
  if (Array.isArray(value)) return `[${value.map(encode).join(",")}]`;
  if (typeof value === "object") {
    const fields = Object.entries(value).filter(([, v]) => v !== undefined);
    return `{${fields.map(([k, v]) => `${JSON.stringify(k)}:${encode(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

function numberText(digits) {
  const whole = /^(-?)0*(\d+)$/.exec(digits);
  if (whole) return whole[2] === "0" ? "0" : `${whole[1]}${whole[2]}`;
  return JSON.stringify(Number(digits));
}

function setKey(item) {
  if (item instanceof NumberValue) return item.value;
  if (item instanceof Uint8Array) return Buffer.from(item).toString("base64");
  return String(item);
}

/** Code point order, as Python compares strings. */
function compare(a, b) {
  const x = Array.from(a);
  const y = Array.from(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i].codePointAt(0) - y[i].codePointAt(0);
  }
  return x.length - y.length;
}

function bytes(body) {
  return Buffer.byteLength(encode(body), "utf8");
}

async function reply(clientId, body) {
  await iot.send(
    new PublishCommand({
      topic: `chat/in/${clientId}`,
      qos: 1,
      payload: Buffer.from(encode(body), "utf8"),
    }),
  );
}

/**
 * `body` with `body[key]` the longest prefix of `entries` that keeps the reply within
 * MAX_PAYLOAD, and `body.omitted` the number left out. An entry too big on its own goes
 * through `shrink` rather than leaving the list empty.
 */
function fit(body, key, entries, shrink = null) {
  const out = { ...body, [key]: [], omitted: entries.length };
  let room = MAX_PAYLOAD - bytes(out); // "omitted" can only get shorter
  const kept = [];
  for (const entry of entries) {
    const size = bytes(entry) + (kept.length ? 1 : 0); // and its comma
    if (size > room) {
      if (!kept.length && shrink !== null) kept.push(shrink(entry, room));
      break;
    }
    kept.push(entry);
    room -= size;
  }
  out[key] = kept;
  out.omitted = entries.length - kept.length;
  return out;
}

/**
 * A backlog message cut to `room` bytes of JSON: its name to MAX_NAME characters, its
 * message to the longest prefix that fits (of its JSON text, if not a string), each ending
 * in CUT, and `truncated` set.
 */
function shorten(message, room) {
  const out = { ...message, truncated: true };
  const name = Array.from(asText(out.name));
  if (name.length > MAX_NAME) out.name = name.slice(0, MAX_NAME).join("") + CUT;
  const text = Array.from(asText(out.message));
  let low = 0;
  let high = text.length; // bisection on the prefix's length
  while (low < high) {
    const mid = Math.floor((low + high + 1) / 2);
    out.message = text.slice(0, mid).join("") + CUT;
    if (bytes(out) <= room) low = mid;
    else high = mid - 1;
  }
  out.message = text.slice(0, low).join("") + CUT;
  return out;
}

function asText(value) {
  return typeof value === "string" ? value : encode(value);
}

/**
 * An announcement (on connect or after a name change).
 *
 * Asynchronous invocations may run concurrently and in any order, so an announcement
 * carries the page's sequence number and only a newer one may overwrite the entry.
 */
async function connected(clientId, msg) {
  const room = roomOf(msg.path);
  if (room === null) return notARoom(clientId, msg.path);
  const name = displayName(msg.name);
  const item = { clientId, room, name, ttl: Math.floor(Date.now() / 1000) + PRESENCE_TTL };
  const put = { TableName: PRESENCE, Item: item };
  const seq = msg.seq;
  if (Number.isInteger(seq)) {
    item.seq = seq;
    put.ConditionExpression = "attribute_not_exists(#seq) OR #seq < :seq";
    put.ExpressionAttributeNames = { "#seq": "seq" };
    put.ExpressionAttributeValues = { ":seq": seq };
  }
  try {
    await dynamodb.send(new PutCommand(put));
  } catch (err) {
    if (err?.name !== "ConditionalCheckFailedException") throw err;
    console.info("stale announcement %s from %s ignored", seq, clientId);
    return { room, stale: true };
  }
  await reply(clientId, { type: "welcome", room, message: `Welcome to /${room}, ${name}!` });
  await broadcastPresence(room);
  return { room };
}

/** A name as text of at most MAX_NAME characters (a number is its digits). */
function displayName(value) {
  if (value === undefined || value === null || value === "") return "anonymous";
  return prefix(asText(value), MAX_NAME);
}

/**
 * The room's latest messages, oldest first, as many as fit in one reply.
 *
 * The sort key `id` (the ChatRepublish rule's `<timestamp>-<uuid>`) orders messages by
 * time and never collides. One query page (1 MB) holds more than one reply can carry, so
 * no further page is read.
 */
async function sendBacklog(clientId, path) {
  const room = roomOf(path);
  if (room === null) return notARoom(clientId, path);
  const { Items: items = [] } = await dynamodb.send(
    new QueryCommand({
      TableName: MESSAGES,
      KeyConditionExpression: "#room = :room",
      ExpressionAttributeNames: { "#room": "room" },
      ExpressionAttributeValues: { ":room": room },
      ScanIndexForward: false,
      Limit: BACKLOG,
    }),
  );
  const field = (item, key) => (item[key] === undefined ? null : item[key]);
  // each as the room's subscribers had it on chat/pub/<room>
  const newestFirst = items.map((i) => ({
    room: `/${room}`,
    id: field(i, "id"),
    message: field(i, "message"),
    name: field(i, "name"),
    clientId: field(i, "clientId"),
    timestamp: field(i, "timestamp"),
  }));
  const body = fit({ type: "backlog", room }, "messages", newestFirst, shorten);
  body.messages.reverse();
  await reply(clientId, body);
  return { room, count: body.messages.length, omitted: body.omitted };
}

async function members(room) {
  const scan = {
    TableName: PRESENCE,
    FilterExpression: "#room = :room",
    ExpressionAttributeNames: { "#room": "room" },
    ExpressionAttributeValues: { ":room": room },
    ConsistentRead: true,
  };
  const items = [];
  for (;;) {
    const response = await dynamodb.send(new ScanCommand(scan));
    items.push(...(response.Items ?? []));
    if (!response.LastEvaluatedKey) return items;
    scan.ExclusiveStartKey = response.LastEvaluatedKey;
  }
}

/**
 * Send the room's member list to its members; `asOf` (microseconds, taken before the read)
 * lets a page drop a list that a concurrent invocation delivers late. A room too crowded
 * for one reply lists the first names in order (`omitted` says how many more).
 */
async function broadcastPresence(room) {
  const asOf = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  const online = await members(room);
  const listed = online
    .map((m) => ({ clientId: m.clientId, name: m.name }))
    .sort((a, b) => compare(String(a.name), String(b.name)));
  const body = fit({ type: "presence", room, asOf }, "online", listed);
  for (const member of online) {
    await reply(member.clientId, body);
  }
}

async function presenceEvent(event) {
  const clientId = event.clientId ?? "";
  console.info(
    "presence %s %s %s",
    event.eventType,
    clientId,
    event.disconnectReason ?? "",
  );
  if (event.eventType !== "disconnected") return null;
  const { Item: item } = await dynamodb.send(
    new GetCommand({ TableName: PRESENCE, Key: { clientId } }),
  );
  if (!item) return null;
  await dynamodb.send(new DeleteCommand({ TableName: PRESENCE, Key: { clientId } }));
  await broadcastPresence(item.room);
  return { left: item.room };
}
