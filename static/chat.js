// The chat page: MQTT over WebSocket to /mqtt, as a browser talks to AWS IoT.
// Listens on chat/in/<clientId> (replies from the chat function) and chat/pub/<room>
// (the room's messages); publishes on chat/out and chat/stream. User text is only ever
// inserted with textContent, never as HTML.
(function () {
  "use strict";
  const path = window.location.pathname.replace(/\/+$/, "") || "/lobby";
  const room = path.replace(/^\/+/, "").split("/")[0] || "lobby";
  const clientId = "web-" + Math.random().toString(16).slice(2, 10) + Date.now().toString(16).slice(-4);
  const nameKey = "chat-name:" + room;
  const $ = (id) => document.getElementById(id);
  const list = $("messages"), presence = $("presence"), status = $("status");
  const nameInput = $("name"), messageInput = $("message");
  const seen = new Set();

  $("room-name").textContent = "/" + room;
  document.title = "IoT chat /" + room;
  nameInput.value = localStorage.getItem(nameKey) || "guest-" + clientId.slice(4, 8);

  function setStatus(text) {
    status.textContent = text;
    status.className = "status " + text;
  }

  function addMessage(m) {
    const key = m.clientId + ":" + m.timestamp + ":" + m.message;
    if (seen.has(key)) return;
    seen.add(key);
    const li = document.createElement("li");
    li.dataset.timestamp = String(m.timestamp || 0);
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = (m.name || "anonymous") + ":";
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = String(m.message);
    const when = document.createElement("time");
    when.className = "when";
    when.textContent = m.timestamp ? new Date(m.timestamp).toLocaleTimeString() : "";
    li.append(who, text, when);
    // Keep the list ordered by time: backlog and live messages may interleave.
    const after = Array.from(list.children).find((c) => Number(c.dataset.timestamp) > (m.timestamp || 0));
    list.insertBefore(li, after || null);
    list.scrollTop = list.scrollHeight;
  }

  function showPresence(online) {
    presence.replaceChildren(...online.map((p) => {
      const li = document.createElement("li");
      li.textContent = p.name;
      li.dataset.clientId = p.clientId;
      return li;
    }));
  }

  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const client = mqtt.connect(scheme + "://" + window.location.host + "/mqtt", {
    clientId: clientId, protocolVersion: 4, clean: true, keepalive: 30,
    reconnectPeriod: 1000, connectTimeout: 10000,
  });

  // Announcements may be handled out of order by concurrent Lambda invocations: the
  // sequence number lets the function keep only the newest, asOf lets the page drop a
  // presence list that arrives after a newer one.
  let announceSeq = 0, presenceAsOf = 0;
  function announce() {
    announceSeq += 1;
    client.publish("chat/out", JSON.stringify({ connected: true, path: "/" + room, name: nameInput.value, seq: announceSeq }), { qos: 1 });
  }

  client.on("connect", () => {
    setStatus("connected");
    client.subscribe({ ["chat/in/" + clientId]: { qos: 1 }, ["chat/pub/" + room]: { qos: 1 } }, (err) => {
      if (err) { $("notice").textContent = "subscribe failed: " + err.message; return; }
      announce();
      client.publish("chat/stream", JSON.stringify({ sendroom: "/" + room }), { qos: 1 });
    });
  });
  client.on("reconnect", () => setStatus("reconnecting"));
  client.on("offline", () => setStatus("offline"));
  client.on("close", () => { if (!client.connected) setStatus("reconnecting"); });
  client.on("error", (err) => { $("notice").textContent = String(err && err.message || err); });

  client.on("message", (topic, payload) => {
    let body;
    try { body = JSON.parse(payload.toString()); } catch (e) { return; }
    if (topic === "chat/pub/" + room) {
      if (typeof body.message === "string") addMessage(body);
    } else if (topic === "chat/in/" + clientId) {
      if (body.type === "backlog") body.messages.forEach(addMessage);
      else if (body.type === "presence") {
        const asOf = typeof body.asOf === "number" ? body.asOf : 0;
        if (asOf >= presenceAsOf) { presenceAsOf = asOf; showPresence(body.online || []); }
      }
      else if (body.type === "welcome") $("notice").textContent = body.message;
    }
  });

  $("send-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = messageInput.value.trim();
    if (!text || !client.connected) return;
    client.publish("chat/out", JSON.stringify({ message: text, room: "/" + room, name: nameInput.value }), { qos: 1 });
    messageInput.value = "";
  });
  nameInput.addEventListener("change", () => {
    localStorage.setItem(nameKey, nameInput.value);
    if (client.connected) announce();
  });
  window.chatClientId = clientId;
})();
