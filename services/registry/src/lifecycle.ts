/**
 * The lifecycle of a program: draft → training → optimized → deployed → deprecated. Each action names the
 * states it may start from; its other guards (a finished optimizer job, a score on a named dataset at or above a
 * threshold, a previous deployment) are checked by the action itself (transitions.ts). A refusal is a Conflict
 * naming the state and the guard that failed.
 */
import { Conflict } from "./errors.js";
import type { LifecycleState } from "./names.js";

export const ACTIONS = {
  /** Starts an optimizer job on a version; from training only once the last job ended without success. */
  train: { from: ["draft", "training", "optimized", "deployed"], to: "training", guards: ["optimizer job not running", "datasets exist"] },
  /** Takes the finished optimizer job's program as a new version. */
  optimize: { from: ["training"], to: "optimized", guards: ["optimizer job succeeded"] },
  /** Routes `program:<name>@deployed` to a version. */
  deploy: { from: ["optimized", "deployed"], to: "deployed", guards: ["score on dataset", "score ≥ threshold"] },
  /** Returns the alias to the version deployed before the current one. */
  rollback: { from: ["deployed"], to: "deployed", guards: ["previous deployment"] },
  /** Retires the program: no alias; pinned versions still run. */
  deprecate: { from: ["draft", "training", "optimized", "deployed"], to: "deprecated", guards: [] },
} as const satisfies Record<string, { from: readonly LifecycleState[]; to: LifecycleState; guards: readonly string[] }>;

export type Action = keyof typeof ACTIONS;

/** Refuses an action from a state it cannot start from. */
export function checkFrom(action: Action, state: string): void {
  const from = ACTIONS[action].from as readonly string[];
  if (!from.includes(state)) {
    throw new Conflict(`cannot ${action} a program in state '${state}' (allowed from ${from.join(", ")})`, {
      field: "state",
      details: { action, state, guard: "state", allowed: [...from] },
    });
  }
}

/** A guard that failed: 409 naming the state, the guard and what it saw. */
export function guardFailed(action: Action, state: string, guard: string, message: string, details: Record<string, unknown> = {}): Conflict {
  return new Conflict(`cannot ${action}: ${message}`, { details: { action, state, guard, ...details } });
}
