/**
 * Bounds on the work untrusted text can cause (docs/security.md): lax parsing reads text character by
 * character, so what it attempts is limited by size and nesting, where Python's own limits would stop the
 * same input anyway or the input cannot be meant.
 */

/** Longest malformed JSON (or Python literal) text that is repaired or evaluated: 64 Ki characters, ~10 ms. */
export const REPAIR_LIMIT_CHARS = 64 * 1024;

/** Python's default recursion limit, which bounds how deeply its json module nests. */
export const MAX_JSON_DEPTH = 1000;

/** Whether brackets outside strings nest deeper than `limit` (one linear scan). */
export function nestingExceeds(text: string, from: number, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = from; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 92 /* backslash */) i++;
      else if (ch === 34 /* " */) inString = false;
    } else if (ch === 34) inString = true;
    else if (ch === 91 || ch === 123) {
      if (++depth > limit) return true;
    } else if (ch === 93 || ch === 125) depth--;
  }
  return false;
}
