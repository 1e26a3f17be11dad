/**
 * The DSPy surface from TypeScript: every module with its constructor options and typed results, tools served
 * from TypeScript, streaming, and optimizer jobs (docs/dspy-surface.md).
 *
 * ```ts
 * const dspy = new DspySurface(router);
 * const add = await dspy.tools.serve({ name: "add", parameters: {...}, handler: ({ a, b }) => a + b });
 * const r = await dspy.react("question -> answer", { question: "What is 2+3?" }, { tools: [add], max_iters: 4 });
 * r.outputs.answer; r.trajectory[0].tool_name; // "add"
 * ```
 *
 * Module options use DSPy's own (snake_case) names and travel as the request's `module` map; they are checked
 * here before anything is published (ValidationError naming `module.<option>`) and again by the worker. Module
 * ops run on the `general` pool; `compile` jobs on the `optimizer` pool (optimize.ts).
 */
import {
  ValidationError,
  errorFromWire,
  resolveSignature,
  validateInputs,
  validateOutputs,
  type DspexError,
  type ErrorWire,
  type ReplyOk,
  type SignatureInput,
  type SurfaceOperation,
} from "@dspex/shared";
import type { CallOptions, CallResult, Router } from "./router.js";
import { ToolRegistry, type ServedTool, type ToolSpecWire } from "./tools.js";
import { ProgramStream, type StreamOptions } from "./stream.js";
import { Optimizer, type CompileOptions, type CompileJob } from "./optimize.js";
import { checkOptions, type Opt } from "./options.js";

const INNER = { kind: "enum", choices: ["predict", "chain_of_thought"] } as const satisfies Opt;
const DEMOS: Opt = { kind: "list" };

/** Module options per op, as the worker checks them (workers/dspex_worker/modules.py OPTIONS). */
export const MODULE_OPTIONS: Record<ModuleOp, Record<string, Opt>> = {
  react: { tools: { kind: "list", required: true }, max_iters: { kind: "int", min: 1, max: 50 } },
  program_of_thought: { max_iters: { kind: "int", min: 1, max: 10 } },
  rlm: { max_iters: { kind: "int", min: 1, max: 50 }, max_llm_calls: { kind: "int", min: 1, max: 200 } },
  multi_chain_comparison: {
    m: { kind: "int", min: 2, max: 10 },
    temperature: { kind: "float", min: 0, max: 2 },
    completions: { kind: "list" },
    demos: DEMOS,
  },
  best_of_n: {
    module: INNER,
    n: { kind: "int", min: 1, max: 20 },
    reward: { kind: "str", required: true },
    reward_args: { kind: "map" },
    threshold: { kind: "float" },
    fail_count: { kind: "int", min: 1, max: 20 },
    demos: DEMOS,
  },
  refine: {} as Record<string, Opt>, // same as best_of_n, filled in below
  parallel: { module: INNER, num_threads: { kind: "int", min: 1, max: 32 }, max_errors: { kind: "int", min: 1 }, demos: DEMOS },
  majority: { module: INNER, n: { kind: "int", min: 1, max: 20 }, field: { kind: "str" }, demos: DEMOS },
  ensemble: {},
};
MODULE_OPTIONS.refine = MODULE_OPTIONS.best_of_n;

export type ModuleOp = Exclude<SurfaceOperation, "compile">;

/** Checks module options like the worker does: unknown keys, required keys, types, ranges. */
export function checkModuleOptions(op: ModuleOp, options: Record<string, unknown>, prefix = "module"): void {
  checkOptions(MODULE_OPTIONS[op], options, prefix, op);
}

export type InnerModule = "predict" | "chain_of_thought";

export interface TrajectoryStep {
  thought: string;
  tool_name: string;
  tool_args: Record<string, unknown>;
  /** What the tool returned, or "Execution error in <tool>: …" when it failed. */
  observation: unknown;
}

/** A tool in a `react` call: a tool served by this router, its wire spec, or the name of a served tool. */
export type ToolRef = ServedTool | ToolSpecWire | string;

