/**
 * Client of the worker's `evaluate` operation (run a module, then score it with named Python metrics): a
 * Router call with the `evaluate` map in the envelope, reading `scores` from the reply, so it gets the
 * Router's validation, retries, breakers, tracing and discovery like every other call.
 */
import {
  type EvaluateWire,
  type LMConfigWire,
  type Pool,
  type SignatureInput,
  type Usage,
} from "@dspex/shared";
import type { Router } from "@dspex/router";
export interface EvaluateCallOptions {
  module: "predict" | "chain_of_thought";
  metrics: Array<{ name: string; args?: Record<string, unknown> }>;
  /** Gold fields of the example. */
  example: Record<string, unknown>;
  instructions?: string;
  demos?: Array<Record<string, unknown>>;
  lm?: LMConfigWire;
  pool?: Pool;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface EvaluateCallResult {
  outputs: Record<string, unknown>;
  scores: Record<string, number | boolean>;
  worker: string;
  usage: Usage;
}

export class EvaluateCaller {
  constructor(private readonly router: Router) {}

  async evaluate(
    signature: SignatureInput,
    inputs: Record<string, unknown>,
    options: EvaluateCallOptions,
  ): Promise<EvaluateCallResult> {
    const evaluate: EvaluateWire = { module: options.module, metrics: options.metrics, example: options.example };
    let scores: Record<string, number | boolean> = {};
    const result = await this.router.call("evaluate", signature, inputs, {
      instructions: typeof signature === "string" ? options.instructions : undefined,
      demos: options.demos,
      lm: options.lm,
      pool: options.pool,
      timeoutMs: options.timeoutMs,
      signal: options.signal,
      envelope: { evaluate },
      extraOutputs: ["reasoning"],
      onReply: (reply) => {
        scores = (reply as { scores?: Record<string, number | boolean> }).scores ?? {};
      },
    });
    return { outputs: result.outputs as Record<string, unknown>, scores, worker: result.worker, usage: result.usage };
  }

  close(): void {}
}
