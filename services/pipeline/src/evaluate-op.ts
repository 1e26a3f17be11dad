/**
 * Client of the worker's `evaluate` operation (run a module, then score it with named Python metrics): a
 * client call with the `evaluate` map in the envelope, reading `scores` from the reply, so it gets the
 * client's validation, retries, breakers, tracing and discovery like every other call.
 */
import type { EvaluateSpec, LMConfig, Pool, Usage } from "@dspex/protocol";
import type { SignatureInput } from "@dspex/native";
import type { CallOptions, Client } from "@dspex/client";
export interface EvaluateCallOptions {
  module: "predict" | "chain_of_thought" | "program";
  /** With module `program`: the packaged program's name. */
  program?: string;
  metrics: Array<{ name: string; args?: Record<string, unknown> }>;
  /** Gold fields of the example. */
  example: Record<string, unknown>;
  instructions?: string;
  demos?: Array<Record<string, unknown>>;
  lm?: LMConfig;
  pool?: Pool;
  timeoutMs?: number;
  signal?: AbortSignal;
  retry?: CallOptions["retry"];
}

export interface EvaluateCallResult {
  outputs: Record<string, unknown>;
  scores: Record<string, number | boolean>;
  worker: string;
  lm: string;
  usage: Usage;
}

export class EvaluateCaller {
  constructor(private readonly client: Client) {}

  async evaluate(
    signature: SignatureInput,
    inputs: Record<string, unknown>,
    options: EvaluateCallOptions,
  ): Promise<EvaluateCallResult> {
    const evaluate: EvaluateSpec = { module: options.module, ...(options.program ? { program: options.program } : {}), metrics: options.metrics, example: options.example };
    const result = await this.client.send<Record<string, unknown>>(
      { op: "evaluate", signature, inputs, evaluate, extraOutputs: ["reasoning"] },
      {
        ...(typeof signature === "string" && options.instructions !== undefined ? { instructions: options.instructions } : {}),
        ...(options.demos ? { demos: options.demos } : {}),
        ...(options.lm ? { lm: options.lm } : {}),
        ...(options.pool ? { pool: options.pool } : {}),
        ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.retry !== undefined ? { retry: options.retry } : {}),
      },
    );
    return { outputs: result.outputs, scores: result.scores ?? {}, worker: result.worker, lm: result.lm, usage: result.usage };
  }
}
