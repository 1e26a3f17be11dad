/**
 * Pipelines: steps whose outputs feed the next steps by field name or explicit mapping.
 *
 * Step kinds: `module` (a DSPy Predict/ChainOfThought call through the client), `program` (a user's packaged
 * DSPy program the fleet serves, docs/programs.md), `native` (a TypeScript
 * function: built-in, registered by name, or given inline through the API), `parallel` (children run
 * concurrently on the same snapshot, their outputs merged in declaration order) and `branch` (runs `then` or
 * `else` depending on a condition). Every step records its timing; `continue_on_error` lets a step fail
 * without failing the pipeline.
 *
 * Values: the pipeline keeps one flat map of fields, starting with the inputs; each step's outputs are merged
 * into it (later steps overwrite earlier fields). A step's `inputs` mapping picks its inputs by path:
 * `"field"` (the flat map), `"$input.field"` (the pipeline's original inputs) or `"<step>.<field>"` (what
 * that step returned). Without a mapping a module step takes its signature's input fields by name and a
 * native step receives the whole flat map. A step's `outputs` mapping `{<new name>: <output field>}` renames
 * what is merged (only the mapped fields are merged then).
 */
import { DspexError, SCHEMAS, ValidationError, type LMConfig, type Pool, type SignatureWire, type Usage } from "@dspex/protocol";
import { resolveSignature } from "@dspex/native";
import { checkCondition, evaluateCondition, str, type Condition } from "./conditions.js";

export { evaluateCondition, type Condition } from "./conditions.js";

/** target field -> source path */
export type FieldMapping = Record<string, string>;

export type NativeFunction = (
  input: Record<string, unknown>,
  args: Record<string, unknown>,
) => Record<string, unknown> | Promise<Record<string, unknown>>;

interface StepBase {
  name: string;
  inputs?: FieldMapping;
  outputs?: FieldMapping;
  continue_on_error?: boolean;
}

export interface ModuleStep extends StepBase {
  kind: "module";
  module?: "predict" | "chain_of_thought";
  signature: string | SignatureWire;
  instructions?: string;
  demos?: Array<Record<string, unknown>>;
  lm?: LMConfig;
  pool?: Pool;
  timeout_ms?: number;
}

/** A user's packaged program (op `program`): its inputs default to its advertised input fields, by name. */
export interface ProgramStep extends StepBase {
  kind: "program";
  program: string;
  lm?: LMConfig;
  timeout_ms?: number;
}

export interface NativeStep extends StepBase {
  kind: "native";
  /** A built-in (`template`, `set`, `pick`, `join`), a registered name, or (API only) a function. */
  fn: string | NativeFunction;
  args?: Record<string, unknown>;
}

export interface ParallelStep extends StepBase {
  kind: "parallel";
  steps: Step[];
}


export interface BranchStep extends StepBase {
  kind: "branch";
  if: Condition | ((values: Record<string, unknown>) => boolean);
  then: Step[];
  else?: Step[];
}

export type Step = ModuleStep | ProgramStep | NativeStep | ParallelStep | BranchStep;

export interface PipelineSpec {
  name?: string;
  /** Input fields the pipeline takes (in a job: the example fields passed in; default all). */
  inputs?: string[];
  steps: Step[];
  /** Final outputs: a list of field names, or `{name: path}`; default every field a step produced. */
  output?: string[] | FieldMapping;
}

export interface StepTiming {
  name: string;
  kind: Step["kind"];
  status: "ok" | "failed" | "skipped";
  /** Start, relative to the pipeline's start, and duration, in ms. */
  startMs: number;
  ms: number;
  error?: { type: string; message: string };
  worker?: string;
  branch?: "then" | "else";
  children?: StepTiming[];
}

export interface PipelineResult {
  outputs: Record<string, unknown>;
  /** The flat map at the end (inputs and every merged output). */
  values: Record<string, unknown>;
  steps: StepTiming[];
  ms: number;
  usage: Usage;
  /** Workers that ran module steps. */
  workers: string[];
}

