/**
 * The execution router (docs/architecture.md, "The execution router"): per call, the native predictor in this
 * process or a Python worker over the bus.
 *
 * - `python`: the bus.
 * - `native`: the native lane (lane.ts) when the native engine supports everything the call needs — the module
 *   (predict, chain_of_thought), the LM (an openai/ model of the operator's profiles whose key this process holds),
 *   no streaming, no strict session, no stored DSPy state — else the bus, with the reason recorded. ChatAdapter's
 *   JSONAdapter fallback runs natively where the LM's capabilities are known, else on a worker.
 * - `hybrid`: as `native`, but everything JSON is the workers' — a call whose first adapter is JSONAdapter goes to
 *   the bus, and after a ChatAdapter answer that does not parse, DSPy's one JSONAdapter call is made by a worker,
 *   whose json_repair reads it (the native engine reproduces json_repair for well-formed JSON only).
 *
 * A fallback never repeats an LM call whose answer was usable: a worker is asked only for what the native engine
 * did not do (the whole call when it could not start it; DSPy's JSONAdapter call when ChatAdapter's answer did not
 * parse). Every call is counted by route — `native`, `python` (asked for), `fallback` (asked for native or
 * hybrid, run by Python) — with the reason, in the client's snapshot (`dspex status`), the metric
 * `dspex.client.engine.calls` and attributes on the call's span.
 */
import { setCallAttributes, clientInstruments } from "@dspex/observability";
import type { ReplyOk, Usage } from "@dspex/protocol";
import { JsonFallbackNeeded, NATIVE_OPS, NativeEngine, type NativeEngineOptions } from "@dspex/native";
import type { CallInput, Interceptor, Next } from "../call.js";
import { nativeLane, type LaneDeps } from "./lane.js";
import { requestedEngine, type Engine, type EnginePolicy } from "./policy.js";

export type Route = "native" | "python" | "fallback";

export interface Decision {
  requested: Engine;
  engine: "native" | "python";
  /** Why a call that asked for native runs on Python (a low-cardinality code). */
  code?: string;
  reason?: string;
}

export interface EngineSnapshot {
  default: Engine;
  ops: Partial<Record<string, Engine>>;
  programs: number;
  /** Calls by route since the client was made. */
  counts: Record<Route, number>;
  /** Fallbacks by reason code. */
  reasons: Record<string, number>;
}

function addUsage(a: Usage, b: Usage): Usage {
  return {
    ...b,
    prompt_tokens: a.prompt_tokens + b.prompt_tokens,
    completion_tokens: a.completion_tokens + b.completion_tokens,
    total_tokens: a.total_tokens + b.total_tokens,
  };
}

export class ExecutionRouter {
  readonly counts: Record<Route, number> = { native: 0, python: 0, fallback: 0 };
  readonly reasons: Record<string, number> = {};
  private native: { engine: NativeEngine; lanes: Record<"native" | "hybrid", Next> } | undefined;

  constructor(
    readonly policy: EnginePolicy,
    private readonly nativeOptions: NativeEngineOptions | NativeEngine | undefined,
    private readonly deps: LaneDeps,
  ) {}

  /** The native engine and its lanes, made when a call first asks for native (a bad LM configuration throws then). */
  private nativeEngine(): { engine: NativeEngine; lanes: Record<"native" | "hybrid", Next> } {
    if (this.native === undefined) {
      const engine = this.nativeOptions instanceof NativeEngine ? this.nativeOptions : new NativeEngine(this.nativeOptions);
      this.native = { engine, lanes: { native: nativeLane(engine, this.deps, engine.jsonFallback), hybrid: nativeLane(engine, this.deps, "python") } };
    }
    return this.native;
  }

  /** Where a call runs, and why not natively when it asked for native. */
  async decide(input: CallInput): Promise<Decision> {
    const requested = requestedEngine(this.policy, input.op, input.request.program?.id, input.options.engine);
    if (requested === "python") return { requested, engine: "python" };
    const python = (code: string, reason: string): Decision => ({ requested, engine: "python", code, reason });
    if (!(NATIVE_OPS as readonly string[]).includes(input.op)) return python("module", `module ${input.op}: the native engine runs predict and chain_of_thought`);
    if (input.request.stream) return python("stream", "streamed calls: token events are dspy.streamify's, on the workers");
    if (input.options.session && input.options.affinity === "strict") return python("session_strict", "a strict session is bound to its worker");
    const ref = input.request.program;
    if (ref && (await this.deps.programs.get(ref.id, ref.version)).definition.state?.dspy_state) {
      return python("program_state", `program ${ref.id}: learned DSPy state (dump_state) is loaded by the workers' DSPy`);
    }
    const supported = this.nativeEngine().engine.support({ op: input.op as "predict", lm: input.lm, signature: input.signature });
    const hybridJson = (): Decision => python("json_adapter", "hybrid: JSONAdapter answers are read by the workers' DSPy (json_repair)");
    if ("code" in supported) return requested === "hybrid" && supported.code === "json_capabilities" ? hybridJson() : python(supported.code, supported.reason);
    if (requested === "hybrid" && supported.lm.knobs.adapter === "json") return hybridJson();
    return { requested, engine: "native" };
  }

  private record(input: CallInput, decision: Decision, route: Route): void {
    this.counts[route] += 1;
    if (decision.code) this.reasons[decision.code] = (this.reasons[decision.code] ?? 0) + 1;
    setCallAttributes({
      "dspex.engine.requested": decision.requested,
      "dspex.engine": decision.engine,
      "dspex.engine.fallback": route === "fallback",
      ...(decision.code ? { "dspex.engine.reason": decision.code, "dspex.engine.reason.message": decision.reason ?? "" } : {}),
    });
    clientInstruments().engineCalls.add(1, {
      "dspex.operation": input.op,
      "dspex.engine.requested": decision.requested,
      "dspex.engine.route": route,
      ...(decision.code ? { "dspex.engine.reason": decision.code } : {}),
    });
  }

  /** The router as an interceptor: placed after tracing, `next` is the bus lane. */
  interceptor(): Interceptor {
    return async (input, next): Promise<ReplyOk> => {
      const decision = await this.decide(input);
      if (decision.engine === "python") {
        this.record(input, decision, decision.requested === "python" ? "python" : "fallback");
        return next(input);
      }
      const lane = this.nativeEngine().lanes[decision.requested === "hybrid" ? "hybrid" : "native"];
      setCallAttributes({ "dspex.request.id": input.requestId }); // what the bus lane's publish sets
      let pending: JsonFallbackNeeded;
      try {
        const reply = await lane(input);
        this.record(input, decision, "native");
        return reply;
      } catch (err) {
        if (!(err instanceof JsonFallbackNeeded)) {
          this.record(input, decision, "native");
          throw err;
        }
        pending = err;
      }
      // ChatAdapter's answer did not parse: DSPy's next step, one JSONAdapter call, on a worker
      this.record(input, { ...decision, engine: "python", code: pending.code, reason: pending.message }, "fallback");
      const reply = await next({ ...input, lm: { ...input.lm, adapter: "json" } });
      return { ...reply, usage: addUsage(pending.usage, reply.usage) };
    };
  }

  snapshot(): EngineSnapshot {
    return {
      default: this.policy.default,
      ops: { ...this.policy.ops },
      programs: Object.keys(this.policy.programs).length,
      counts: { ...this.counts },
      reasons: { ...this.reasons },
    };
  }
}
