/**
 * Multi-turn chat on top of sessions (docs/dspy-surface.md, "History and chat"): `client.chat(session, message)`
 * sends the conversation's earlier turns as the signature's `dspy.History` input and appends the new turn. The
 * history lives in the KV bucket `dspex_sessions` under `chat.<session>` — beside the session's own record, so it
 * expires with the session's idle TTL, and any worker (after a failover too) gets the whole conversation.
 *
 * Bounded: at most `maxTurns` turns (DSPEX_CHAT_MAX_TURNS, default 20) and `maxBytes` of JSON (default 64 KiB);
 * the oldest turns go first. Two turns of one session at once both land: the append is a compare-and-set on the
 * entry's revision, retried on the newer history.
 */
import type { KV } from "@nats-io/kv";
import { LazyBucket, isLive } from "@dspex/bus";
import { compileSignature, type SignatureInput } from "@dspex/native";
import { TransportError, ValidationError } from "@dspex/protocol";
import type { CallOptions, CallResult } from "./call.js";
import { sessionKey } from "./sessions.js";

export const DEFAULT_CHAT_SIGNATURE = "question: str, history: dspy.History -> answer: str";
const DEFAULT_MAX_TURNS = 20;
const DEFAULT_MAX_BYTES = 64 * 1024;
const CAS_ATTEMPTS = 8;

export interface ChatOptions extends CallOptions {
  /** A signature with one `dspy.History` input (default `question: str, history: dspy.History -> answer: str`). */
  signature?: SignatureInput;
  module?: "predict" | "chain_of_thought";
  maxTurns?: number;
  maxBytes?: number;
}

export type ChatResult<O> = CallResult<O> & { turns: number };

interface Caller {
  call<O>(op: "predict" | "chain_of_thought", signature: SignatureInput, inputs: Record<string, unknown>, options: CallOptions): Promise<CallResult<O>>;
}

type Turn = Record<string, unknown>;

function envInt(name: string, fallback: number): number {
  const raw = Number(process.env[name]);
  return Number.isInteger(raw) && raw > 0 ? raw : fallback;
}

export class Chats {
  private readonly bucket: LazyBucket;

  constructor(
    nc: ConstructorParameters<typeof LazyBucket>[0],
    private readonly caller: Caller,
  ) {
    this.bucket = new LazyBucket(nc, "sessions");
  }

  /** The conversation so far (oldest turn first); empty for a new or expired session. */
  async history(session: string): Promise<Turn[]> {
    const entry = await (await this.bucket.get()).get(chatKey(session));
    return isLive(entry) ? (entry.json<{ messages: Turn[] }>().messages ?? []) : [];
  }

  /** Forgets the conversation (the session itself stays). */
  async forget(session: string): Promise<void> {
    await (await this.bucket.get()).delete(chatKey(session));
  }

  async send<O extends Record<string, unknown>>(session: string, message: string | Record<string, unknown>, options: ChatOptions = {}): Promise<ChatResult<O>> {
    if (typeof session !== "string" || session === "") throw new ValidationError("session: a chat needs a session id", { field: "session" });
    const { signature = DEFAULT_CHAT_SIGNATURE, module = "predict", maxTurns = envInt("DSPEX_CHAT_MAX_TURNS", DEFAULT_MAX_TURNS), maxBytes = DEFAULT_MAX_BYTES, ...call } = options;
    const sig = compileSignature(signature as never).wire;
    const history = sig.inputs.filter((f) => f.type.kind === "history");
    const others = sig.inputs.filter((f) => f.type.kind !== "history");
    if (history.length !== 1) throw new ValidationError("signature: a chat signature needs exactly one dspy.History input", { field: "signature" });
    let inputs: Record<string, unknown>;
    if (typeof message === "string") {
      if (others.length !== 1) throw new ValidationError("message: this signature has several inputs besides the history; pass them as an object", { field: "message" });
      inputs = { [others[0]!.name]: message };
    } else inputs = { ...message };
    const kv = await this.bucket.get();
    const key = chatKey(session);
    const before = await kv.get(key);
    const turns = isLive(before) ? (before.json<{ messages: Turn[] }>().messages ?? []) : [];
    const result = await this.caller.call<O>(module, sig, { ...inputs, [history[0]!.name]: { messages: turns } }, { ...call, session });
    // the turn as DSPy's History holds it: the inputs and the signature's outputs (not reasoning)
    const turn: Turn = { ...inputs };
    for (const f of sig.outputs) turn[f.name] = (result.outputs as Record<string, unknown>)[f.name];
    const count = await append(kv, key, turn, maxTurns, maxBytes);
    return { ...result, turns: count };
  }
}

function chatKey(session: string): string {
  return `chat.${sessionKey(session)}`;
}

/** Appends a turn with compare-and-set on the entry's revision; returns how many turns the history holds. */
async function append(kv: KV, key: string, turn: Turn, maxTurns: number, maxBytes: number): Promise<number> {
  for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
    const entry = await kv.get(key);
    const live = isLive(entry);
    let messages = [...(live ? (entry.json<{ messages: Turn[] }>().messages ?? []) : []), turn].slice(-maxTurns);
    let data = JSON.stringify({ messages });
    while (messages.length > 1 && Buffer.byteLength(data) > maxBytes) {
      messages = messages.slice(1);
      data = JSON.stringify({ messages });
    }
    try {
      if (live) await kv.update(key, data, entry.revision);
      else await kv.create(key, data);
      return messages.length;
    } catch (err) {
      // another turn of this session was stored first: append to that history
      if (!/wrong last sequence|key exists|10071/i.test(String((err as Error).message))) throw err;
    }
  }
  throw new TransportError(`chat: the history of ${key} kept changing; the turn was answered but not recorded`);
}