/** Runs one module step (the client in production). */
export type ModuleCaller = (
  step: ModuleStep,
  inputs: Record<string, unknown>,
  signal: AbortSignal | undefined,
) => Promise<{ outputs: Record<string, unknown>; worker?: string; usage?: Usage }>;

/** Runs packaged programs (the client's `client.program(name)` in production). */
export interface ProgramCaller {
  /** The program's advertised input field names (UnknownProgram when the fleet does not serve it). */
  inputNames(program: string): Promise<string[]>;
  call(step: ProgramStep, inputs: Record<string, unknown>, signal: AbortSignal | undefined): Promise<{ outputs: Record<string, unknown>; worker?: string; usage?: Usage }>;
}

export interface PipelineContext {
  callModule: ModuleCaller;
  /** Needed only by pipelines with `program` steps. */
  programs?: ProgramCaller;
  /** Named native functions (in addition to the built-ins). */
  functions?: ReadonlyMap<string, NativeFunction>;
  signal?: AbortSignal;
}

/** A step failed and the pipeline stopped; `type`/`retryable` are the cause's. */
export class PipelineStepError extends DspexError {
  override readonly type: string;
  readonly step: string;
  readonly timings: StepTiming[];
  constructor(step: string, cause: unknown, timings: StepTiming[]) {
    const info = errorInfo(cause);
    super(`step '${step}' failed: ${info.message}`, {
      cause,
      retryable: (cause as { retryable?: boolean })?.retryable === true,
      details: { step },
    });
    this.type = info.type;
    this.step = step;
    this.timings = timings;
  }
}

export function errorInfo(err: unknown): { type: string; message: string; retryable?: boolean } {
  if (err instanceof DspexError) return { type: err.type, message: err.message, retryable: err.retryable };
  if (err instanceof Error) return { type: err.name === "Error" ? "Error" : err.name, message: err.message };
  return { type: "Error", message: String(err) };
}

// ---------------------------------------------------------------------------------------------------------
// Built-in native functions


export const BUILTIN_FUNCTIONS: ReadonlyMap<string, NativeFunction> = new Map<string, NativeFunction>([
  // {field, template: "Q: {question}"} -> {field: formatted}
  [
    "template",
    (input, args) => {
      const template = args.template;
      const field = args.field;
      if (typeof template !== "string" || typeof field !== "string") {
        throw new ValidationError("template needs args {field: string, template: string}", { field: "args" });
      }
      return { [field]: template.replace(/\{([A-Za-z_][\w.]*)\}/g, (_, name: string) => str(input[name])) };
    },
  ],
  // constants: args -> outputs
  ["set", (_input, args) => ({ ...args })],
  // {fields: [...]} -> those fields of the input
  [
    "pick",
    (input, args) => {
      const fields = args.fields;
      if (!Array.isArray(fields)) throw new ValidationError("pick needs args {fields: string[]}", { field: "args" });
      return Object.fromEntries(fields.map((f) => [String(f), input[String(f)]]));
    },
  ],
  // {from, field, sep?} -> {field: input[from].join(sep)}
  [
    "join",
    (input, args) => {
      const from = String(args.from ?? "");
      const field = String(args.field ?? from);
      const value = input[from];
      const sep = typeof args.sep === "string" ? args.sep : "\n";
      return { [field]: Array.isArray(value) ? value.map(str).join(sep) : str(value) };
    },
  ],
]);

// ---------------------------------------------------------------------------------------------------------
// Validation

/** A packaged program's name as the contract allows it (modules.schema.json ProgramOptions). */
const PROGRAM_NAME = new RegExp(SCHEMAS["modules.schema.json"].definitions.program.properties.name.pattern);
const STEP_KINDS = new Set(["module", "program", "native", "parallel", "branch"]);

