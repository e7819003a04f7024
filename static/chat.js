// The chat page: MQTT over WebSocket to /mqtt, as a browser talks to AWS IoT.
// Listens on chat/in/<clientId> (replies from the chat function) and chat/pub/<room>
// (the room's messages); publishes on chat/out and chat/stream. User text is only ever
// inserted with textContent, never as HTML, with bidi controls removed and isolated in <bdi>.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const list = $("messages"), scroller = $("scroller"), empty = $("empty"), presence = $("presence");
  const status = $("status"), errorBanner = $("error"), newCue = $("new-messages");
  const nameInput = $("name"), messageInput = $("message"), sendButton = $("send");

  // A room is one topic level: chat/pub/<room>, at most 256 bytes of topic (AWS IoT's limit),
  // without MQTT's wildcards. The chat function keys a room by its first path level, so a
  // deeper path is refused here rather than shown as a room that is not one.
  const TOPIC_PREFIX = "chat/pub/";
  const MAX_TOPIC_BYTES = 256;
  const BACKLOG_WAIT_MS = 15000;
  // How long a sent message may take to come back from its room (a test may shorten it).
  const ECHO_WAIT_MS = Number(window.chatEchoWaitMs) || 10000;
  const BIDI_CONTROLS = /[\u202A-\u202E\u2066-\u2069]/g;

  function parseRoom(pathname) {
    let raw = pathname.replace(/^\/+/, "").replace(/\/+$/, "");
    let room;
    try { room = decodeURIComponent(raw); } catch (e) { return { room: raw, error: "its address is not valid percent-encoding" }; }
    if (room === "") return { room: "lobby", error: null };
    if (room.includes("/")) {
      const first = room.split("/")[0];
      return { room: room, error: "room names cannot contain “/”; a room is one level of the topic chat/pub/<room>", suggest: first };
    }
    if (/[+#]/.test(room)) return { room: room, error: "room names cannot contain “+” or “#”: they are MQTT wildcards, and an AWS IoT topic cannot carry them" };
    if (/[\u0000-\u001f\u007f]/.test(room)) return { room: room, error: "room names cannot contain control characters" };
    if (new TextEncoder().encode(TOPIC_PREFIX + room).length > MAX_TOPIC_BYTES) {
      return { room: room, error: "the room name is too long: the topic " + TOPIC_PREFIX + "<room> may be at most " + MAX_TOPIC_BYTES + " bytes" };
    }
    return { room: room, error: null };
  }

  // Any JSON value a sender put in "message" or "name", as plain text without bidi overrides.
  function asText(value) {
    let text;
    if (typeof value === "string") text = value;
    else if (value === undefined || value === null) text = "";
    else { try { text = JSON.stringify(value); } catch (e) { text = String(value); } }
    return text.replace(BIDI_CONTROLS, "");
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function showError(text, link) {
    errorBanner.replaceChildren(document.createTextNode(text));
    if (link) {
      errorBanner.append(" ");
      const a = el("a", "", link.text);
      a.href = link.href;
      errorBanner.append(a);
    }
    errorBanner.hidden = false;
  }
  function clearError() { errorBanner.hidden = true; errorBanner.replaceChildren(); }

  function setStatus(state, text) {
    status.textContent = text || state;
    status.className = "status " + state;
  }

  const parsed = parseRoom(window.location.pathname);
  const room = parsed.room;
  $("room-name").textContent = "/" + asText(room);
  document.title = "IoT chat /" + asText(room);

  // --- the message list ---------------------------------------------------------------
  const seen = new Set();
  const myIdsKey = "chat-my-client-ids";
  const clientId = "web-" + Math.random().toString(16).slice(2, 10) + Date.now().toString(16).slice(-4);
  // Messages sent from this browser before a reload came from earlier client IDs.
  const myIds = new Set(JSON.parse(localStorage.getItem(myIdsKey) || "[]"));
  myIds.add(clientId);
  localStorage.setItem(myIdsKey, JSON.stringify(Array.from(myIds).slice(-50)));
  let unread = 0;

  function dayOf(ts) { const d = new Date(ts); return d.getFullYear() + "-" + d.getMonth() + "-" + d.getDate(); }
  function dayLabel(ts) {
    const now = new Date();
    const yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1);
    if (dayOf(ts) === dayOf(now.getTime())) return "Today";
    if (dayOf(ts) === dayOf(yesterday.getTime())) return "Yesterday";
    return new Date(ts).toLocaleDateString(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" });
  }

  function atBottom() { return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 24; }
  function toBottom() { scroller.scrollTop = scroller.scrollHeight; unread = 0; newCue.hidden = true; }

  function messageItem(m) {
    const ts = typeof m.timestamp === "number" ? m.timestamp : Number(m.timestamp) || 0;
    const li = el("li", "msg");
    li.dataset.timestamp = String(ts);
    if (ts) li.dataset.day = dayOf(ts);
    if (myIds.has(m.clientId)) li.classList.add("own");
    const who = el("bdi", "who", asText(m.name) || "anonymous");
    const text = el("bdi", "text", asText(m.message));
    li.append(who, text);
    if (ts) {
      const when = el("time", "when", new Date(ts).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" }));
      when.dateTime = new Date(ts).toISOString();
      when.title = new Date(ts).toLocaleString();
      li.append(when);
    }
    return li;
  }

  // Day separators: one before the first message of each day, recomputed after a batch.
  function refreshDays() {
    let last = null;
    for (const node of Array.from(list.children)) {
      if (node.classList.contains("day")) { node.remove(); continue; }
      const ts = Number(node.dataset.timestamp);
      if (!ts) continue;
      const day = dayOf(ts);
      if (day !== last) { const sep = el("li", "day", dayLabel(ts)); sep.dataset.day = day; node.before(sep); last = day; }
    }
  }

  // A separator before an item appended at the end, when it starts a new day.
  function markDay(li) {
    const prev = li.previousElementSibling;
    if (!li.dataset.day || (prev && prev.dataset.day === li.dataset.day)) return;
    const sep = el("li", "day", dayLabel(Number(li.dataset.timestamp)));
    sep.dataset.day = li.dataset.day;
    li.before(sep);
  }

  // Insert messages in time order (backlog and live messages interleave); keep the view at
  // the newest unless the reader scrolled up, then show the "new messages" cue.
  function addMessages(batch, fromBacklog) {
    const stick = atBottom();
    let added = 0, newest = false, mine = false;
    for (const m of batch) {
      if (!m || typeof m !== "object" || m.message === undefined) continue;
      // The ChatRepublish rule gives each message an id; older items may lack one.
      const key = typeof m.id === "string" ? "id:" + m.id : asText(m.clientId) + ":" + m.timestamp + ":" + asText(m.message);
      if (seen.has(key)) continue;
      seen.add(key);
      const li = messageItem(m);
      const ts = Number(li.dataset.timestamp);
      const after = ts ? Array.from(list.querySelectorAll("li.msg, li.event")).find((c) => Number(c.dataset.timestamp) > ts) : null;
      list.insertBefore(li, after || null);
      added += 1;
      if (!after) newest = true;
      if (li.classList.contains("own") && !fromBacklog) mine = true;
    }
    if (!added) return;
    if (batch.length === 1 && newest) markDay(list.lastElementChild);
    else refreshDays();
    updateEmpty();
    if (stick || mine) toBottom();
    else if (newest && !fromBacklog) { unread += added; newCue.textContent = unread + " new message" + (unread === 1 ? "" : "s") + " ↓"; newCue.hidden = false; }
  }

  function addEvent(text) {
    const stick = atBottom();
    const li = el("li", "event", text);
    li.dataset.timestamp = String(Date.now());
    li.dataset.day = dayOf(Date.now());
    list.append(li);
    markDay(li);
    if (stick) toBottom();
  }

  let backlogState = "loading";
  function updateEmpty() {
    const any = list.querySelector("li.msg") !== null;
    empty.hidden = any;
    empty.classList.toggle("loading", backlogState === "loading" && !any);
    if (any) return;
    if (backlogState === "loading") empty.textContent = "Loading messages…";
    else if (backlogState === "late") empty.textContent = "Earlier messages did not arrive. New messages will appear here.";
    else empty.textContent = "No messages in /" + asText(room) + " yet. Say hello!";
  }

  scroller.addEventListener("scroll", () => { if (atBottom()) { unread = 0; newCue.hidden = true; } });
  newCue.addEventListener("click", toBottom);

  // --- who is online ------------------------------------------------------------------
  let online = null;  // clientId -> name, from the last presence list
  function showPresence(members) {
    const next = new Map(members.map((p) => [asText(p.clientId), asText(p.name) || "anonymous"]));
    presence.replaceChildren(...members.map((p) => {
      const id = asText(p.clientId), me = id === clientId;
      const li = el("li", me ? "me" : "", (asText(p.name) || "anonymous") + (me ? " (you)" : ""));
      li.dataset.clientId = id;
      li.title = li.textContent;
      return li;
    }));
    $("online-count").textContent = String(next.size);
    if (online !== null) {
      for (const [id, name] of next) {
        if (id === clientId) continue;
        if (!online.has(id)) addEvent(name + " joined");
        else if (online.get(id) !== name) addEvent(online.get(id) + " is now " + name);
      }
      for (const [id, name] of online) if (!next.has(id) && id !== clientId) addEvent(name + " left");
    }
    online = next;
  }

  // On a narrow screen the online list opens over the messages; a tap elsewhere closes it.
  function showOnline(open) {
    document.body.classList.toggle("show-online", open);
    $("online-toggle").setAttribute("aria-expanded", String(open));
  }
  $("online-toggle").addEventListener("click", () => showOnline(!document.body.classList.contains("show-online")));
  $("scroller").addEventListener("click", () => showOnline(false));

  // --- the connection -----------------------------------------------------------------
  nameInput.value = localStorage.getItem("chat-name:" + room) || "guest-" + clientId.slice(4, 8);
  function setSending(enabled) { sendButton.disabled = !enabled; messageInput.disabled = !enabled; }
  setSending(false);

  if (parsed.error) {
    backlogState = "done";
    empty.hidden = false;
    empty.classList.remove("loading");
    empty.textContent = "This is not a room.";
    setStatus("error", "not a room");
    const fine = parsed.suggest && !parseRoom("/" + encodeURIComponent(parsed.suggest)).error;
    const suggest = fine ? "/" + encodeURIComponent(parsed.suggest) : "/lobby";
    showError("“/" + asText(room) + "” cannot be a chat room: " + parsed.error + ".", { text: "Go to " + decodeURIComponent(suggest), href: suggest });
    window.chatClientId = clientId;
    return;
  }

  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  setStatus("connecting");
  const client = mqtt.connect(scheme + "://" + window.location.host + "/mqtt", {
    clientId: clientId, protocolVersion: 4, clean: true, keepalive: 30,
    reconnectPeriod: 1000, connectTimeout: 10000,
  });
  let joined = false, backlogTimer = null, echoTimer = null, echoLate = false;

  // Announcements may be handled out of order by concurrent Lambda invocations: the
  // sequence number lets the function keep only the newest, asOf lets the page drop a
  // presence list that arrives after a newer one.
  let announceSeq = 0, presenceAsOf = 0;
  function announce() {
    announceSeq += 1;
    client.publish("chat/out", JSON.stringify({ connected: true, path: "/" + room, name: nameInput.value, seq: announceSeq }), { qos: 1 });
  }

  client.on("connect", () => {
    joined = false;
    setStatus("connecting", "joining");
    const roomTopic = TOPIC_PREFIX + room;
    client.subscribe({ ["chat/in/" + clientId]: { qos: 1 }, [roomTopic]: { qos: 1 } }, (err) => {
      if (err) {
        setStatus("error", "not joined");
        setSending(false);
        showError("Could not join /" + asText(room) + ": the server refused the subscription to " + asText(roomTopic)
          + " (" + err.message + "). The IoT policy may not allow this room.", { text: "Go to /lobby", href: "/lobby" });
        backlogState = "done";
        empty.textContent = "Not subscribed to this room: no messages can arrive.";
        empty.classList.remove("loading");
        return;
      }
      joined = true;
      clearError();
      setStatus("connected");
      setSending(true);
      announce();
      client.publish("chat/stream", JSON.stringify({ sendroom: "/" + room }), { qos: 1 });
      clearTimeout(backlogTimer);
      backlogTimer = setTimeout(() => { if (backlogState === "loading") { backlogState = "late"; updateEmpty(); } }, BACKLOG_WAIT_MS);
    });
  });
  function lost() {
    setSending(false);
    if (joined || status.classList.contains("connecting")) {
      setStatus("reconnecting");
      showError("Disconnected from the chat server; reconnecting…");
    }
    joined = false;
  }
  client.on("reconnect", () => { if (!status.classList.contains("error")) setStatus("reconnecting"); });
  client.on("offline", lost);
  client.on("close", () => { if (!client.connected) lost(); });
  client.on("error", (err) => { showError("Connection error: " + String(err && err.message || err)); });

  client.on("message", (topic, payload) => {
    let body;
    try { body = JSON.parse(payload.toString()); } catch (e) { return; }
    if (!body || typeof body !== "object") return;
    if (topic === TOPIC_PREFIX + room) {
      if (myIds.has(body.clientId)) {
        clearTimeout(echoTimer);
        echoTimer = null;
        if (echoLate) { echoLate = false; clearError(); }
      }
      addMessages([body], false);
    } else if (topic === "chat/in/" + clientId) {
      if (body.type === "backlog") {
        backlogState = "done";
        clearTimeout(backlogTimer);
        addMessages(Array.isArray(body.messages) ? body.messages : [], true);
        // The function keeps the newest messages that fit AWS IoT's 128 KB payload.
        if (typeof body.omitted === "number" && body.omitted > 0 && !list.querySelector("li.omitted")) {
          list.prepend(el("li", "event omitted", body.omitted + " earlier message" + (body.omitted === 1 ? " is" : "s are") + " not shown: the backlog must fit in one 128 KB message."));
        }
        updateEmpty();
        toBottom();
      } else if (body.type === "presence") {
        const asOf = typeof body.asOf === "number" ? body.asOf : 0;
        if (asOf >= presenceAsOf && Array.isArray(body.online)) { presenceAsOf = asOf; showPresence(body.online); }
      } else if (body.type === "welcome") $("notice").textContent = asText(body.message);
      else if (body.type === "error") showError("The chat refused a request: " + asText(body.message));
    }
  });

  $("send-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = messageInput.value.trim();
    if (!text) return;
    if (!client.connected || !joined) { showError("Not connected: your message was not sent."); return; }
    const payload = JSON.stringify({ message: text, room: "/" + room, name: nameInput.value });
    client.publish("chat/out", payload, { qos: 1 }, (err) => {
      if (err) { showError("Your message was refused: " + err.message); messageInput.value = messageInput.value || text; }
    });
    clearTimeout(echoTimer);
    echoTimer = setTimeout(() => {
      echoLate = true;
      showError("Your message “" + asText(text).slice(0, 40) + "” has not reached the room: the server may have refused it.");
    }, ECHO_WAIT_MS);
    messageInput.value = "";
  });
  nameInput.addEventListener("change", () => {
    localStorage.setItem("chat-name:" + room, nameInput.value);
    if (client.connected && joined) announce();
  });
  updateEmpty();
  window.chatClientId = clientId;
})();
