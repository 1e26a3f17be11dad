/**
 * The DSPy surface from TypeScript: every module with its constructor options and typed results
 * (docs/dspy-surface.md). Module options use DSPy's own (snake_case) names and travel as the request's
 * `module` map; they are checked against modules.schema.json before anything is published (ValidationError
 * naming `module.<option>`) and again by the worker.
 *
 * ```ts
 * const add = await client.tools.serve({ name: "add", parameters: {...}, handler: ({ a, b }) => a + b });
 * const r = await client.modules.react("question -> answer", { question: "What is 2+3?" }, { tools: [add], max_iters: 4 });
 * r.outputs.answer; r.trajectory[0].tool_name; // "add"
 * ```
 */
import {
  ValidationError,
  checkModuleOptions,
  errorFromWire,
  type BestOfNOptions as BestOfNWire,
  type DspexError,
  type ErrorWire,
  type MajorityOptions,
  type MultiChainComparisonOptions,
  type Operation,
  type ParallelOptions,
  type ProgramOfThoughtOptions,
  type RLMOptions,
} from "@dspex/protocol";
import { resolveSignature, validateInputs, validateOutputs, type SignatureInput } from "@dspex/native";
import type { CallOptions, CallResult } from "./call.js";
import type { Caller } from "./call.js";
import type { ServedTool, ToolRegistry, ToolSpecWire } from "./tools.js";

export type { MajorityOptions, MultiChainComparisonOptions, ParallelOptions, ProgramOfThoughtOptions, RLMOptions };
export type BestOfNOptions = BestOfNWire;
/** The module ops (everything but predict/chain_of_thought, evaluate and compile). */
export type ModuleOp = Exclude<Operation, "predict" | "chain_of_thought" | "evaluate" | "compile">;

export type { InnerModule } from "@dspex/protocol";

export interface TrajectoryStep {
  thought: string;
  tool_name: string;
  tool_args: Record<string, unknown>;
  /** What the tool returned, or "Execution error in <tool>: …" when it failed. */
  observation: unknown;
}

/** A tool in a `react` call: a tool served by this client, its wire spec, or the name of a served tool. */
export type ToolRef = ServedTool | ToolSpecWire | string;

/** ReAct's options with tools given as served tools, wire specs or names of served tools. */
export interface ReActOptions {
  tools: ToolRef[];
  max_iters?: number;
}

export type ReActResult<O> = CallResult<O & { reasoning: string }> & { trajectory: TrajectoryStep[] };
export type MultiChainComparisonResult<O> = CallResult<O & { rationale: string }> & {
  completions: Array<Record<string, unknown>>;
};
export type BestOfNResult<O> = CallResult<O> & { reward: string; rewards: number[] };
export type BatchItem<O> = { ok: true; outputs: O } | { ok: false; error: DspexError };
export type ParallelResult<O> = Omit<CallResult<Record<string, never>>, "outputs"> & { results: Array<BatchItem<O>> };
export type MajorityResult<O> = CallResult<O> & { votes: Array<{ value: unknown; count: number }>; n: number; field: string };

type Outputs = Record<string, unknown>;

export class Modules {
  constructor(
    private readonly client: Caller,
    private readonly tools: () => ToolRegistry,
  ) {}

  /** Runs a module op with its options; `extra` of the reply is handed back beside the validated outputs. */
  async module<O>(
    op: ModuleOp,
    signature: SignatureInput,
    inputs: Record<string, unknown>,
    module: Record<string, unknown>,
    options: CallOptions & { extraOutputs?: string[] } = {},
  ): Promise<CallResult<O> & { extra: Record<string, unknown> }> {
    const { extraOutputs, ...callOptions } = options;
    const result = await this.client.send<O>({ op, signature, inputs, module, ...(extraOutputs ? { extraOutputs } : {}) }, callOptions);
    return { ...result, extra: result.extra ?? {} };
  }

  /** Tool references as a request lists them (`module.tools`). */
  toolSpecs(tools: ToolRef[]): ToolSpecWire[] {
    return tools.map((tool, i) => {
      if (typeof tool === "string") {
        const served = this.tools().get(tool);
        if (!served) throw new ValidationError(`no tool named ${JSON.stringify(tool)} is served`, { field: `module.tools[${i}]` });
        return served.spec;
      }
      return "spec" in tool ? tool.spec : tool;
    });
  }

  /** `dspy.ReAct` with tools served from TypeScript; the result carries the agent's trajectory. */
  async react<O extends Outputs = Outputs>(
    signature: SignatureInput,
    inputs: Record<string, unknown>,
    module: ReActOptions,
    options: CallOptions = {},
  ): Promise<ReActResult<O>> {
    if (!Array.isArray(module.tools) || module.tools.length === 0) {
      throw new ValidationError("`module.tools` must list at least one tool", { field: "module.tools" });
    }
    const wire = { ...module, tools: this.toolSpecs(module.tools) };
    const { extra, ...result } = await this.module<O & { reasoning: string }>("react", signature, inputs, wire, {
      ...options,
      extraOutputs: ["reasoning"],
    });
    return { ...result, trajectory: (extra.trajectory ?? []) as TrajectoryStep[] };
  }

  /** `dspy.ProgramOfThought` (needs Deno on the worker; otherwise a typed `Unsupported` error). */
  async programOfThought<O extends Outputs = Outputs>(
    signature: SignatureInput,
    inputs: Record<string, unknown>,
    module: ProgramOfThoughtOptions = {},
    options: CallOptions = {},
  ): Promise<CallResult<O>> {
    const { extra: _extra, ...result } = await this.module<O>("program_of_thought", signature, inputs, { ...module }, options);
    return result;
  }