/** Checks a pipeline spec (names, kinds, signatures, native functions); throws ValidationError. */
export function validatePipeline(spec: PipelineSpec, functions?: ReadonlyMap<string, NativeFunction>): void {
  if (!spec || typeof spec !== "object" || !Array.isArray(spec.steps) || spec.steps.length === 0) {
    throw new ValidationError("a pipeline needs a non-empty `steps` list", { field: "pipeline.steps" });
  }
  const names = new Set<string>();
  const visit = (steps: Step[], path: string) => {
    steps.forEach((step, i) => {
      const where = `${path}[${i}]`;
      if (!step || typeof step !== "object") throw new ValidationError(`${where} must be a step`, { field: where });
      if (typeof step.name !== "string" || !/^[A-Za-z_][\w-]*$/.test(step.name)) {
        throw new ValidationError(`${where}.name must be an identifier (got ${JSON.stringify(step.name)})`, {
          field: `${where}.name`,
        });
      }
      if (names.has(step.name)) {
        throw new ValidationError(`duplicate step name '${step.name}'`, { field: `${where}.name` });
      }
      if (step.name === "$input") throw new ValidationError("'$input' is reserved", { field: `${where}.name` });
      names.add(step.name);
      if (!STEP_KINDS.has(step.kind)) {
        throw new ValidationError(`${where}.kind must be module, program, native, parallel or branch`, { field: `${where}.kind` });
      }
      for (const key of ["inputs", "outputs"] as const) {
        const m = step[key];
        if (m !== undefined && (typeof m !== "object" || m === null || Object.values(m).some((v) => typeof v !== "string"))) {
          throw new ValidationError(`${where}.${key} must map field names to paths`, { field: `${where}.${key}` });
        }
      }
      switch (step.kind) {
        case "module":
          if (step.module !== undefined && step.module !== "predict" && step.module !== "chain_of_thought") {
            throw new ValidationError(`${where}.module must be predict or chain_of_thought`, { field: `${where}.module` });
          }
          resolveSignature(step.signature, typeof step.signature === "string" ? step.instructions : undefined);
          break;
        case "program":
          if (typeof step.program !== "string" || !PROGRAM_NAME.test(step.program)) {
            throw new ValidationError(`${where}.program must name a packaged program`, { field: `${where}.program` });
          }
          break;
        case "native":
          if (typeof step.fn === "string" && !BUILTIN_FUNCTIONS.has(step.fn) && !functions?.has(step.fn)) {
            throw new ValidationError(`${where}: unknown native function '${step.fn}'`, { field: `${where}.fn` });
          }
          if (typeof step.fn !== "string" && typeof step.fn !== "function") {
            throw new ValidationError(`${where}.fn must be a function name`, { field: `${where}.fn` });
          }
          break;
        case "parallel":
          if (!Array.isArray(step.steps) || step.steps.length === 0) {
            throw new ValidationError(`${where}.steps must be a non-empty list`, { field: `${where}.steps` });
          }
          visit(step.steps, `${where}.steps`);
          break;
        case "branch":
          if (typeof step.if !== "function") checkCondition(step.if, `${where}.if`);
          if (!Array.isArray(step.then)) throw new ValidationError(`${where}.then must be a list`, { field: `${where}.then` });
          visit(step.then, `${where}.then`);
          if (step.else !== undefined) {
            if (!Array.isArray(step.else)) throw new ValidationError(`${where}.else must be a list`, { field: `${where}.else` });
            visit(step.else, `${where}.else`);
          }
          break;
      }
    });
  };
  visit(spec.steps, "pipeline.steps");
}


// ---------------------------------------------------------------------------------------------------------
// Running

interface State {
  input: Record<string, unknown>;
  values: Record<string, unknown>;
  produced: Record<string, unknown>;
  steps: Record<string, Record<string, unknown>>;
  usage: Usage;
  workers: string[];
  t0: number;
}

function resolvePath(state: State, path: string, values: Record<string, unknown>): unknown {
  if (path.startsWith("$input.")) return state.input[path.slice(7)];
  const dot = path.indexOf(".");
  if (dot > 0) {
    const step = path.slice(0, dot);
    if (Object.hasOwn(state.steps, step)) return state.steps[step]![path.slice(dot + 1)];
  }
  return values[path];
}



