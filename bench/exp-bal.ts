import { Client } from "@dspex/client";
import { startFleet, startNatsServer } from "@dspex/embedded";
import { WORKER_ENV } from "./lib/proc.js";
const lane = (process.argv[2] ?? "durable") as "direct" | "durable";
const C = Number(process.argv[3] ?? 128);
const nats = await startNatsServer({});
const fleet = await startFleet({ natsUrl: nats.url, creds: nats.creds, workers: { general: 2 }, workerEnv: WORKER_ENV });
const client = await Client.connect({ servers: nats.url, creds: nats.creds.client, lm: { model: "dspex/echo?latency_ms=100" } });
while (true) { await client.discovery.refresh(); if (client.discovery.live("general").length >= 2) break; }
const SIG = "question -> answer";
const per = new Map<string, number>();
const end = Date.now() + 4000; let n = 0;
await Promise.all(Array.from({ length: C }, async (_, k) => {
  while (Date.now() < end) { const r = await client.predict(SIG, { question: `q ${k} ${n++}` }, { lane }); per.set(r.worker, (per.get(r.worker) ?? 0) + 1); }
}));
console.log(lane, C, "per worker", JSON.stringify([...per.values()]), "rps", (n / 4).toFixed(0));
await client.close(); await fleet.stop(); await nats.stop();