  /** `dspy.RLM`, ProgramOfThought's successor (needs Deno on the worker; otherwise `Unsupported`). */
  async rlm<O extends Outputs = Outputs>(
    signature: SignatureInput,
    inputs: Record<string, unknown>,
    module: RLMOptions = {},
    options: CallOptions = {},
  ): Promise<CallResult<O>> {
    const { extra: _extra, ...result } = await this.module<O>("rlm", signature, inputs, { ...module }, options);
    return result;
  }

  /** `dspy.MultiChainComparison` over M chain-of-thought attempts; outputs gain `rationale`. */
  async multiChainComparison<O extends Outputs = Outputs>(
    signature: SignatureInput,
    inputs: Record<string, unknown>,
    module: MultiChainComparisonOptions = {},
    options: CallOptions = {},
  ): Promise<MultiChainComparisonResult<O>> {
    const { extra, ...result } = await this.module<O & { rationale: string }>(
      "multi_chain_comparison",
      signature,
      inputs,
      { ...module },
      { ...options, extraOutputs: ["rationale"] },
    );
    return { ...result, completions: (extra.completions ?? []) as Array<Record<string, unknown>> };
  }

  /** `dspy.BestOfN` with a named reward function of the worker. */
  bestOfN<O extends Outputs = Outputs>(
    signature: SignatureInput,
    inputs: Record<string, unknown>,
    module: BestOfNOptions,
    options: CallOptions = {},
  ): Promise<BestOfNResult<O>> {
    return this.best<O>("best_of_n", signature, inputs, module, options);
  }

  /** `dspy.Refine`: BestOfN that asks the LM for advice between attempts. */
  refine<O extends Outputs = Outputs>(
    signature: SignatureInput,
    inputs: Record<string, unknown>,
    module: BestOfNOptions,
    options: CallOptions = {},
  ): Promise<BestOfNResult<O>> {
    return this.best<O>("refine", signature, inputs, module, options);
  }

  private async best<O>(
    op: "best_of_n" | "refine",
    signature: SignatureInput,
    inputs: Record<string, unknown>,
    module: BestOfNOptions,
    options: CallOptions,
  ): Promise<BestOfNResult<O>> {
    const extraOutputs = module.module === "chain_of_thought" ? ["reasoning"] : [];
    const { extra, ...result } = await this.module<O>(op, signature, inputs, { ...module }, { ...options, extraOutputs });
    return { ...result, reward: String(extra.reward ?? module.reward), rewards: (extra.rewards ?? []) as number[] };
  }

  /** `dspy.Parallel`: the module over a batch of inputs; each item succeeds or fails on its own. */
  async parallel<O extends Outputs = Outputs>(
    signature: SignatureInput,
    batch: Array<Record<string, unknown>>,
    module: ParallelOptions = {},
    options: CallOptions = {},
  ): Promise<ParallelResult<O>> {
    checkModuleOptions("parallel", { ...module });
    const sig = resolveSignature(signature, options.instructions);
    if (!Array.isArray(batch) || batch.length === 0) {
      throw new ValidationError("`batch` must be a non-empty array of input objects", { field: "batch" });
    }
    const items = batch.map((item, i) => {
      try {
        return validateInputs(sig, item);
      } catch (err) {
        if (err instanceof ValidationError) {
          throw new ValidationError(`batch[${i}]: ${err.message}`, {
            field: `batch[${i}].${err.field ?? ""}`,
            details: err.details,
          });
        }
        throw err;
      }
    });
    const result = await this.client.send<Record<string, never>>(
      { op: "parallel", signature: sig, inputs: {}, module: { ...module }, batch: items, rawInputs: true, rawOutputs: true },
      options,
    );
    const extra = result.extra ?? {};
    const extraNames = module.module === "chain_of_thought" ? ["reasoning"] : [];
    const raw = (extra.results ?? []) as Array<{ ok: boolean; outputs?: Outputs; error?: ErrorWire }>;
    const results = raw.map((item): BatchItem<O> => {
      if (!item.ok) return { ok: false, error: errorFromWire(item.error ?? { type: "WorkerError", message: "failed", retryable: false }) };
      try {
        return { ok: true, outputs: validateOutputs(sig, item.outputs ?? {}, { extra: extraNames }) as O };
      } catch (err) {
        return { ok: false, error: err as DspexError };
      }
    });
    const { outputs: _outputs, ...rest } = result;
    return { ...rest, results };
  }

  /** `n` completions of the module and `dspy.majority` over `field` (default: the last output field). */
  async majority<O extends Outputs = Outputs>(
    signature: SignatureInput,
    inputs: Record<string, unknown>,
    module: MajorityOptions = {},
    options: CallOptions = {},
  ): Promise<MajorityResult<O>> {
    const extraOutputs = module.module === "chain_of_thought" ? ["reasoning"] : [];
    const { extra, ...result } = await this.module<O>("majority", signature, inputs, { ...module }, { ...options, extraOutputs });
    return {
      ...result,
      votes: (extra.votes ?? []) as Array<{ value: unknown; count: number }>,
      n: Number(extra.n ?? module.n ?? 5),
      field: String(extra.field ?? module.field ?? ""),
    };
  }
}
