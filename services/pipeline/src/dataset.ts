/** Datasets: JSON Lines (one example object per line) or a JSON array of example objects. */
import { readFile } from "node:fs/promises";
import { ValidationError } from "@dspex/protocol";

export function parseJsonl(text: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((line, i) => {
    if (line.trim() === "") return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new ValidationError(`line ${i + 1}: not JSON (${(err as Error).message})`, { field: `line ${i + 1}` });
    }
    if (!value || typeof value !== "object" || Array.isArray(value)) {
      throw new ValidationError(`line ${i + 1}: an example must be a JSON object`, { field: `line ${i + 1}` });
    }
    out.push(value as Record<string, unknown>);
  });
  return out;
}

/** Reads `.jsonl` (or a `.json` array) into examples. */
export async function readDatasetFile(path: string): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(path, "utf8");
  if (text.trimStart().startsWith("[")) {
    const value = JSON.parse(text) as unknown;
    if (!Array.isArray(value) || value.some((e) => !e || typeof e !== "object" || Array.isArray(e))) {
      throw new ValidationError(`${path}: a JSON dataset must be an array of objects`);
    }
    return value as Array<Record<string, unknown>>;
  }
  return parseJsonl(text);
}

export function toJsonl(rows: ReadonlyArray<unknown>): string {
  return rows.map((r) => JSON.stringify(r)).join("\n") + (rows.length ? "\n" : "");
}
