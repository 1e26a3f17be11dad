/**
 * Which engine a call asks for (docs/architecture.md, "The execution router"): `python` (the bus and a worker's
 * DSPy), `native` (the native predictor in this process, Python for what it cannot run) or `hybrid` (native for
 * ChatAdapter's exactly parity-tested half, a worker for everything JSON). Decided per call, the most specific
 * setting first: the call's `engine` option, its stored program's, its operation's, the client's default.
 *
 *   DSPEX_ENGINE=python|native|hybrid               the default (python when unset)
 *   DSPEX_ENGINE_<OP>=…                             per operation, e.g. DSPEX_ENGINE_CHAIN_OF_THOUGHT=native
 *   DSPEX_ENGINE_PROGRAMS='{"<program id>": "…"}'   per stored program
 *
 * Options given to the client win over the environment. A value that is no engine is a ValidationError naming the
 * variable or option.
 */
import { OPERATIONS, ValidationError, type Operation } from "@dspex/protocol";

export const ENGINES = ["python", "native", "hybrid"] as const;
export type Engine = (typeof ENGINES)[number];
export const DEFAULT_ENGINE: Engine = "python";

export interface EnginePolicyOptions {
  /** The engine of calls nothing more specific decides (default DSPEX_ENGINE, else python). */
  default?: Engine;
  /** Per operation (default DSPEX_ENGINE_<OP>). */
  ops?: Partial<Record<Operation, Engine>>;
  /** Per stored program id (default DSPEX_ENGINE_PROGRAMS). */
  programs?: Record<string, Engine>;
}

export function isEngine(value: unknown): value is Engine {
  return typeof value === "string" && (ENGINES as readonly string[]).includes(value);
}

export function checkEngine(value: unknown, field: string): Engine {
  if (isEngine(value)) return value;
  throw new ValidationError(`\`${field}\` must be one of ${ENGINES.map((e) => JSON.stringify(e)).join(", ")} (got ${JSON.stringify(value)})`, {
    field,
    details: { allowed: [...ENGINES], value },
  });
}

export interface EnginePolicy {
  readonly default: Engine;
  readonly ops: Readonly<Partial<Record<Operation, Engine>>>;
  readonly programs: Readonly<Record<string, Engine>>;
}

/** The policy from options over the environment. */
export function enginePolicy(options: EnginePolicyOptions = {}, env: NodeJS.ProcessEnv = process.env): EnginePolicy {
  const ops: Partial<Record<Operation, Engine>> = {};
  for (const op of OPERATIONS) {
    const name = `DSPEX_ENGINE_${op.toUpperCase()}`;
    if (env[name]) ops[op] = checkEngine(env[name], name);
  }
  for (const [op, engine] of Object.entries(options.ops ?? {})) ops[op as Operation] = checkEngine(engine, `engine.ops.${op}`);
  const programs: Record<string, Engine> = {};
  if (env.DSPEX_ENGINE_PROGRAMS) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(env.DSPEX_ENGINE_PROGRAMS);
    } catch {
      parsed = undefined;
    }
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
      throw new ValidationError("`DSPEX_ENGINE_PROGRAMS` must be a JSON object of program id -> engine", { field: "DSPEX_ENGINE_PROGRAMS" });
    }
    for (const [id, engine] of Object.entries(parsed)) programs[id] = checkEngine(engine, `DSPEX_ENGINE_PROGRAMS.${id}`);
  }
  for (const [id, engine] of Object.entries(options.programs ?? {})) programs[id] = checkEngine(engine, `engine.programs.${id}`);
  const fallback = env.DSPEX_ENGINE ? checkEngine(env.DSPEX_ENGINE, "DSPEX_ENGINE") : DEFAULT_ENGINE;
  return {
    default: options.default === undefined ? fallback : checkEngine(options.default, "engine.default"),
    ops,
    programs,
  };
}

/** The engine a call asks for: the call's option, its program's, its operation's, the default. */
export function requestedEngine(policy: EnginePolicy, op: Operation, program: string | undefined, option: unknown): Engine {
  if (option !== undefined) return checkEngine(option, "engine");
  if (program !== undefined && policy.programs[program] !== undefined) return policy.programs[program]!;
  return policy.ops[op] ?? policy.default;
}
