// The benchmark suite's load generator: socket.io-client connections in this process, driven
// by the Python orchestrator (benchmarks/suite) over stdin/stdout, one JSON object a line.
//   node load.js PLAN_FILE (JSON)
// plan: {clients: [{url, room, write, slow}], updates, rate, window, connectRate}
// stdin commands: go, pause, resume, report, exit. stdout: ready, progress, sent, result.
import fs from "node:fs";
import readline from "node:readline";
import { io } from "socket.io-client";

const plan = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const now = () => performance.timeOrigin + performance.now();
const say = (event, body = {}) => process.stdout.write(JSON.stringify({ event, ...body }) + "\n");
const LOG_STEP = Math.log(1.01); // latency histogram: buckets 1% wide
const histogram = new Map();
let received = 0;
let maxLatency = 0;
let commits = 0;
let errors = 0;
const clients = [];
// Random text, so that a compressing server cannot shrink what a slow reader is sent.
const PADS = Array.from({ length: 64 }, () => Array.from({ length: plan.pad || 0 },
  () => String.fromCharCode(33 + Math.floor(Math.random() * 90))).join(""));

const errorCodes = {};
function failed(code) {
  errors += 1;
  errorCodes[code] = (errorCodes[code] || 0) + 1;
}

function record(latencyMs) {
  const bucket = Math.floor(Math.log1p(Math.max(0, latencyMs) * 1000) / LOG_STEP);
  histogram.set(bucket, (histogram.get(bucket) || 0) + 1);
  if (latencyMs > maxLatency) maxLatency = latencyMs;
}

function open(spec) {
  const client = { spec, socket: null, joinedAt: null, startedAt: now(), seq: -1, received: 0 };
  client.socket = io(spec.url, { transports: ["websocket"], reconnection: false, forceNew: true, timeout: 60000 });
  client.socket.on("update", (data) => {
    received += 1;
    client.received += 1;
    const set = data.set || {};
    if (typeof set.t === "number" && !spec.slow) record(now() - set.t);
    if (typeof set.seq === "number") client.seq = set.seq;
  });
  client.socket.on("connect", async () => {
    try {
      const ack = await client.socket.timeout(60000).emitWithAck("join", { room: spec.room });
      if (ack && ack.ok) client.joinedAt = now();
      else errors += 1;
    } catch { errors += 1; }
  });
  client.socket.on("connect_error", () => { errors += 1; });
  return client;
}

async function connectAll() {
  const gap = plan.connectRate ? 1000 / plan.connectRate : 0;
  for (const spec of plan.clients) {
    clients.push(open(spec));
    if (gap) await new Promise((r) => setTimeout(r, gap));
  }
  const deadline = now() + (plan.joinTimeoutMs || 60000);
  while (clients.some((c) => c.joinedAt === null) && now() < deadline) {
    say("progress", { joined: clients.filter((c) => c.joinedAt !== null).length });
    await new Promise((r) => setTimeout(r, 250));
  }
  const joinTimes = clients.filter((c) => c.joinedAt).map((c) => c.joinedAt - c.startedAt);
  say("ready", { joined: joinTimes.length, clients: clients.length, errors,
    joinMsMax: Math.max(0, ...joinTimes), cpu: process.cpuUsage() });
}

async function write(client, start) {
  let outstanding = 0;
  const interval = plan.rate ? 1000 / plan.rate : 0;
  for (let seq = 0; seq < plan.updates; seq += 1) {
    const due = start + seq * interval;
    while (outstanding >= plan.window || now() < due) {
      await new Promise((r) => setTimeout(r, Math.max(0, Math.min(due - now(), 5))));
    }
    outstanding += 1;
    const set = plan.pad ? { seq, t: now(), pad: PADS[seq % 64] } : { seq, t: now() };
    client.socket.timeout(30000).emitWithAck("update", { room: client.spec.room, set })
      .then((ack) => { if (ack && ack.ok) commits += 1; else failed(ack && ack.error); })
      .catch(() => failed("timeout"))
      .finally(() => { outstanding -= 1; });
  }
  while (outstanding > 0) await new Promise((r) => setTimeout(r, 5));
}

async function go() {
  const start = now() + 50;
  const ticker = setInterval(() => say("progress", { received, commits }), 250);
  await Promise.all(clients.filter((c) => c.spec.write).map((c) => write(c, start)));
  clearInterval(ticker);
  say("sent", { commits, errors });
  setInterval(() => say("progress", { received, commits }), 250);
}

function tcp(client) {
  const transport = client.socket.io.engine && client.socket.io.engine.transport;
  return transport && transport.ws && transport.ws._socket;
}

const commands = {
  go,
  pause: () => clients.filter((c) => c.spec.slow).forEach((c) => tcp(c).pause()),
  resume: () => clients.filter((c) => c.spec.slow).forEach((c) => tcp(c).resume()),
  report: () => say("result", {
    received, commits, errors, errorCodes, maxLatency, histogram: Object.fromEntries(histogram),
    connected: clients.filter((c) => c.socket.connected).length,
    slow: clients.filter((c) => c.spec.slow).map((c) => ({ seq: c.seq, received: c.received, connected: c.socket.connected })),
  }),
  exit: () => process.exit(0),
};
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const command = commands[line.trim()];
  if (command) Promise.resolve(command()).catch((e) => say("failed", { error: String(e) }));
});
connectAll().catch((e) => say("failed", { error: String(e) }));
