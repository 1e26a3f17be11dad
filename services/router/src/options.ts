/** Option tables checked before anything is published, the way the worker checks them (modules.py, optimize.py). */
import { ValidationError } from "@dspex/shared";

export type OptKind = "int" | "float" | "bool" | "str" | "enum" | "list" | "map";

export interface Opt {
  kind: OptKind;
  required?: boolean;
  min?: number;
  max?: number;
  choices?: readonly string[];
}

function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

/** Unknown keys, required keys, types and ranges; a ValidationError names `<prefix>.<option>`. */
export function checkOptions(spec: Record<string, Opt>, options: unknown, prefix: string, what: string): void {
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new ValidationError(`\`${prefix}\` must be an object of options`, { field: prefix });
  }
  const record = options as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!(key in spec)) {
      throw new ValidationError(
        `unknown option ${key} in \`${prefix}\` of ${what}; allowed: ${Object.keys(spec).sort().join(", ") || "none"}`,
        { field: `${prefix}.${key}` },
      );
    }
  }
  for (const [key, opt] of Object.entries(spec)) {
    const where = `${prefix}.${key}`;
    const value = record[key];
    if (value === undefined || value === null) {
      if (opt.required) throw new ValidationError(`\`${where}\` is required`, { field: where });
      continue;
    }
    const bad = (expected: string) =>
      new ValidationError(`\`${where}\` must be ${expected} (got ${kindOf(value)})`, { field: where });
    switch (opt.kind) {
      case "int":
        if (typeof value !== "number" || !Number.isInteger(value)) throw bad("an integer");
        break;
      case "float":
        if (typeof value !== "number" || !Number.isFinite(value)) throw bad("a number");
        break;
      case "bool":
        if (typeof value !== "boolean") throw bad("a boolean");
        break;
      case "str":
        if (typeof value !== "string" || value === "") throw bad("a non-empty string");
        break;
      case "enum":
        if (!(opt.choices ?? []).includes(value as string)) {
          throw new ValidationError(
            `\`${where}\` must be one of ${(opt.choices ?? []).join(", ")} (got ${JSON.stringify(value)})`,
            { field: where },
          );
        }
        break;
      case "list":
        if (!Array.isArray(value)) throw bad("an array");
        break;
      case "map":
        if (typeof value !== "object" || Array.isArray(value)) throw bad("an object");
        break;
    }
    if (typeof value === "number") {
      if (opt.min !== undefined && value < opt.min) {
        throw new ValidationError(`\`${where}\` must be at least ${opt.min} (got ${value})`, { field: where });
      }
      if (opt.max !== undefined && value > opt.max) {
        throw new ValidationError(`\`${where}\` must be at most ${opt.max} (got ${value})`, { field: where });
      }
    }
  }
}
