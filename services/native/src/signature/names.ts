/** Field-name rules: what Python, pydantic and DSPy accept as a signature field name. */

/** Python's hard keywords (`keyword.kwlist`, 3.11): a syntax error as a parameter name. */
export const PYTHON_KEYWORDS: ReadonlySet<string> = new Set([
  "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del",
  "elif", "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda", "nonlocal",
  "not", "or", "pass", "raise", "return", "try", "while", "with", "yield",
]);

/**
 * Names DSPy 3.4 / pydantic 2 fail on as field names (checked against real DSPy: the metaclass properties of
 * Signature, `model_config`, and members in pydantic's protected `model_validate`/`model_dump` namespaces).
 */
export const RESERVED_FIELD_NAMES: ReadonlySet<string> = new Set([
  "fields", "input_fields", "output_fields", "instructions", "signature",
  "model_config", "model_dump", "model_dump_json", "model_validate", "model_validate_json", "model_validate_strings",
]);

/** Field names: ASCII Python identifiers (schemas/signature.schema.json; DSPy would also take Unicode ones). */
const IDENT_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const IDENT_START_RE = /[\p{XID_Start}_]/u;
export const IDENT_CONTINUE_RE = /[\p{XID_Continue}]/u;

/** Why `name` cannot be a field name, or undefined when it can. Also gives a suggestion when one fits. */
export function fieldNameProblem(name: string): { problem: string; suggestion?: string } | undefined {
  if (name.length === 0) return { problem: "a field name must not be empty" };
  if (!IDENT_RE.test(name)) {
    let cleaned = name
      .normalize("NFKD")
      .replace(/[\u0300-\u036f]/g, "")
      .replace(/[^A-Za-z0-9_]+/g, "_")
      .replace(/^[\d_]+/, "");
    let end = cleaned.length; // trailing '_' cut by a loop: /_+$/ is quadratic on a long run of '_' (docs/security.md)
    while (end > 0 && cleaned[end - 1] === "_") end--;
    cleaned = cleaned.slice(0, end);
    return {
      problem: `'${name}' is not a valid field name (names are ASCII identifiers: letters, digits and '_', not starting with a digit)`,
      ...(cleaned && IDENT_RE.test(cleaned) ? { suggestion: `'${cleaned}'` } : {}),
    };
  }
  if (PYTHON_KEYWORDS.has(name)) {
    return { problem: `'${name}' is a Python keyword and cannot be a field name`, suggestion: `'${name}_'` };
  }
  if (name.startsWith("_")) {
    const stripped = name.replace(/^_+/, "");
    return {
      problem: `field name '${name}' starts with an underscore, which pydantic does not allow`,
      ...(stripped && IDENT_RE.test(stripped) && !PYTHON_KEYWORDS.has(stripped) ? { suggestion: `'${stripped}'` } : {}),
    };
  }
  if (RESERVED_FIELD_NAMES.has(name)) {
    return { problem: `'${name}' is reserved by DSPy and cannot be a field name`, suggestion: `'${name}_'` };
  }
  return undefined;
}

/** Levenshtein distance, small strings only. */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  const prev = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0] ?? 0;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j] ?? 0;
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      prev[j] = Math.min(up + 1, (prev[j - 1] ?? 0) + 1, diag + cost);
      diag = up;
    }
  }
  return prev[b.length] ?? 0;
}

/** The candidate closest to `name` (case-insensitive), when it is close enough to be a likely typo. */
export function closest(name: string, candidates: Iterable<string>): string | undefined {
  const lower = name.toLowerCase();
  const limit = name.length <= 3 ? 1 : 2;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    // the distance is at least the difference in length: a long name is compared with nothing (bounded work)
    if (Math.abs(c.length - name.length) > limit) continue;
    const d = editDistance(lower, c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return bestDistance <= limit ? best : undefined;
}
