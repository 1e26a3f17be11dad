/**
 * Two delivery lanes, chosen per call (docs/performance.md, docs/reliability.md):
 *
 *   durable  JetStream: the request is stored before it is accepted, pulled by a worker, redelivered after a
 *            crash, dead-lettered after MaxDeliver, answered once (confirmed reply). At least once.
 *   direct   core NATS request-reply to the pool's queue group: nothing stored, two messages. At most once.
 *
 * The choice is the innermost step of the call (below every interceptor), so breakers, deadlines, retries,
 * tracing, validation and typed errors are the same on both. `auto` (the default) sends interactive calls —
 * `predict` and `chain_of_thought` without a session — on the direct lane and everything else (sessions,
 * stored programs with a session, the other modules, optimizer jobs, evaluation ops) on the durable one;
 * `lane` on a call, `lane` on `Client.connect` or `DSPEX_LANE` (auto | direct | durable) decide otherwise.
 */
import { ValidationError, type Operation, type ReplyOk } from "@dspex/protocol";
import type { CallInput } from "../call.js";
import type { Transport } from "../transport.js";
import type { DirectLane, DirectLaneOptions } from "./direct.js";

export type Lane = "durable" | "direct";
export type LaneChoice = Lane | "auto";

export const LANES: readonly Lane[] = ["durable", "direct"];

/** Ops `auto` sends on the direct lane (when the call has no session). */
export const INTERACTIVE_OPS: ReadonlySet<Operation> = new Set<Operation>(["predict", "chain_of_thought"]);

function isLaneChoice(value: unknown): value is LaneChoice {
  return value === "auto" || value === "durable" || value === "direct";
}

/** The client's default: an explicit option, else DSPEX_LANE, else `auto`. */
export function defaultLane(option: LaneChoice | undefined, env: NodeJS.ProcessEnv = process.env): LaneChoice {
  const raw = option ?? (env.DSPEX_LANE || undefined);
  if (raw === undefined) return "auto";
  if (!isLaneChoice(raw)) {
    throw new ValidationError(`lane: must be one of auto, durable, direct (got ${JSON.stringify(raw)})`, { field: "lane", details: { lane: raw } });
  }
  return raw;
}

/** The lane one call takes. */
export function chooseLane(input: Pick<CallInput, "op" | "options">, fallback: LaneChoice): Lane {
  const choice = input.options.lane ?? fallback;
  if (!isLaneChoice(choice)) {
    throw new ValidationError(`lane: must be one of auto, durable, direct (got ${JSON.stringify(choice)})`, { field: "lane", details: { lane: choice } });
  }
  if (choice !== "auto") return choice;
  return INTERACTIVE_OPS.has(input.op) && !input.options.session ? "direct" : "durable";
}

/** The innermost step: sends an attempt on its lane. */
export function laneSender(transport: Transport, direct: DirectLane, fallback: LaneChoice): (input: CallInput) => Promise<ReplyOk> {
  return (input) => (chooseLane(input, fallback) === "direct" ? direct.send(input) : transport.send(input));
}

function envMs(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new RangeError(`${name} must be a positive integer of ms (got ${JSON.stringify(raw)})`);
  return value;
}

/** The direct lane's settings: DSPEX_DIRECT_HEARTBEAT_MS and DSPEX_DIRECT_LOST_MS under explicit options. */
export function directLaneOptions(options: DirectLaneOptions = {}, env: NodeJS.ProcessEnv = process.env): DirectLaneOptions {
  const heartbeatMs = options.heartbeatMs ?? envMs(env, "DSPEX_DIRECT_HEARTBEAT_MS");
  const lostAfterMs = options.lostAfterMs ?? envMs(env, "DSPEX_DIRECT_LOST_MS");
  return { ...(heartbeatMs ? { heartbeatMs } : {}), ...(lostAfterMs ? { lostAfterMs } : {}) };
}
