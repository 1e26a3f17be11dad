/**
 * One side of `bench/native.ts` in a process of its own, so that its CPU is the client's and the engine's alone
 * (the orchestrator hosts nats-server's supervision, the workers' and the LM double's). Connects a client to the
 * fleet at --nats-url, and for each concurrency runs the closed loop of `client.predict(..., {engine, lane})`, printing
 * `{"phase":"start"}` before the measured run and `{"phase":"end", …result, cpu_ms_per_req}` after it (the
 * orchestrator reads the other processes' CPU between the two lines).
 */
import { Client } from "@dspex/client";
import { closedLoop } from "./lib/stats.js";

const argv = process.argv.slice(2);
const opt = (name: string) => {
  const value = argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  if (value === undefined) throw new Error(`--${name}= is required`);
  return value;
};

const engine = opt("engine") as "native" | "python";
/** The bus's delivery lane (ignored by the native engine, which does not use the bus). */
const lane = opt("lane") as "direct" | "durable";
const signature = opt("signature");
const inputs = JSON.parse(opt("inputs")) as Record<string, unknown>;
const env = JSON.parse(opt("profile-env")) as Record<string, string>;
const client = await Client.connect({
  servers: opt("nats-url"),
  creds: opt("creds"),
  lm: { model: opt("model") },
  engine: { native: { env } },
});
const say = (line: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(line)}\n`);
try {
  for (const concurrency of opt("concurrency").split(",").map(Number)) {
    const durationMs = Number(opt("duration"));
    const warmupMs = Number(opt("warmup"));
    await closedLoop(() => client.predict(signature, inputs, { engine, lane }), { concurrency, durationMs: warmupMs, warmupMs: 0, maxRequests: 100_000 });
    say({ phase: "start", concurrency });
    const cpu0 = process.cpuUsage();
    const r = await closedLoop(() => client.predict(signature, inputs, { engine, lane }), { concurrency, durationMs, warmupMs: 0, maxRequests: 100_000 });
    const cpu = process.cpuUsage(cpu0);
    say({ phase: "end", ...r, client_cpu_ms_per_req: r.requests ? Number(((cpu.user + cpu.system) / 1000 / r.requests).toFixed(3)) : 0 });
  }
} finally {
  await client.close();
}
process.exit(0);