export interface ReActOptions {
  tools: ToolRef[];
  max_iters?: number;
}
export interface ProgramOfThoughtOptions {
  max_iters?: number;
}
export interface RLMOptions {
  max_iters?: number;
  max_llm_calls?: number;
}
export interface MultiChainComparisonOptions {
  m?: number;
  temperature?: number;
  /** M earlier attempts (`reasoning` + outputs); the worker makes them with ChainOfThought when omitted. */
  completions?: Array<Record<string, unknown>>;
  demos?: Array<Record<string, unknown>>;
}
export interface BestOfNOptions {
  module?: InnerModule;
  n?: number;
  /** A named reward function of the worker (rewards.py): one_word, max_words, equals, contains, … */
  reward: string;
  reward_args?: Record<string, unknown>;
  threshold?: number;
  fail_count?: number;
  demos?: Array<Record<string, unknown>>;
}
export interface ParallelOptions {
  module?: InnerModule;
  num_threads?: number;
  max_errors?: number;
  demos?: Array<Record<string, unknown>>;
}
export interface MajorityOptions {
  module?: InnerModule;
  n?: number;
  field?: string;
  demos?: Array<Record<string, unknown>>;
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

export class DspySurface {
  readonly tools: ToolRegistry;
  readonly optimizer: Optimizer;

  constructor(readonly router: Router) {
    this.tools = new ToolRegistry(router.nc);
    this.optimizer = new Optimizer(router);
  }

  /** Runs a module op with its options; `extra` of the reply is handed back beside the validated outputs. */
  async module<O>(
    op: ModuleOp,
    signature: SignatureInput,
    inputs: Record<string, unknown>,
    module: Record<string, unknown>,
    options: CallOptions & { extraOutputs?: string[] } = {},
  ): Promise<CallResult<O> & { extra: Record<string, unknown> }> {
    checkModuleOptions(op, module);
    let extra: Record<string, unknown> = {};
    const { extraOutputs, ...callOptions } = options;
    const result = await this.router.call<O>(op, signature, inputs, {
      ...callOptions,
      envelope: { module },
      extraOutputs,
      onReply: (reply: ReplyOk) => {
        extra = reply.extra ?? {};
      },
    });
    return { ...result, extra };
  }

  private toolSpecs(tools: ToolRef[]): ToolSpecWire[] {
    return tools.map((tool, i) => {
      if (typeof tool === "string") {
        const served = this.tools.get(tool);
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
    let extra: Record<string, unknown> = {};
    const result = await this.router.call<Record<string, never>>("parallel", sig, {}, {
      ...options,
      rawInputs: true,
      rawOutputs: true,
      envelope: { module: { ...module }, batch: items },
      onReply: (reply: ReplyOk) => {
        extra = reply.extra ?? {};
      },
    });
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

  /**
   * Streams a running program: an async iterator of token and status events, then the typed result
   * (`for await (const e of dspy.stream("predict", sig, inputs)) …`; `await stream.result`).
   */
  stream<O extends Outputs = Outputs>(
    op: "predict" | "chain_of_thought" | Exclude<ModuleOp, "parallel" | "majority">,
    signature: SignatureInput,
    inputs: Record<string, unknown>,
    module: Record<string, unknown> = {},
    options: StreamOptions = {},
  ): ProgramStream<O> {
    if (op !== "predict" && op !== "chain_of_thought") checkModuleOptions(op, module);
    const wire = op === "react" && Array.isArray(module.tools) ? { ...module, tools: this.toolSpecs(module.tools as ToolRef[]) } : module;
    const extraOutputs =
      op === "chain_of_thought" || op === "react" || module.module === "chain_of_thought"
        ? ["reasoning"]
        : op === "multi_chain_comparison"
          ? ["rationale"]
          : [];
    return ProgramStream.start<O>(this.router, op, signature, inputs, { ...options, module: wire, extraOutputs });
  }

  /** Streams a stored program (latest or a named version). */
  async streamProgram<O extends Outputs = Outputs>(
    programId: string,
    inputs: Record<string, unknown>,
    options: StreamOptions & { version?: number } = {},
  ): Promise<ProgramStream<O>> {
    const { definition, version } = await this.router.programs.get(programId, options.version);
    const extraOutputs = definition.module === "chain_of_thought" ? ["reasoning"] : [];
    return ProgramStream.start<O>(this.router, definition.module, definition.signature, inputs, {
      ...options,
      session: options.session ?? definition.session,
      program: { id: definition.id, version },
      extraOutputs,
    });
  }

  /** Starts an optimizer job on the optimizer pool; resolves with its handle as soon as it is queued. */
  compile(options: CompileOptions): Promise<CompileJob> {
    return this.optimizer.compile(options);
  }

  /** A handle on an existing job (from its id), e.g. in another process. */
  job(id: string): CompileJob {
    return this.optimizer.job(id);
  }

  async close(): Promise<void> {
    await this.tools.stop();
    this.optimizer.close();
  }
}