function stepInputs(state: State, step: Step, values: Record<string, unknown>, defaults: string[] | undefined) {
  if (step.inputs) {
    return Object.fromEntries(Object.entries(step.inputs).map(([k, path]) => [k, resolvePath(state, path, values)]));
  }
  if (defaults) return Object.fromEntries(defaults.filter((n) => values[n] !== undefined).map((n) => [n, values[n]]));
  return { ...values };
}

function mergeOutputs(step: Step, outputs: Record<string, unknown>): Record<string, unknown> {
  if (!step.outputs) return outputs;
  return Object.fromEntries(Object.entries(step.outputs).map(([name, field]) => [name, outputs[field]]));
}

/**
 * Runs steps in order on `values` (mutated; what each step merges is also collected in `acc`); returns their
 * timings. Throws PipelineStepError naming the innermost failed step.
 */
async function runSteps(
  steps: Step[],
  state: State,
  values: Record<string, unknown>,
  ctx: PipelineContext,
  acc: Record<string, unknown> = {},
): Promise<StepTiming[]> {
  const timings: StepTiming[] = [];
  for (const step of steps) {
    const { timing, merged, error } = await runStep(step, state, values, ctx);
    timings.push(timing);
    if (error !== undefined) {
      if (error instanceof PipelineStepError) throw new PipelineStepError(error.step, error.cause, timings);
      throw new PipelineStepError(step.name, error, timings);
    }
    Object.assign(values, merged);
    Object.assign(acc, merged);
    Object.assign(state.produced, merged);
  }
  return timings;
}

async function runStep(
  step: Step,
  state: State,
  values: Record<string, unknown>,
  ctx: PipelineContext,
): Promise<{ timing: StepTiming; merged: Record<string, unknown>; error?: unknown }> {
  const start = performance.now();
  const timing: StepTiming = { name: step.name, kind: step.kind, status: "ok", startMs: start - state.t0, ms: 0 };
  try {
    ctx.signal?.throwIfAborted();
    let outputs: Record<string, unknown>;
    switch (step.kind) {
      case "module": {
        const sig = resolveSignature(step.signature, typeof step.signature === "string" ? step.instructions : undefined);
        const inputs = stepInputs(state, step, values, sig.inputs.map((f) => f.name));
        const r = await ctx.callModule(step, inputs, ctx.signal);
        outputs = recordCall(state, timing, r);
        break;
      }
      case "program": {
        if (!ctx.programs) throw new ValidationError(`step '${step.name}': this runner cannot call packaged programs`, { field: `${step.name}.program` });
        const inputs = stepInputs(state, step, values, await ctx.programs.inputNames(step.program));
        const r = await ctx.programs.call(step, inputs, ctx.signal);
        outputs = recordCall(state, timing, r);
        break;
      }
      case "native": {
        const fn = typeof step.fn === "function" ? step.fn : (ctx.functions?.get(step.fn) ?? BUILTIN_FUNCTIONS.get(step.fn));
        if (!fn) throw new ValidationError(`unknown native function '${String(step.fn)}'`, { field: `${step.name}.fn` });
        const result = await fn(stepInputs(state, step, values, undefined), step.args ?? {});
        if (!result || typeof result !== "object" || Array.isArray(result)) {
          throw new ValidationError(`native step '${step.name}' must return an object of fields`);
        }
        outputs = result;
        break;
      }
      case "parallel": {
        const snapshot = { ...values };
        const settled = await Promise.all(step.steps.map((child) => runStep(child, state, { ...snapshot }, ctx)));
        timing.children = settled.map((s) => s.timing);
        const failed = settled.find((s) => s.error !== undefined);
        if (failed) {
          const inner = failed.error;
          throw inner instanceof PipelineStepError
            ? new PipelineStepError(inner.step, inner.cause, timing.children)
            : new PipelineStepError(failed.timing.name, inner, timing.children);
        }
        outputs = Object.assign({}, ...settled.map((s) => s.merged)) as Record<string, unknown>;
        break;
      }
      case "branch": {
        const take = typeof step.if === "function" ? step.if({ ...values }) : evaluateCondition(step.if, values);
        timing.branch = take ? "then" : "else";
        const produced: Record<string, unknown> = {};
        try {
          timing.children = await runSteps(take ? step.then : (step.else ?? []), state, { ...values }, ctx, produced);
        } catch (err) {
          if (err instanceof PipelineStepError) timing.children = err.timings;
          throw err;
        }
        outputs = produced;
        break;
      }
    }
    timing.ms = performance.now() - start;
    state.steps[step.name] = outputs;
    return { timing, merged: mergeOutputs(step, outputs) };
  } catch (err) {
    timing.ms = performance.now() - start;
    timing.status = "failed";
    timing.error = errorInfo(err instanceof PipelineStepError ? err.cause : err);
    if (step.continue_on_error && !ctx.signal?.aborted) return { timing, merged: {} };
    return { timing, merged: {}, error: err };
  }
}

