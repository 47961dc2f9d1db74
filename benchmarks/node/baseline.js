// The benchmark suite's baseline: what most teams would run instead of kpk-io. A Node.js
// Socket.IO server with @socket.io/redis-adapter doing the same work per update: commit to
// Redis (one Lua script: the room's hash, its rev and a bounded log), then broadcast the
// change to the room's other members (on every node, through the adapter). Per-message
// deflate is Socket.IO's default (off).
//   node baseline.js PORT REDIS_URL
import http from "node:http";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";

const [port, redisUrl] = process.argv.slice(2);
const COMMIT = `
local rev = redis.call('INCR', KEYS[2])
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('RPUSH', KEYS[3], '{"rev":' .. rev .. ',' .. ARGV[1])
redis.call('LTRIM', KEYS[3], -100, -1)
return rev`;

const store = createClient({ url: redisUrl });
const pub = store.duplicate();
const sub = store.duplicate();
await Promise.all([store.connect(), pub.connect(), sub.connect()]);
const httpServer = http.createServer((req, res) => res.end("ok"));
const io = new Server(httpServer, { adapter: createAdapter(pub, sub), transports: ["websocket", "polling"] });
const keys = (room) => [`b:{${room}}:state`, `b:{${room}}:rev`, `b:{${room}}:log`];

io.on("connection", (socket) => {
  socket.on("join", async ({ room }, ack) => {
    const [state, rev] = await Promise.all([store.hGetAll(keys(room)[0]), store.get(keys(room)[1])]);
    socket.join(room);
    const parsed = Object.fromEntries(Object.entries(state).map(([k, v]) => [k, JSON.parse(v)]));
    ack({ ok: true, room, rev: Number(rev || 0), state: parsed });
  });
  socket.on("update", async ({ room, set, id }, ack) => {
    const args = [JSON.stringify({ set, id }).slice(1)];
    for (const [name, value] of Object.entries(set)) args.push(name, JSON.stringify(value));
    const rev = await store.eval(COMMIT, { keys: keys(room), arguments: args });
    socket.to(room).emit("update", { room, rev, set, unset: [], replace: false, id });
    if (ack) ack({ ok: true, room, rev });
  });
});
httpServer.listen(Number(port), "127.0.0.1", () => console.log(`listening on ${port}`));
