// MQTT 5 acceptance scenarios with mqtt.js (protocolVersion 5, and 4 for MQTT 3.1.1),
// driven by tests/integration/test_mqtt5_mqttjs.py.
//
//   node mqtt5_mqttjs.cjs '{"scenario": "connack", "url": "mqtt://127.0.0.1:1883", "tag": "x"}'
//
// `url` is mqtt://host:port or ws://host:port/mqtt; `tag` makes the scenario's client IDs,
// topics and share names unique on a broker other tests use too. One JSON object is
// printed on stdout: what the scenario observed (Buffers as {"hex": ...}), or
// {"error": ...}. Every wait has a timeout; nothing sleeps.
'use strict'

const mqtt = require('mqtt')

const WAIT_MS = 8000
const args = JSON.parse(process.argv[2])
const { url, tag } = args
const clients = []
let counter = 0

function within(promise, what, ms = WAIT_MS) {
  let timer
  const timeout = new Promise((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

// Buffers as {"hex": ...}, so that the JSON says which bytes came.
function plain(value) {
  if (Buffer.isBuffer(value)) return { hex: value.toString('hex') }
  if (Array.isArray(value)) return value.map(plain)
  if (value && typeof value === 'object') {
    const out = {}
    for (const [key, item] of Object.entries(value)) out[key] = plain(item)
    return out
  }
  return value
}

// A connected client whose messages, raw PUBLISH packets in and out, and DISCONNECTs from
// the server are recorded; next() waits for the next message.
async function connect(options = {}) {
  const clientId = options.clientId !== undefined ? options.clientId : `js-${tag}-${counter++}`
  const client = mqtt.connect(url, {
    protocolVersion: 5,
    reconnectPeriod: 0,
    connectTimeout: WAIT_MS,
    ...options,
    clientId,
  })
  clients.push(client)
  client.received = []
  client.waiting = []
  client.packetsIn = []
  client.packetsOut = []
  client.disconnects = []
  client.on('message', (topic, payload, packet) => {
    const message = {
      topic,
      payload: payload.toString(),
      retain: packet.retain,
      qos: packet.qos,
      properties: plain(packet.properties || {}),
      raw: packet,
    }
    const waiter = client.waiting.shift()
    if (waiter) waiter(message)
    else client.received.push(message)
  })
  client.on('packetreceive', (packet) => {
    if (packet.cmd === 'publish') {
      client.packetsIn.push({ topic: packet.topic, properties: plain(packet.properties || {}) })
    }
  })
  client.on('packetsend', (packet) => {
    if (packet.cmd === 'publish') {
      client.packetsOut.push({ topic: packet.topic, properties: plain(packet.properties || {}) })
    }
  })
  client.on('disconnect', (packet) => client.disconnects.push(packet.reasonCode))
  client.next = (what = 'a message') => {
    if (client.received.length) return Promise.resolve(client.received.shift())
    return within(new Promise((resolve) => client.waiting.push(resolve)), `${what} (${clientId})`)
  }
  const connack = await within(
    new Promise((resolve, reject) => {
      client.once('connect', resolve)
      client.once('error', reject)
    }),
    `CONNACK (${clientId})`,
  )
  return { client, connack }
}

async function subscribe(client, filter, options = { qos: 1 }) {
  const granted = await within(client.subscribeAsync(filter, options), `SUBACK for ${filter}`)
  return granted.map((g) => g.qos)
}

function publish(client, topic, payload, options = {}) {
  return within(client.publishAsync(topic, payload, { qos: 1, ...options }), `PUBACK on ${topic}`)
}

function summary(message) {
  return { topic: message.topic, payload: message.payload, properties: message.properties }
}

const scenarios = {
  async connack() {
    const { connack } = await connect({
      clientId: '',
      clean: true,
      keepalive: 5,
      properties: { sessionExpiryInterval: 100000 },
    })
    return {
      reasonCode: connack.reasonCode,
      sessionPresent: connack.sessionPresent,
      properties: plain(connack.properties || {}),
    }
  },

  async properties() {
    const { client: receiver } = await connect()
    await subscribe(receiver, `props/${tag}`)
    const { client: sender } = await connect()
    await publish(sender, `props/${tag}`, '{}', {
      properties: {
        userProperties: { a: ['1', '3'], b: '2' },
        correlationData: Buffer.from('0001636f7272', 'hex'),
        contentType: 'application/json',
        responseTopic: 'reply/here',
        payloadFormatIndicator: true,
        messageExpiryInterval: 60,
      },
    })
    await publish(sender, `props/${tag}`, 'bare')
    return { withProperties: summary(await receiver.next()), bare: summary(await receiver.next()) }
  },

  async expiry() {
    // Forwarded as what is left: online (at once), retained (read on a new subscription),
    // and queued for an offline persistent session, where the time passes that proves it:
    // a message of 1 s is gone by then, one of 5 s has less than 5 s left.
    const { client: receiver } = await connect()
    await subscribe(receiver, `expiry/${tag}/live`)
    const { client: sender } = await connect()
    await publish(sender, `expiry/${tag}/live`, 'long', {
      properties: { messageExpiryInterval: 60 },
    })
    await publish(sender, `expiry/${tag}/kept`, 'retained', {
      retain: true,
      properties: { messageExpiryInterval: 30 },
    })
    const live = summary(await receiver.next())
    const { client: late } = await connect()
    await subscribe(late, `expiry/${tag}/kept`)
    const retained = await late.next('the retained message')
    await publish(sender, `expiry/${tag}/kept`, '', { retain: true }) // clear it

    const away = { clientId: `js-${tag}-away`, clean: false }
    const persistent = { ...away, properties: { sessionExpiryInterval: 60 } }
    const { client: first } = await connect(persistent)
    await subscribe(first, `expiry/${tag}/queued`)
    // Published once the broker has the session offline: its lifecycle event says when.
    await subscribe(sender, `$aws/events/presence/disconnected/${away.clientId}`)
    await within(first.endAsync(), 'the DISCONNECT')
    await sender.next('the disconnected event')
    const queuedAt = Date.now()
    await publish(sender, `expiry/${tag}/queued`, 'short', {
      properties: { messageExpiryInterval: 1 },
    })
    await publish(sender, `expiry/${tag}/queued`, 'five', {
      properties: { messageExpiryInterval: 5 },
    })
    await publish(sender, `expiry/${tag}/queued`, 'plain')
    // Not waiting for an event: the expiry under test needs the time to pass.
    await new Promise((resolve) => setTimeout(resolve, 1200))
    const { client: back, connack } = await connect(persistent)
    const queued = [summary(await back.next()), summary(await back.next())]
    return {
      live,
      retained: { ...summary(retained), retain: retained.retain },
      sessionPresent: connack.sessionPresent,
      queued,
      awayMs: Date.now() - queuedAt,
    }
  },

  async aliasFromClient() {
    const { client: receiver } = await connect()
    await subscribe(receiver, `alias/${tag}/+`)
    // Set by hand: the topic with alias 3, the alias alone, then alias 3 for another topic.
    const { client: manual } = await connect()
    await publish(manual, `alias/${tag}/manual`, 'first', { properties: { topicAlias: 3 } })
    await publish(manual, '', 'second', { properties: { topicAlias: 3 } })
    await publish(manual, `alias/${tag}/other`, 'third', { properties: { topicAlias: 3 } })
    await publish(manual, '', 'fourth', { properties: { topicAlias: 3 } })
    // mqtt.js's own: autoAssignTopicAlias picks aliases within the CONNACK's maximum (8),
    // reusing the least recently used one for the ninth topic and on.
    const { client: auto } = await connect({ autoAssignTopicAlias: true })
    const autoTopics = [0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9]
    for (const [n, t] of autoTopics.entries()) {
      await publish(auto, `alias/${tag}/auto${t}`, `auto-${n}`)
    }
    const got = []
    for (let n = 0; n < 4 + autoTopics.length; n++) got.push(summary(await receiver.next()))
    return {
      received: got.map((m) => [m.topic, m.payload]),
      receivedAliases: got.map((m) => m.properties.topicAlias ?? null),
      manualSent: manual.packetsOut,
      autoSent: auto.packetsOut,
      disconnects: [...manual.disconnects, ...auto.disconnects],
    }
  },

  async aliasToClient() {
    // The client takes 2 aliases: the broker aliases its first two topics, the third goes
    // in full every time.
    const { client: receiver } = await connect({ properties: { topicAliasMaximum: 2 } })
    await subscribe(receiver, `alias/${tag}/+`)
    const { client: sender } = await connect()
    const topics = ['a', 'a', 'b', 'a', 'c', 'c', 'b']
    for (const [n, t] of topics.entries()) await publish(sender, `alias/${tag}/${t}`, String(n))
    const got = []
    for (let n = 0; n < topics.length; n++) got.push(await receiver.next())
    return {
      received: got.map((m) => [m.topic, m.payload]),
      packets: receiver.packetsIn.map((p) => [p.topic, p.properties.topicAlias ?? null]),
      disconnects: receiver.disconnects,
    }
  },

  async shared() {
    const filter = `jobs/${tag}/+`
    const members = []
    for (const protocolVersion of [5, 5, 4]) {
      const { client } = await connect({ protocolVersion })
      const granted = await subscribe(client, `$share/g${tag}/${filter}`)
      await subscribe(client, `jobs-end/${tag}`)
      members.push({ client, granted })
    }
    const { client: watcher } = await connect()
    await subscribe(watcher, filter)
    const { client: producer } = await connect()
    for (let n = 0; n < 9; n++) await publish(producer, `jobs/${tag}/${n}`, String(n))
    const watched = []
    for (let n = 0; n < 9; n++) watched.push((await watcher.next()).payload)
    await publish(producer, `jobs-end/${tag}`, 'end')
    // Each member's messages, up to the end marker (published after the nine, so any
    // second copy of a job would come before it on the same connection).
    const got = []
    for (const { client } of members) {
      const payloads = []
      for (;;) {
        const m = await client.next('the end marker')
        if (m.topic === `jobs-end/${tag}`) break
        payloads.push(Number(m.payload))
      }
      got.push(payloads)
    }
    return { granted: members.map((m) => m.granted), got, watched: watched.length }
  },

  async requestResponse() {
    const { client: responder } = await connect()
    await subscribe(responder, `service/${tag}/requests`)
    responder.on('message', (topic, payload, packet) => {
      const p = packet.properties || {}
      if (topic.endsWith('/requests') && p.responseTopic) {
        responder.publish(p.responseTopic, `pong:${payload}`, {
          qos: 1,
          properties: { correlationData: p.correlationData },
        })
      }
    })
    const { client: requester } = await connect()
    const replyTo = `service/${tag}/replies/${requester.options.clientId}`
    await subscribe(requester, replyTo)
    for (const id of ['req-1', 'req-2']) {
      await publish(requester, `service/${tag}/requests`, id, {
        properties: { responseTopic: replyTo, correlationData: Buffer.from(id) },
      })
    }
    const replies = [summary(await requester.next()), summary(await requester.next())]
    const request = summary(await responder.next())
    return { request, replies }
  },

  async mixed() {
    const { client: old } = await connect({ protocolVersion: 4 })
    await subscribe(old, `mixed/${tag}/to-old`)
    const { client: young } = await connect()
    await subscribe(young, `mixed/${tag}/to-new`)
    await publish(young, `mixed/${tag}/to-old`, 'from 5', {
      properties: { userProperties: { k: 'v' }, contentType: 'text/plain' },
    })
    const toOld = await old.next()
    await publish(old, `mixed/${tag}/to-new`, 'from 3.1.1')
    const toNew = await young.next()
    return {
      toOld: { ...summary(toOld), protocol: old.options.protocolVersion },
      toNew: summary(toNew),
    }
  },

  async rule() {
    const { client: receiver } = await connect()
    await subscribe(receiver, 'out/tagged')
    const { client: sender } = await connect()
    await publish(sender, 'in/tagged', '{}', {
      properties: {
        userProperties: { tag: ['red', 'blue'] },
        contentType: 'text/plain',
        correlationData: Buffer.from('c-42'),
      },
    })
    const m = await receiver.next('the republished message')
    return { ...summary(m), payload: JSON.parse(m.payload) }
  },
}

async function main() {
  let result
  try {
    const scenario = scenarios[args.scenario]
    if (!scenario) throw new Error(`no scenario ${args.scenario}`)
    result = await within(scenario(), `scenario ${args.scenario}`, 4 * WAIT_MS)
  } catch (error) {
    result = { error: String((error && error.stack) || error) }
  }
  await Promise.all(clients.map((c) => within(c.endAsync(), 'the end', 2000).catch(() => c.end(true))))
  process.stdout.write(`${JSON.stringify(result)}\n`)
  process.exit(0)
}

main()
