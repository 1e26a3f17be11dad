/**
 * The native lane: a call the execution router sends to the native engine runs through the same interceptors as a
 * call on the bus — idempotency, the retry policy (retryable LM errors, backoff or Retry-After, within the
 * deadline), the LM's circuit breaker (the same breaker the bus lane uses for that LM: a provider that fails, fails
 * for both) — around the native predictor instead of the transport. There is no pool on this lane, so neither the
 * pool's breaker nor worker discovery apply, and strict session affinity is never routed here.
 */
import { DeadlineExceeded, ValidationError, checkRequest, type ReplyOk, type RequestEnvelope } from "@dspex/protocol";
import { JsonFallbackNeeded, NATIVE_OPS, type NativeEngine, type NativeOp } from "@dspex/native";
import { markAnswered } from "../answered.js";
import { compose, type CallInput, type Interceptor, type Next, type RetryPolicy } from "../call.js";
import { breakerInterceptor, type BreakerCounts, type Breakers } from "../interceptors/breaker.js";
import { idempotencyInterceptor, retryInterceptor, type RetryCounts } from "../interceptors/retry.js";
import type { ProgramStore } from "../programs.js";
import type { SessionTable } from "../sessions.js";

/** The native lane's worker name in replies and results. */
export const NATIVE_WORKER = "native";

export interface LaneDeps {
  breakers: Breakers;
  counts: BreakerCounts & RetryCounts;
  retry: RetryPolicy;
  fallbackOnOpen: boolean;
  programs: ProgramStore;
  sessions: SessionTable;
  /** The request envelope the bus lane would publish for this call (checked against the contract here too). */
  envelope: (input: CallInput) => RequestEnvelope;
}

/** Nothing to wait for and nothing to remember: the native lane has no connection and no reply inbox. */
const NO_TRANSPORT = { ready: async () => {}, settled: () => {} };

/** Few-shot demos of a call: the request's (`demos` option), else its stored program's plain `demos`. */
export async function callDemos(input: CallInput, programs: ProgramStore): Promise<Array<Record<string, unknown>> | undefined> {
  const own = input.request.module?.demos;
  if (Array.isArray(own)) return own as Array<Record<string, unknown>>;
  const ref = input.request.program;
  if (ref === undefined) return undefined;
  return (await programs.get(ref.id, ref.version)).definition.state?.demos;
}

/**
 * The innermost step of the native lane: the native predictor's answer as a reply. Its failures are marked as
 * answers (as a worker's error reply is), except DeadlineExceeded — no answer came — and JsonFallbackNeeded, which
 * the router handles.
 */
function nativeSend(engine: NativeEngine, deps: LaneDeps, jsonFallback: "native" | "python"): Next {
  return async (input: CallInput): Promise<ReplyOk> => {
    const started = performance.now();
    if (!(NATIVE_OPS as readonly string[]).includes(input.op)) {
      throw new ValidationError(`op ${input.op} does not run on the native engine`, { field: "op" });
    }
    try {
      checkRequest(deps.envelope(input)); // the same contract check, with the same ValidationError, as the bus lane's
      const prediction = await engine.predict(
        {
          op: input.op as NativeOp,
          signature: input.signature,
          inputs: input.inputs,
          demos: await callDemos(input, deps.programs),
          lm: input.lm,
          jsonFallback,
        },
        { deadline: input.deadline, signal: input.options.signal, requestId: input.requestId },
      );
      const session = input.options.session;
      if (session) {
        // a session used here stays alive (its idle TTL, its programs) and keeps the worker it is bound to, if any
        deps.sessions.touch(session, (await deps.sessions.owner(session)) ?? NATIVE_WORKER, input.pool);
      }
      return {
        v: 1,
        id: input.requestId,
        ok: true,
        outputs: prediction.outputs,
        lm: prediction.lm,
        usage: prediction.usage,
        timings: { queue_ms: 0, exec_ms: performance.now() - started },
        worker: NATIVE_WORKER,
      };
    } catch (err) {
      if (err instanceof JsonFallbackNeeded || err === input.options.signal?.reason) throw err;
      if (err instanceof DeadlineExceeded) throw err;
      throw markAnswered(err);
    }
  };
}

/**
 * The native lane: idempotency → retry → the LM's breaker → the native predictor. `jsonFallback`: who makes
 * ChatAdapter's JSONAdapter call after an answer that does not parse (`python`: a worker, through the router).
 */
export function nativeLane(engine: NativeEngine, deps: LaneDeps, jsonFallback: "native" | "python"): Next {
  const interceptors: Interceptor[] = [
    idempotencyInterceptor(),
    retryInterceptor(deps.retry, NO_TRANSPORT, deps.counts),
    breakerInterceptor(deps.breakers, deps.counts, deps.fallbackOnOpen, "lm"),
  ];
  return compose(interceptors, nativeSend(engine, deps, jsonFallback));
}
