/**
 * Metrics of a job. Native ones run here on the prediction (DSPy-identical implementations from
 * @dspex/native); `py:<name>` ones run in the Python worker through the `evaluate` operation; custom
 * TypeScript functions are registered by name in the process that runs the job.
 */
import { ValidationError } from "@dspex/protocol";
import { answerExactMatch, answerPassageMatch, f1, passageRecall, type Answers } from "@dspex/native";
import type { MetricFunction, MetricSpec } from "./types.js";

export const PY_PREFIX = "py:";

/**
 * Native metrics by name: DSPy's answer_exact_match, F1 and answer_passage_match, and recall@k of retrieved
 * passage ids. Each reads one example field and one prediction field (FIELDS; a spec's `gold`/`pred` rename
 * them), handed to it as `example.answer` and `pred.answer` (`pred.context` for passage_match, as DSPy's).
 */
export const NATIVE_METRICS: ReadonlyMap<string, MetricFunction> = new Map<string, MetricFunction>([
  // dspy.evaluate.answer_exact_match(example, pred, frac=1.0)
  ["exact_match", (example, pred, args) => answerExactMatch({ answer: example.answer as Answers }, { answer: pred.answer as string }, { frac: args.frac as number | undefined })],
  // dspy.evaluate.metrics.F1(pred.answer, answers)
  ["f1", (example, pred) => f1(pred.answer as string, example.answer as Answers)],
  // dspy.evaluate.answer_passage_match(example, pred)
  ["passage_match", (example, pred) => answerPassageMatch({ answer: example.answer as Answers }, { context: pred.context as string[] })],
  // the share of the example's gold passage ids among the first args.k retrieved ids (all when no k)
  ["recall_at_k", (example, pred, args) => passageRecall(example.answer, pred.answer, args.k as number | undefined)],
]);

/** The example and prediction fields each native metric reads by default, and the key its metric function reads the prediction's under. */
const FIELDS: Record<string, { gold: string; pred: string; as: "answer" | "context" }> = {
  exact_match: { gold: "answer", pred: "answer", as: "answer" },
  f1: { gold: "answer", pred: "answer", as: "answer" },
  passage_match: { gold: "answer", pred: "context", as: "context" },
  recall_at_k: { gold: "gold_ids", pred: "passage_ids", as: "answer" },
};
// Aliases with DSPy's names.
const ALIASES: Record<string, string> = { answer_exact_match: "exact_match", answer_passage_match: "passage_match" };

export interface ResolvedMetric {
  key: string;
  spec: MetricSpec;
  /** Python metrics are scored by the worker. */
  python: boolean;
  /** For Python metrics: the worker's metric name. */
  pythonName?: string;
  /** For TypeScript metrics. */
  fn?: MetricFunction;
}

export function normalizeMetrics(input: ReadonlyArray<string | MetricSpec>): MetricSpec[] {
  return input.map((m) => (typeof m === "string" ? { name: m } : { ...m }));
}

/** Names of custom TypeScript metrics a job needs (neither native nor Python). */
export function customMetricNames(specs: ReadonlyArray<MetricSpec>): string[] {
  return specs
    .map((s) => s.name)
    .filter((n) => !n.startsWith(PY_PREFIX) && !NATIVE_METRICS.has(n) && !(n in ALIASES));
}

/** Resolves metric specs; throws ValidationError for unknown names and duplicate keys. */
export function resolveMetrics(
  specs: ReadonlyArray<MetricSpec>,
  custom: ReadonlyMap<string, MetricFunction> = new Map(),
): ResolvedMetric[] {
  if (specs.length === 0) throw new ValidationError("a job needs at least one metric", { field: "metrics" });
  const keys = new Set<string>();
  return specs.map((spec, i) => {
    if (!spec || typeof spec.name !== "string" || spec.name === "") {
      throw new ValidationError(`metrics[${i}] needs a name`, { field: `metrics[${i}]` });
    }
    const key = spec.as ?? spec.name;
    if (keys.has(key)) {
      throw new ValidationError(`metric key '${key}' is used twice; give one an \`as\``, { field: `metrics[${i}]` });
    }
    keys.add(key);
    if (spec.name.startsWith(PY_PREFIX)) {
      const pythonName = spec.name.slice(PY_PREFIX.length);
      if (!pythonName) throw new ValidationError(`metrics[${i}]: empty Python metric name`, { field: `metrics[${i}]` });
      return { key, spec, python: true, pythonName };
    }
    const name = ALIASES[spec.name] ?? spec.name;
    const fn = NATIVE_METRICS.get(name) ?? custom.get(spec.name);
    if (!fn) {
      throw new ValidationError(
        `unknown metric '${spec.name}': use exact_match, f1, passage_match, recall_at_k, py:<python metric>, or register a TypeScript metric`,
        { field: `metrics[${i}]` },
      );
    }
    return { key, spec, python: false, fn };
  });
}

/** Runs a TypeScript metric with the spec's field mapping (pred/gold field names). */
export async function scoreNative(
  metric: ResolvedMetric,
  example: Record<string, unknown>,
  prediction: Record<string, unknown>,
): Promise<number | boolean> {
  const { spec } = metric;
  const fields = FIELDS[ALIASES[spec.name] ?? spec.name];
  let ex = example;
  let pred = prediction;
  if (fields) {
    ex = { answer: example[spec.gold ?? fields.gold] };
    pred = { [fields.as]: prediction[spec.pred ?? fields.pred] };
  }
  const value = await metric.fn!(ex, pred, spec.args ?? {});
  if (typeof value === "boolean") return value;
  if (typeof value === "number" && Number.isFinite(value)) return value;
  throw new ValidationError(`metric '${metric.key}' returned ${typeof value}; it must return a boolean or a finite number`);
}

/** A score as the number DSPy sums (True = 1). */
export function scoreNumber(value: number | boolean | undefined): number {
  return value === true ? 1 : value === false || value === undefined ? 0 : value;
}

/** The scores of the Python metrics a worker returned, under the job's keys; a missing one is an error. */
export function pythonScores(python: ResolvedMetric[], returned: Record<string, number | boolean>): Record<string, number | boolean> {
  const scores: Record<string, number | boolean> = {};
  for (const m of python) {
    const v = returned[m.pythonName!];
    if (v === undefined) throw new ValidationError(`the worker returned no score for '${m.pythonName}'`);
    scores[m.key] = v;
  }
  return scores;
}
