// Interoperability checks: the official NATS JavaScript client (nats v2)
// against a Switchboard hub.
//
// Usage: node interop.mjs nats://127.0.0.1:PORT
//
// Prints one line per check, "ok NAME" or "FAIL NAME: WHY", and exits 1 if
// any check failed (2 on a usage error). Some checks need a peer run by the
// Go test (interop/interop_test.go):
//   - a responder on interop.go.echo that answers with the request's body and
//     headers;
//   - a subscriber on interop.node.out that expects OUT_COUNT messages whose
//     bodies are "0", "1", ... in order.
// Set INTEROP_NO_GO=1 to skip those two when running the script by hand.

import net from "node:net";
import { randomBytes } from "node:crypto";
import {
  connect,
  createInbox,
  ErrorCode,
  headers,
  StringCodec,
} from "nats";

const url = process.argv[2];
if (!url) {
  console.error("usage: node interop.mjs nats://HOST:PORT");
  process.exit(2);
}
const withGo = process.env.INTEROP_NO_GO !== "1";
const OUT_COUNT = Number(process.env.INTEROP_OUT_COUNT || "1000");
const sc = StringCodec();
let failed = 0;

// check runs fn with a time limit and prints its result.
async function check(name, fn, timeoutMs = 10000) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no result within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    await Promise.race([fn(), limit]);
    console.log(`ok ${name}`);
  } catch (err) {
    failed++;
    const why = String((err && err.message) || err).replace(/\s+/g, " ");
    const code = err && err.code ? ` (code ${err.code})` : "";
    console.log(`FAIL ${name}: ${why}${code}`);
  } finally {
    clearTimeout(timer);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// collect subscribes to subject and returns the subscription and the array
// its messages are pushed to.
function collect(nc, subject, opts = {}) {
  const got = [];
  const sub = nc.subscribe(subject, {
    ...opts,
    callback: (err, m) => {
      if (!err) got.push(m);
    },
  });
  return { sub, got };
}

// waitFor polls cond until it is true or timeoutMs passes.
async function waitFor(cond, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function sameBytes(a, b) {
  return a.length === b.length && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
}

const opts = { servers: url, name: "interop-nodejs", reconnect: false };
let nc;

await check("connect", async () => {
  nc = await connect(opts);
  const info = nc.info;
  assert(info, "no INFO after connect");
  assert(info.server_id, `INFO has no server_id: ${JSON.stringify(info)}`);
  assert(info.headers === true, `INFO headers=${info.headers}, want true`);
  assert(info.max_payload > 0, `INFO max_payload=${info.max_payload}`);
  await nc.flush();
});
if (!nc) {
  console.log("FAIL setup: cannot continue without a connection");
  process.exit(1);
}

await check("flush-rtt", async () => {
  const rtt = await nc.rtt();
  assert(rtt >= 0, `rtt ${rtt}`);
});

await check("pubsub", async () => {
  const { sub, got } = collect(nc, "interop.js.plain");
  nc.publish("interop.js.plain", sc.encode("hello"));
  await nc.flush();
  await waitFor(() => got.length >= 1, 2000, "the message");
  assert(sc.decode(got[0].data) === "hello", `body ${sc.decode(got[0].data)}`);
  assert(got[0].subject === "interop.js.plain", `subject ${got[0].subject}`);
  sub.unsubscribe();
});

await check("pubsub-wildcard-star", async () => {
  const { sub, got } = collect(nc, "interop.js.*.star");
  for (const s of ["interop.js.a.star", "interop.js.a.b.star", "interop.js.star", "interop.js.b.star"]) {
    nc.publish(s, sc.encode(s));
  }
  await nc.flush();
  await waitFor(() => got.length >= 2, 2000, "two matching messages");
  await nc.flush();
  const subjects = got.map((m) => m.subject).join(",");
  assert(subjects === "interop.js.a.star,interop.js.b.star", `got ${subjects}`);
  sub.unsubscribe();
});

await check("pubsub-wildcard-gt", async () => {
  const { sub, got } = collect(nc, "interop.js.gt.>");
  for (const s of ["interop.js.gt", "interop.js.gt.a", "interop.js.gt.a.b.c", "interop.js.gtx.a"]) {
    nc.publish(s, sc.encode(s));
  }
  await nc.flush();
  await waitFor(() => got.length >= 2, 2000, "two matching messages");
  await nc.flush();
  const subjects = got.map((m) => m.subject).join(",");
  assert(subjects === "interop.js.gt.a,interop.js.gt.a.b.c", `got ${subjects}`);
  sub.unsubscribe();
});

await check("unsubscribe-max", async () => {
  const { sub, got } = collect(nc, "interop.js.max", { max: 3 });
  for (let i = 0; i < 10; i++) nc.publish("interop.js.max", sc.encode(String(i)));
  await nc.flush();
  await waitFor(() => got.length >= 3, 2000, "three messages");
  await nc.flush();
  assert(got.length === 3, `got ${got.length} messages, want 3`);
  assert(sub.isClosed(), "subscription not closed after max");
});

await check("queue-group", async () => {
  const n = 200;
  const a = collect(nc, "interop.js.work", { queue: "workers" });
  const b = collect(nc, "interop.js.work", { queue: "workers" });
  const plain = collect(nc, "interop.js.work");
  await nc.flush();
  for (let i = 0; i < n; i++) nc.publish("interop.js.work", sc.encode(String(i)));
  await nc.flush();
  await waitFor(() => a.got.length + b.got.length >= n && plain.got.length >= n, 3000, `${n} messages`);
  await nc.flush();
  const seen = new Map();
  for (const m of [...a.got, ...b.got]) {
    const k = sc.decode(m.data);
    seen.set(k, (seen.get(k) || 0) + 1);
  }
  assert(a.got.length + b.got.length === n, `queue members got ${a.got.length}+${b.got.length}, want ${n} in total`);
  for (let i = 0; i < n; i++) {
    assert(seen.get(String(i)) === 1, `message ${i} delivered ${seen.get(String(i)) || 0} times to the group`);
  }
  assert(a.got.length > 0 && b.got.length > 0, `one member got nothing (${a.got.length}/${b.got.length})`);
  assert(plain.got.length === n, `plain subscriber got ${plain.got.length}, want ${n}`);
  a.sub.unsubscribe();
  b.sub.unsubscribe();
  plain.sub.unsubscribe();
});

await check("request-reply", async () => {
  const sub = nc.subscribe("interop.js.echo", {
    callback: (err, m) => {
      if (!err) m.respond(sc.encode("re: " + sc.decode(m.data)));
    },
  });
  await nc.flush();
  for (let i = 0; i < 5; i++) {
    const r = await nc.request("interop.js.echo", sc.encode(`q${i}`), { timeout: 2000 });
    assert(sc.decode(r.data) === `re: q${i}`, `reply ${sc.decode(r.data)}`);
  }
  // Old-style request: a fresh inbox per request, no shared mux subscription.
  const r = await nc.request("interop.js.echo", sc.encode("old"), { timeout: 2000, noMux: true });
  assert(sc.decode(r.data) === "re: old", `noMux reply ${sc.decode(r.data)}`);
  sub.unsubscribe();
});

if (withGo) {
  await check("request-reply-go", async () => {
    const h = headers();
    h.set("X-From", "node");
    for (let i = 0; i < 5; i++) {
      const r = await nc.request("interop.go.echo", sc.encode(`node ${i}`), { timeout: 3000, headers: h });
      assert(sc.decode(r.data) === `node ${i}`, `reply body ${JSON.stringify(sc.decode(r.data))}`);
      assert(r.headers, "reply has no headers");
      assert(r.headers.get("X-From") === "node", `reply X-From=${r.headers.get("X-From")}`);
      assert(r.headers.get("X-Responder") === "go", `reply X-Responder=${r.headers.get("X-Responder")}`);
    }
    // And without headers, so the Go side sees a plain PUB.
    const r = await nc.request("interop.go.echo", sc.encode("plain"), { timeout: 3000 });
    assert(sc.decode(r.data) === "plain", `reply body ${sc.decode(r.data)}`);
  });
}

await check("headers", async () => {
  const { sub, got } = collect(nc, "interop.js.hdr");
  const h = headers();
  h.set("X-Single", "one");
  h.append("X-Multi", "a");
  h.append("X-Multi", "b");
  h.set("X-Spaces", "value with spaces");
  nc.publish("interop.js.hdr", sc.encode("with headers"), { headers: h });
  // Headers and an empty body.
  const h2 = headers();
  h2.set("X-Only", "headers");
  nc.publish("interop.js.hdr", undefined, { headers: h2 });
  await nc.flush();
  await waitFor(() => got.length >= 2, 2000, "two messages");
  const m = got[0];
  assert(m.headers, "message has no headers");
  assert(sc.decode(m.data) === "with headers", `body ${sc.decode(m.data)}`);
  assert(m.headers.get("X-Single") === "one", `X-Single=${m.headers.get("X-Single")}`);
  assert(m.headers.values("X-Multi").join(",") === "a,b", `X-Multi=${m.headers.values("X-Multi")}`);
  assert(m.headers.get("X-Spaces") === "value with spaces", `X-Spaces=${m.headers.get("X-Spaces")}`);
  const m2 = got[1];
  assert(m2.headers && m2.headers.get("X-Only") === "headers", "header-only message lost its header");
  assert(m2.data.length === 0, `header-only message has a ${m2.data.length}-byte body`);
  sub.unsubscribe();

  // Headers on a request and on its reply.
  const rsub = nc.subscribe("interop.js.hdr.echo", {
    callback: (err, req) => {
      if (err) return;
      const rh = headers();
      rh.set("X-Echo", req.headers ? req.headers.get("X-Ask") : "missing");
      req.respond(req.data, { headers: rh });
    },
  });
  const ask = headers();
  ask.set("X-Ask", "42");
  const r = await nc.request("interop.js.hdr.echo", sc.encode("q"), { timeout: 2000, headers: ask });
  assert(r.headers && r.headers.get("X-Echo") === "42", `reply X-Echo=${r.headers && r.headers.get("X-Echo")}`);
  rsub.unsubscribe();
});

await check("no-responders", async () => {
  const start = Date.now();
  try {
    await nc.request("interop.js.nobody.home", sc.encode("?"), { timeout: 5000 });
  } catch (err) {
    const took = Date.now() - start;
    assert(err.code === ErrorCode.NoResponders, `rejected with code ${err.code} (${err.message}), want ${ErrorCode.NoResponders}`);
    assert(took < 1000, `no-responders took ${took} ms`);
    return;
  }
  throw new Error("request to a subject nobody serves resolved");
});

await check("payload-512KiB", async () => {
  const big = randomBytes(512 * 1024);
  const { sub, got } = collect(nc, "interop.js.big");
  nc.publish("interop.js.big", big);
  await nc.flush();
  await waitFor(() => got.length >= 1, 5000, "the 512 KiB message");
  assert(sameBytes(got[0].data, big), `512 KiB payload changed (got ${got[0].data.length} bytes)`);
  sub.unsubscribe();
});

await check("max-payload", async () => {
  const max = nc.info.max_payload;
  // Exactly at the limit: delivered.
  const { sub, got } = collect(nc, "interop.js.max_payload");
  const atLimit = randomBytes(max);
  nc.publish("interop.js.max_payload", atLimit);
  await nc.flush();
  await waitFor(() => got.length >= 1, 5000, `the ${max}-byte message`);
  assert(sameBytes(got[0].data, atLimit), `${max}-byte payload changed`);
  sub.unsubscribe();
  // One byte over: the client refuses it.
  let threw = null;
  try {
    nc.publish("interop.js.max_payload", randomBytes(max + 1));
  } catch (err) {
    threw = err;
  }
  assert(threw, `publishing ${max + 1} bytes (max_payload ${max}) did not throw`);
  assert(threw.code === ErrorCode.MaxPayloadExceeded, `threw code ${threw.code}`);
  // Headers count towards the limit.
  const h = headers();
  h.set("X-Pad", "x");
  let threwH = null;
  try {
    nc.publish("interop.js.max_payload", randomBytes(max), { headers: h });
  } catch (err) {
    threwH = err;
  }
  assert(threwH && threwH.code === ErrorCode.MaxPayloadExceeded, "headers+body over max_payload did not throw");
  // The connection is still usable.
  await nc.flush();
});

// A raw client that ignores max_payload: the hub itself must refuse.
await check("max-payload-hub", async () => {
  const u = new URL(url);
  const sock = net.connect(Number(u.port), u.hostname);
  let buf = "";
  sock.setEncoding("latin1");
  sock.on("data", (d) => (buf += d));
  const closed = new Promise((resolve) => sock.on("close", resolve));
  sock.on("error", () => {});
  await waitFor(() => buf.includes("\r\n"), 3000, "INFO");
  const info = JSON.parse(buf.slice(buf.indexOf("{"), buf.indexOf("\r\n")));
  sock.write('CONNECT {"verbose":false,"pedantic":false,"lang":"raw","version":"0"}\r\n');
  // Only the control line: the size in it is enough for the hub to refuse.
  // (Sending the oversized body too would make the hub close a socket with
  // unread input, the kernel then resets the connection, and Node drops
  // what it had not read yet, -ERR included.)
  sock.write(`PUB interop.js.raw ${info.max_payload + 1}\r\n`);
  const after = () => JSON.stringify(buf.slice(buf.indexOf("\r\n") + 2));
  await waitFor(() => /-ERR/i.test(buf), 3000, `-ERR after an oversized PUB line (got ${after()})`);
  assert(/-ERR 'Maximum Payload Violation'\r\n/i.test(buf), `hub answered ${after()}`);
  const gone = await Promise.race([closed.then(() => true), sleep(3000).then(() => false)]);
  sock.destroy();
  assert(gone, "hub kept the connection open after Maximum Payload Violation");
});

await check("no-echo", async () => {
  const quiet = await connect({ ...opts, name: "interop-nodejs-noecho", noEcho: true });
  try {
    const mine = collect(quiet, "interop.js.echoflag");
    const other = collect(nc, "interop.js.echoflag");
    await quiet.flush();
    await nc.flush();
    quiet.publish("interop.js.echoflag", sc.encode("x"));
    await quiet.flush();
    await waitFor(() => other.got.length >= 1, 2000, "the other connection's copy");
    await quiet.flush();
    assert(mine.got.length === 0, `noEcho connection got its own message ${mine.got.length} times`);
    other.sub.unsubscribe();
  } finally {
    await quiet.close();
  }
});

await check("verbose-pedantic", async () => {
  const v = await connect({ ...opts, name: "interop-nodejs-verbose", verbose: true, pedantic: true });
  try {
    const { got } = collect(v, "interop.js.verbose");
    for (let i = 0; i < 10; i++) v.publish("interop.js.verbose", sc.encode(String(i)));
    await v.flush();
    await waitFor(() => got.length >= 10, 2000, "ten messages");
    const r = await v.rtt();
    assert(r >= 0, "rtt");
  } finally {
    await v.close();
  }
});

await check("inbox-prefix", async () => {
  const c = await connect({ ...opts, name: "interop-nodejs-inbox", inboxPrefix: "_INTEROP_INBOX" });
  try {
    const sub = nc.subscribe("interop.js.inbox", {
      callback: (err, m) => {
        if (!err) m.respond(sc.encode(m.reply || ""));
      },
    });
    await nc.flush();
    const r = await c.request("interop.js.inbox", sc.encode("?"), { timeout: 2000 });
    assert(sc.decode(r.data).startsWith("_INTEROP_INBOX."), `reply subject was ${sc.decode(r.data)}`);
    assert(createInbox("_X").startsWith("_X."), "createInbox");
    sub.unsubscribe();
  } finally {
    await c.close();
  }
});

if (withGo) {
  // The Go test subscribes to interop.node.out before starting this script
  // and checks that it got every message, in order.
  await check("publish-to-go", async () => {
    for (let i = 0; i < OUT_COUNT; i++) nc.publish("interop.node.out", sc.encode(String(i)));
    await nc.flush();
  });
}

await check("drain", async () => {
  const c = await connect({ ...opts, name: "interop-nodejs-drain" });
  const n = 500;
  let handled = 0;
  const sub = c.subscribe("interop.js.drain", {
    callback: () => {
      handled++;
    },
  });
  await c.flush();
  for (let i = 0; i < n; i++) nc.publish("interop.js.drain", sc.encode(String(i)));
  await nc.flush();
  // Subscription drain: messages already sent to us are still handled.
  await waitFor(() => handled > 0, 2000, "the first message");
  await sub.drain();
  assert(handled === n, `subscription drain handled ${handled}, want ${n}`);
  await c.drain();
  assert(c.isClosed(), "connection not closed after drain");
  const err = await c.closed();
  assert(!err, `closed with ${err}`);
});

// Finally drain the main connection.
await check("drain-connection", async () => {
  await nc.drain();
  const err = await nc.closed();
  assert(!err, `closed with ${err}`);
});

console.log(failed ? `${failed} check(s) failed` : "all checks passed");
process.exit(failed ? 1 : 0);
