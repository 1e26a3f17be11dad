/**
 * The registry's resources as the APIs show them (camelCase, ISO timestamps), mapped from rows. Their JSON
 * Schemas are in resources.ts.
 */
import type { DatasetRow, ExecutionRow, JobRow, ProgramRow, TransitionRow, VersionRow } from "./db/tables.js";
import { formatRef } from "./names.js";

export interface SignatureView {
  id: string;
  text: string;
  wire: Record<string, unknown>;
  inputSchema: Record<string, unknown>;
  outputSchema: Record<string, unknown>;
}

export interface ProgramView {
  name: string;
  module: string;
  signature: SignatureView;
  lmProfile: string | null;
  description: string | null;
  state: string;
  deployedVersion: number | null;
  latestVersion: number;
  /** `program:<name>@deployed` while a version is deployed. */
  alias: string | null;
  owner: string;
  createdAt: string;
  updatedAt: string;
}

export interface EvaluationView {
  dataset: string;
  score: number;
  job: string | null;
  at: string;
}

export interface VersionView {
  program: string;
  version: number;
  ref: string;
  state: Record<string, unknown>;
  instructions: string | null;
  parentVersion: number | null;
  job: string | null;
  score: number | null;
  baselineScore: number | null;
  kvKey: string;
  evaluations: EvaluationView[];
  createdBy: string;
  createdAt: string;
}

export interface TransitionView {
  id: number;
  program: string;
  action: string;
  from: string;
  to: string;
  version: number | null;
  actor: string;
  reason: string | null;
  details: Record<string, unknown> | null;
  at: string;
}

export interface DatasetView {
  name: string;
  contentHash: string;
  size: number;
  examples?: Array<Record<string, unknown>>;
  createdBy: string;
  createdAt: string;
}

export interface JobView {
  id: string;
  kind: string;
  program: string;
  version: number;
  dataset: string | null;
  valset: string | null;
  status: string;
  score: number | null;
  progress: Record<string, unknown> | null;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
}

export interface ExecutionView {
  id: string;
  program: string;
  version: number;
  ref: string;
  status: string;
  inputs: Record<string, unknown> | null;
  inputsSummary: Record<string, unknown>;
  outputs: Record<string, unknown> | null;
  error: Record<string, unknown> | null;
  usage: Record<string, unknown> | null;
  latencyMs: number;
  worker: string | null;
  traceId: string | null;
  caller: string | null;
  at: string;
}

const iso = (d: Date | string): string => (d instanceof Date ? d.toISOString() : new Date(d).toISOString());

export function programView(row: ProgramRow, signature: SignatureView): ProgramView {
  return {
    name: row.name,
    module: row.module,
    signature,
    lmProfile: row.lm_profile,
    description: row.description,
    state: row.state,
    deployedVersion: row.deployed_version,
    latestVersion: row.latest_version,
    alias: row.deployed_version === null ? null : formatRef({ program: row.name, version: "deployed" }),
    owner: row.owner,
    createdAt: iso(row.created_at),
    updatedAt: iso(row.updated_at),
  };
}

export function versionView(row: VersionRow, evaluations: EvaluationView[]): VersionView {
  return {
    program: row.program,
    version: row.version,
    ref: formatRef({ program: row.program, version: row.version }),
    state: row.state as Record<string, unknown>,
    instructions: row.instructions,
    parentVersion: row.parent_version,
    job: row.job_id,
    score: row.score,
    baselineScore: row.baseline_score,
    kvKey: row.kv_key,
    evaluations,
    createdBy: row.created_by,
    createdAt: iso(row.created_at),
  };
}

export function transitionView(row: TransitionRow): TransitionView {
  return {
    id: row.id,
    program: row.program,
    action: row.action,
    from: row.from_state,
    to: row.to_state,
    version: row.version,
    actor: row.actor,
    reason: row.reason,
    details: (row.details as Record<string, unknown> | null) ?? null,
    at: iso(row.at),
  };
}

export function datasetView(row: Omit<DatasetRow, "examples"> & { examples?: unknown }): DatasetView {
  return {
    name: row.name,
    contentHash: row.content_hash,
    size: row.size,
    ...(row.examples === undefined ? {} : { examples: row.examples as Array<Record<string, unknown>> }),
    createdBy: row.created_by,
    createdAt: iso(row.created_at),
  };
}

export function jobView(row: JobRow): JobView {
  const result = (row.result ?? null) as { progress?: Record<string, unknown> } | null;
  return {
    id: row.id,
    kind: row.kind,
    program: row.program,
    version: row.version,
    dataset: row.dataset,
    valset: row.valset,
    status: row.status,
    score: row.score,
    progress: result?.progress ?? null,
    createdBy: row.created_by,
    createdAt: iso(row.created_at),
    updatedAt: iso(row.updated_at),
  };
}

export function executionView(row: ExecutionRow): ExecutionView {
  return {
    id: row.id,
    program: row.program,
    version: row.version,
    ref: formatRef({ program: row.program, version: row.version }),
    status: row.status,
    inputs: (row.inputs as Record<string, unknown> | null) ?? null,
    inputsSummary: row.inputs_summary as Record<string, unknown>,
    outputs: (row.outputs as Record<string, unknown> | null) ?? null,
    error: (row.error as Record<string, unknown> | null) ?? null,
    usage: (row.usage as Record<string, unknown> | null) ?? null,
    latencyMs: row.latency_ms,
    worker: row.worker,
    traceId: row.trace_id,
    caller: row.caller,
    at: iso(row.at),
  };
}
