// Preloaded into kinesis-mock (`node -r loopback.cjs main.js`): its listeners on loopback only.
//
// kinesis-mock (npm kinesis-local) has no host setting: its servers call
// server.listen(port, callback), which Node binds to every interface. This wraps
// net.Server.prototype.listen so that a listen without a host, or on a wildcard host, gets
// LOOPBACK_HOST (127.0.0.1 by default); listens on a path, fd or handle are left alone.
"use strict";
const net = require("net");

const host = process.env.LOOPBACK_HOST || "127.0.0.1";
const WILDCARDS = new Set([undefined, null, "", "0.0.0.0", "::"]);
const listen = net.Server.prototype.listen;

function isPort(value) {
  return typeof value === "number" || (typeof value === "string" && /^\d+$/.test(value));
}

net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (isPort(first)) {
    if (typeof args[1] === "string") {
      if (WILDCARDS.has(args[1])) args[1] = host;
    } else {
      args.splice(1, 0, host);
    }
  } else if (first !== null && typeof first === "object" && isPort(first.port)) {
    const local = first.path === undefined && first.fd === undefined && first.handle === undefined;
    if (local && WILDCARDS.has(first.host)) args[0] = { ...first, host };
  }
  return listen.apply(this, args);
};
