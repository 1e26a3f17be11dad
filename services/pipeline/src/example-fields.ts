/**
 * Which fields of an eval example are the program's inputs, and which are the gold the metrics read: a job's
 * `input_keys`, else its program's input fields (a pipeline's inputs, a signature's input fields; a packaged
 * program's advertised inputs are picked per call).
 */
import { resolveSignature } from "@dspex/native";
import { isPackagedProgram, isPipelineProgram, type JobRecord } from "./types.js";

/** Input keys of a job's program. */
export function inputKeysOf(record: JobRecord): string[] | undefined {
  const { spec } = record;
  if (spec.input_keys) return spec.input_keys;
  if (isPipelineProgram(spec.program)) return spec.program.pipeline.inputs;
  if (isPackagedProgram(spec.program)) return undefined; // the program's advertised inputs, picked per call
  const p = spec.program;
  return resolveSignature(p.signature, typeof p.signature === "string" ? p.instructions : undefined).inputs.map((f) => f.name);
}

export function pick(example: Record<string, unknown>, keys: string[] | undefined): Record<string, unknown> {
  if (!keys) return { ...example };
  const out: Record<string, unknown> = {};
  for (const k of keys) if (k in example) out[k] = example[k];
  return out;
}

export function omit(example: Record<string, unknown>, keys: string[] | undefined): Record<string, unknown> {
  if (!keys) return { ...example };
  const drop = new Set(keys);
  return Object.fromEntries(Object.entries(example).filter(([k]) => !drop.has(k)));
}
