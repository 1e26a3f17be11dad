/**
 * Names in the registry: program and dataset names, references to a program's version
 * (`program:<name>@deployed`, `program:<name>@<version>`), and the KV key a version is stored under for the
 * workers (`registry-<name>-v<version>`: deterministic, so a pinned version runs without the database).
 */
import { ValidationError } from "@dspex/protocol";

export const NAME_PATTERN = "^[a-z][a-z0-9_-]{0,62}$";
const NAME = new RegExp(NAME_PATTERN);

export const LIFECYCLE_STATES = ["draft", "training", "optimized", "deployed", "deprecated"] as const;
export type LifecycleState = (typeof LIFECYCLE_STATES)[number];

/** The KV key prefix the registry owns in dspex_programs (the HTTP API refuses it for ids of its own). */
export const KV_PREFIX = "registry-";

export function checkName(name: unknown, field: string): string {
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new ValidationError(`${field} must match ${NAME_PATTERN} (got ${JSON.stringify(name)})`, { field });
  }
  return name;
}

export function kvKey(program: string, version: number): string {
  return `${KV_PREFIX}${program}-v${version}`;
}

export interface ProgramRef {
  program: string;
  /** A pinned version, or the deployed one. */
  version: number | "deployed";
}

export const REF_PATTERN = "^program:[a-z][a-z0-9_-]{0,62}@(deployed|[1-9][0-9]{0,8})$";

/** `program:<name>@deployed` or `program:<name>@<version>`. */
export function parseRef(ref: string, field = "program"): ProgramRef {
  const m = /^program:([a-z][a-z0-9_-]{0,62})@(deployed|[1-9][0-9]{0,8})$/.exec(ref);
  if (!m) {
    throw new ValidationError(`${field} must be program:<name>@deployed or program:<name>@<version> (got ${JSON.stringify(ref)})`, { field });
  }
  return { program: m[1]!, version: m[2] === "deployed" ? "deployed" : Number(m[2]) };
}

export function formatRef(ref: ProgramRef): string {
  return `program:${ref.program}@${ref.version}`;
}
