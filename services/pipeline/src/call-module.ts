/** One DSPy module call of an eval job or a pipeline step, through the client (its retries, breakers, tracing). */
import type { Usage } from "@dspex/protocol";
import type { CallOptions, Client } from "@dspex/client";
import type { ProgramCaller } from "./pipeline.js";
import type { ModuleProgram } from "./types.js";

/**
 * One module call through the client. Batch work always rides the durable lane (at least once: a request a
 * killed worker held is redelivered, one past MaxDeliver is dead-lettered) whatever the client's default lane —
 * `auto` would send sessionless predict/chain_of_thought on the direct lane (docs/reliability.md, the lanes).
 */
export async function callModule(
  client: Client,
  program: Pick<ModuleProgram, "signature" | "module" | "instructions" | "demos" | "lm" | "pool" | "timeout_ms">,
  inputs: Record<string, unknown>,
  signal: AbortSignal | undefined,
  retry?: CallOptions["retry"],
): Promise<{ outputs: Record<string, unknown>; worker: string; lm: string; usage: Usage }> {
  const r = await client.call<Record<string, unknown>>(program.module ?? "predict", program.signature, inputs, {
    lane: "durable",
    ...(retry !== undefined ? { retry } : {}),
    ...(typeof program.signature === "string" && program.instructions !== undefined ? { instructions: program.instructions } : {}),
    ...(program.demos ? { demos: program.demos } : {}),
    ...(program.lm ? { lm: program.lm } : {}),
    ...(program.pool ? { pool: program.pool } : {}),
    ...(program.timeout_ms ? { timeoutMs: program.timeout_ms } : {}),
    ...(signal ? { signal } : {}),
  });
  return { outputs: r.outputs, worker: r.worker, lm: r.lm, usage: r.usage };
}

/**
 * Packaged programs for `program` steps, through the client (which keeps one handle per served program, so the
 * fields are learnt from the fleet once), calls on the durable lane like every step.
 */
export function programCaller(client: Client, retry?: CallOptions["retry"]): ProgramCaller {
  return {
    inputNames: async (name) => (await client.program(name).describe()).inputs.map((f) => f.name),
    call: async (step, inputs, signal) => {
      const r = await client.program(step.program).call(inputs, {
        lane: "durable",
        ...(retry !== undefined ? { retry } : {}),
        ...(step.lm ? { lm: step.lm } : {}),
        ...(step.timeout_ms ? { timeoutMs: step.timeout_ms } : {}),
        ...(signal ? { signal } : {}),
      });
      return { outputs: r.outputs, worker: r.worker, usage: r.usage };
    },
  };
}