/** A worker call's outputs, with its worker and usage recorded on the step and the run. */
function recordCall(state: State, timing: StepTiming, r: { outputs: Record<string, unknown>; worker?: string; usage?: Usage }): Record<string, unknown> {
  if (r.worker) {
    timing.worker = r.worker;
    state.workers.push(r.worker);
  }
  if (r.usage) addUsage(state.usage, r.usage);
  return r.outputs;
}

function addUsage(total: Usage, u: Usage): void {
  total.prompt_tokens += u.prompt_tokens ?? 0;
  total.completion_tokens += u.completion_tokens ?? 0;
  total.total_tokens += u.total_tokens ?? 0;
}

/** Runs a pipeline on one set of inputs. Throws PipelineStepError when a step without continue_on_error fails. */
export async function runPipeline(
  spec: PipelineSpec,
  inputs: Record<string, unknown>,
  ctx: PipelineContext,
): Promise<PipelineResult> {
  const t0 = performance.now();
  const input = spec.inputs ? Object.fromEntries(spec.inputs.map((k) => [k, inputs[k]])) : { ...inputs };
  const state: State = {
    input,
    values: { ...input },
    produced: {},
    steps: {},
    usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
    workers: [],
    t0,
  };
  const steps = await runSteps(spec.steps, state, state.values, ctx);
  let outputs: Record<string, unknown>;
  if (Array.isArray(spec.output)) outputs = Object.fromEntries(spec.output.map((k) => [k, state.values[k]]));
  else if (spec.output) {
    outputs = Object.fromEntries(Object.entries(spec.output).map(([k, p]) => [k, resolvePath(state, p, state.values)]));
  } else outputs = { ...state.produced };
  return { outputs, values: state.values, steps, ms: performance.now() - t0, usage: state.usage, workers: state.workers };
}

/** Names of the native functions a pipeline's steps call (nested steps included). */
export function collectFunctionNames(steps: Step[], out: string[]): void {
  for (const s of steps) {
    if (s.kind === "native" && typeof s.fn === "string") out.push(s.fn);
    if (s.kind === "parallel") collectFunctionNames(s.steps, out);
    if (s.kind === "branch") {
      collectFunctionNames(s.then, out);
      collectFunctionNames(s.else ?? [], out);
    }
  }
}

/** Whether any native step or branch of a pipeline is an inline function (the API only; a job must name them). */
export function hasInlineFunctions(steps: Step[]): boolean {
  return steps.some(
    (s) =>
      (s.kind === "native" && typeof s.fn === "function") ||
      (s.kind === "branch" && (typeof s.if === "function" || hasInlineFunctions(s.then) || hasInlineFunctions(s.else ?? []))) ||
      (s.kind === "parallel" && hasInlineFunctions(s.steps)),
  );
}
