/**
 * The registry's tables as Kysely sees them (db/migrations.ts creates them). JSON columns are `jsonb`; the
 * repositories write them as JSON text (node-postgres would turn a JS array into a PostgreSQL array).
 */
import type { ColumnType, Generated, Insertable, Selectable } from "kysely";

type Json = unknown;
/** Written as JSON text, read back parsed. */
type JsonColumn<T = Json> = ColumnType<T, string, string>;
type NullableJson<T = Json> = ColumnType<T | null, string | null | undefined, string | null>;
type CreatedAt = ColumnType<Date, Date | undefined, never>;
type UpdatedAt = ColumnType<Date, Date | undefined, Date>;

export interface SignaturesTable {
  /** sha256 of the signature's wire form (canonical JSON). */
  id: string;
  text: string;
  wire: JsonColumn;
  input_schema: JsonColumn;
  output_schema: JsonColumn;
  created_at: CreatedAt;
}

export interface ProgramsTable {
  name: string;
  module: string;
  signature_id: string;
  lm_profile: string | null;
  description: string | null;
  state: string;
  deployed_version: number | null;
  latest_version: number;
  owner: string;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

export interface ProgramVersionsTable {
  program: string;
  version: number;
  /** Learned state: {demos?, dspy_state?}. */
  state: JsonColumn;
  instructions: string | null;
  parent_version: number | null;
  job_id: string | null;
  score: number | null;
  baseline_score: number | null;
  /** Where the workers read it: the KV key in dspex_programs (registry-<name>-v<version>). */
  kv_key: string;
  created_by: string;
  created_at: CreatedAt;
}

export interface TransitionsTable {
  id: Generated<number>;
  program: string;
  action: string;
  from_state: string;
  to_state: string;
  version: number | null;
  actor: string;
  reason: string | null;
  details: NullableJson;
  at: CreatedAt;
}

export interface DatasetsTable {
  name: string;
  content_hash: string;
  size: number;
  examples: JsonColumn;
  created_by: string;
  created_at: CreatedAt;
}

export interface JobsTable {
  id: string;
  kind: string;
  program: string;
  version: number;
  dataset: string | null;
  valset: string | null;
  status: string;
  score: number | null;
  result: NullableJson;
  created_by: string;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

export interface EvaluationsTable {
  id: Generated<number>;
  program: string;
  version: number;
  dataset: string;
  score: number;
  job_id: string | null;
  created_at: CreatedAt;
}

export interface ExecutionsTable {
  /** The request id: an execution is recorded once, however often its event is delivered. */
  id: string;
  program: string;
  version: number;
  status: string;
  /** null when inputs are redacted (the default): see inputs_summary. */
  inputs: NullableJson;
  inputs_summary: JsonColumn;
  outputs: NullableJson;
  error: NullableJson;
  usage: NullableJson;
  latency_ms: number;
  worker: string | null;
  trace_id: string | null;
  caller: string | null;
  at: ColumnType<Date, Date, never>;
  recorded_at: CreatedAt;
}

export interface Database {
  signatures: SignaturesTable;
  programs: ProgramsTable;
  program_versions: ProgramVersionsTable;
  transitions: TransitionsTable;
  datasets: DatasetsTable;
  jobs: JobsTable;
  evaluations: EvaluationsTable;
  executions: ExecutionsTable;
}

export type ProgramRow = Selectable<ProgramsTable>;
export type VersionRow = Selectable<ProgramVersionsTable>;
export type TransitionRow = Selectable<TransitionsTable>;
export type DatasetRow = Selectable<DatasetsTable>;
export type JobRow = Selectable<JobsTable>;
export type ExecutionRow = Selectable<ExecutionsTable>;
export type NewExecution = Insertable<ExecutionsTable>;
